package handlers

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
	"devicehooks/web"
)

// devicePageLink is the address of a device's page. (Not /devices/{id}:
// "live" and "secret" are device ids too.)
func devicePageLink(id string) string { return "/devices/" + url.PathEscape(id) + "/history" }

// historyPerPage is how many commands the device page lists at once.
const historyPerPage = 50

// notSucceeded are the states the device page's "did not succeed" filter
// shows: what a screen missed, or has not had yet.
var notSucceeded = []string{store.StateQueued, store.StatePublished, store.StateFailed, store.StateRejected, store.StateExpired}

// devicePageView is a device's page: what it is, where it is (its groups and
// the actions that target it), and what it was sent, newest first.
type devicePageView struct {
	deviceRow
	Groups  []store.Group
	Actions []store.Action // that target it by id
	Topics  [][2]string    // its MQTT topics, for the player's configuration
	Broker  [][2]string    // where its player connects (brokerAddresses)

	History  []historyRow
	States   []string // the history shows only commands in these states (?state=; none: all)
	Failures bool     // those are the ones that did not succeed (notSucceeded)
	Older    string   // the link to older commands, "" at the end
	Newer    bool     // the page is not the newest: a link back to it
	Searched int      // dispatches the page looked at, back to the one made at Reached
	Reached  time.Time
	query    string // the page's ?state= and ?before=, for its refresh
}

// historyRow is a command in the device's history.
type historyRow struct {
	store.DeviceCommand
	Carried   string // what it carried, in a few words
	Published web.Stamp
	Acked     web.Stamp
	Detail    string
	Expires   web.Stamp
}

// Live tells whether the list refreshes itself: while a command on it is on
// its way (queued or published).
func (v *devicePageView) Live() bool {
	return slices.ContainsFunc(v.History, func(r historyRow) bool {
		return store.IsOpen(r.State)
	})
}

// LiveURL is where the page polls for the commands it shows.
func (v *devicePageView) LiveURL() string {
	link := devicePageLink(v.ID) + "/live"
	if v.query != "" {
		link += "?" + v.query
	}
	return link
}

// Short tells whether the page found fewer commands than a page holds
// before it stopped looking: it says how far back it looked.
func (v *devicePageView) Short() bool { return v.Older != "" && len(v.History) < historyPerPage }

func (u *ui) devicePage(c *gin.Context) {
	ctx := c.Request.Context()
	d, err := u.Store.Device(ctx, c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, deviceGone))
		return
	}
	v := devicePageView{deviceRow: deviceRow{Device: *d}}
	v.Online, v.Device.LastSeen = u.Presence.Of(d)
	if v.Groups, err = u.Store.DeviceGroups(ctx, d.ID); err != nil {
		u.fail(c, err)
		return
	}
	if v.Actions, err = u.Store.ActionsTargeting(ctx, actions.TargetDevice, d.ID); err != nil {
		u.fail(c, err)
		return
	}
	v.Topics, v.Broker = u.deviceTopics(d.ID), u.brokerAddresses(c)
	if err := u.loadHistory(c, &v); err != nil {
		u.fail(c, err)
		return
	}
	u.render(c, http.StatusOK, "device", &web.View{Title: "Device " + deviceTitle(d), Nav: "devices", Data: &v})
}

// deviceLiveCommands is the device page's refresh: its commands' states,
// and whether any is still on its way.
type deviceLiveCommands struct {
	Commands []commandRow `json:"commands"`
	Pending  bool         `json:"pending"`
}

// devicePageLive answers the device page's polling with the commands of the
// page it shows.
func (u *ui) devicePageLive(c *gin.Context) {
	v := devicePageView{deviceRow: deviceRow{Device: store.Device{ID: c.Param("id")}}}
	if err := u.loadHistory(c, &v); err != nil {
		respondError(c, u.Log, err)
		return
	}
	out := deviceLiveCommands{Commands: make([]commandRow, len(v.History)), Pending: v.Live()}
	for i, r := range v.History {
		out.Commands[i] = commandRow{ID: r.ID, DeviceID: r.DeviceID, State: r.State, Published: r.Published, Acked: r.Acked, Detail: r.Detail, Expires: r.Expires}
	}
	c.JSON(http.StatusOK, out)
}

// loadHistory reads the page of the device's commands that ?before= and
// ?state= ask for, as the API reads them (historyFilter).
func (u *ui) loadHistory(c *gin.Context, v *devicePageView) error {
	states, before, err := historyFilter(c)
	if err != nil {
		return err
	}
	v.States, v.Failures, v.query = states, sameStates(states, notSucceeded), c.Request.URL.RawQuery
	h, err := u.Store.DeviceHistory(c.Request.Context(), v.ID, states, before, historyPerPage)
	if err != nil {
		return err
	}
	v.Newer, v.Searched, v.Reached = before != "", h.Searched, h.Reached
	if h.Next != "" {
		v.Older = v.link(states, h.Next)
	}
	for _, cmd := range h.Commands {
		row := historyRow{DeviceCommand: cmd, Published: web.ClockStamp(cmd.PublishedAt), Acked: web.ClockStamp(cmd.AckedAt)}
		row.Detail, row.Expires = u.commandDetail(&cmd.Command)
		if params, _ := commandParams(cmd.Payload); params != nil {
			row.Carried = paramsSummary(cmd.Function, params)
		}
		v.History = append(v.History, row)
	}
	return nil
}

// sameStates tells whether two lists of states hold the same ones.
func sameStates(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// link is the page of the device's history in states (none: all) before
// the dispatch id before ("": the newest).
func (v *devicePageView) link(states []string, before string) string {
	q := url.Values{}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	if before != "" {
		q.Set("before", before)
	}
	if len(q) == 0 {
		return devicePageLink(v.ID)
	}
	return devicePageLink(v.ID) + "?" + q.Encode()
}

// AllLink is the newest page of the device's history.
func (v *devicePageView) AllLink() string { return v.link(nil, "") }

// FailuresLink is the newest page of its commands that did not succeed.
func (v *devicePageView) FailuresLink() string { return v.link(notSucceeded, "") }

// FirstLink is the newest page of the history, as filtered.
func (v *devicePageView) FirstLink() string { return v.link(v.States, "") }

// StatesShown names the states the history shows, "failed or expired"
// ("": all).
func (v *devicePageView) StatesShown() string {
	n := len(v.States)
	if n < 2 {
		return strings.Join(v.States, "")
	}
	return strings.Join(v.States[:n-1], ", ") + " or " + v.States[n-1]
}
