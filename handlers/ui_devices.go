package handlers

import (
	"net"
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

// devicesPerPage is how many devices the devices page lists at once.
const devicesPerPage = 100

type deviceRow struct {
	store.Device
	Online bool
}

type devicesView struct {
	Devices []deviceRow
	Online  int
	Pager   pager
	Filter  store.DeviceFilter // ?state= ("emergency", "paused", "online", "offline" or "") and ?q=
	States  []deviceState      // the choices of the state filter
	Form    struct{ ID, Name string }
}

// deviceState is a ?state= filter of the devices page: its choice, what it
// shows ("the devices …"), and what it says when no device is in it.
type deviceState struct{ Value, Label, Shows, None string }

var deviceStates = []deviceState{
	{store.DeviceStateOnline, "Online", "online", "No device is online now."},
	{store.DeviceStateOffline, "Offline", "offline", "No device is offline now."},
	{store.DeviceStateEmergency, "In emergency mode", "in emergency mode", "No device is in emergency mode now."},
	{store.DeviceStatePaused, "Loop paused", "with their loop paused", "No device is paused now."},
}

func (v devicesView) state() deviceState {
	for _, s := range deviceStates {
		if s.Value == v.Filter.State {
			return s
		}
	}
	return deviceState{}
}

// StateLabel says which devices the state filter shows ("" without one).
func (v devicesView) StateLabel() string { return v.state().Shows }

// filterTitle says, for the page's title, which devices the filters show
// ("online, id or name contains “lobby”"), or "".
func (v devicesView) filterTitle() string {
	var parts []string
	if s := v.StateLabel(); s != "" {
		parts = append(parts, s)
	}
	if v.Filter.Search != "" {
		parts = append(parts, "id or name contains “"+v.Filter.Search+"”")
	}
	return strings.Join(parts, ", ")
}

// NoneLabel says that no device passes the filter.
func (v devicesView) NoneLabel() string {
	if v.Filter.Search != "" {
		return "No device matches."
	}
	return v.state().None
}

// LiveURL is where the page polls for the presence of the devices it
// shows: those rows, by id, not the filter again, which a device leaving it
// ("online" going offline) would drop out of, its row left as it was.
func (v devicesView) LiveURL() string {
	q := url.Values{}
	for _, d := range v.Devices {
		q.Add("id", d.ID)
	}
	if len(q) == 0 {
		return "/devices/live"
	}
	return "/devices/live?" + q.Encode()
}

// maxSearch bounds the ?q= text (a device name is 200 characters at most).
const maxSearch = 200

// listDevices reads a page of the devices list, filtered by ?state= (an
// unknown state is ignored) and ?q=, and returns the filter it applied.
func (u *ui) listDevices(c *gin.Context, p store.Page) ([]store.Device, int64, store.DeviceFilter, error) {
	f := store.DeviceFilter{State: strings.ToLower(strings.TrimSpace(c.Query("state"))), Search: strings.TrimSpace(c.Query("q"))}
	if !slices.ContainsFunc(deviceStates, func(s deviceState) bool { return s.Value == f.State }) {
		f.State = ""
	}
	if len(f.Search) > maxSearch {
		f.Search = strings.ToValidUTF8(f.Search[:maxSearch], "")
	}
	ds, total, err := u.Store.FindDevices(c.Request.Context(), f, p)
	return ds, total, f, err
}

func (u *ui) deviceList(c *gin.Context) {
	u.renderDevices(c, http.StatusOK, devicesView{}, nil, "")
}

func (u *ui) renderDevices(c *gin.Context, status int, v devicesView, errs map[string]string, msg string) {
	pg, offset := pagerOf(c, devicesPerPage)
	ds, total, filter, err := u.listDevices(c, store.Page{Limit: devicesPerPage, Offset: offset})
	if err != nil {
		u.fail(c, err)
		return
	}
	pg.setTotal(total, devicesPerPage)
	v.Pager, v.Online, v.Filter, v.States = pg, u.Presence.OnlineCount(), filter, deviceStates
	for _, d := range ds {
		row := deviceRow{Device: d}
		row.Online, row.Device.LastSeen = u.Presence.Of(&d)
		v.Devices = append(v.Devices, row)
	}
	u.render(c, status, "devices", &web.View{Title: pg.title("Devices", v.filterTitle()), Nav: "devices", Errors: errs, Error: msg, Data: v})
}

// deviceLive is one device's presence for the devices page's refresh.
type deviceLive struct {
	ID       string `json:"id"`
	Online   bool   `json:"online"`
	LastSeen string `json:"last_seen"`
}

// devicesLive answers the devices page's polling with the presence of the
// devices on the page (?id=, one for each row; a device deleted meanwhile is
// left out).
func (u *ui) devicesLive(c *gin.Context) {
	ids := c.QueryArray("id")
	if len(ids) > devicesPerPage {
		ids = ids[:devicesPerPage]
	}
	ds, err := u.Store.DevicesByID(c.Request.Context(), ids)
	if err != nil {
		respondError(c, u.Log, err)
		return
	}
	out := make([]deviceLive, len(ds))
	for i, d := range ds {
		online, seen := u.Presence.Of(&d)
		out[i] = deviceLive{ID: d.ID, Online: online, LastSeen: "never"}
		if seen != nil {
			out[i].LastSeen = web.Ago(time.Since(*seen))
		}
	}
	c.JSON(http.StatusOK, gin.H{"devices": out, "online": u.Presence.OnlineCount()})
}

// suggestLimit is how many devices suggestDevices offers: a few to pick
// from while typing, not a list to scroll.
const suggestLimit = 20

type deviceSuggestion struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// suggestDevices answers the group form's "Add devices by id" field as an id
// is typed (?q=): the devices whose id or name contains it, those whose id
// starts with it first, leaving out the members of ?not_in_group=. A few at
// a time, where the page once carried every id.
func (u *ui) suggestDevices(c *gin.Context) {
	q := strings.TrimSpace(c.Query("q"))
	out := []deviceSuggestion{}
	if q == "" || len(q) > maxSearch {
		c.JSON(http.StatusOK, gin.H{"devices": out})
		return
	}
	ds, err := u.Store.SuggestDevices(c.Request.Context(), q, c.Query("not_in_group"), suggestLimit)
	if err != nil {
		respondError(c, u.Log, err)
		return
	}
	for _, d := range ds {
		out = append(out, deviceSuggestion{ID: d.ID, Name: d.Name})
	}
	c.JSON(http.StatusOK, gin.H{"devices": out})
}

func (u *ui) createDevice(c *gin.Context) {
	var v devicesView
	v.Form.ID, v.Form.Name = form(c, "id"), form(c, "name")
	d, token, err := u.Devices.Create(c.Request.Context(), v.Form.ID, v.Form.Name)
	if err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, func(f string) string { return f })
		if asError(err).Code == actions.CodeConflict {
			errs, msg = map[string]string{"id": "a device with this id already exists"}, "Please correct the marked field."
		}
		u.renderDevices(c, http.StatusUnprocessableEntity, v, errs, msg)
		return
	}
	u.Log.Info("ui: device created", "id", d.ID, "by", account(c).User.Username)
	u.showSecret(c, deviceSecretPath, "Device “"+d.Name+"” added", u.deviceSecret(c, d.ID, token,
		"The player signs in to the MQTT broker with its device id as username and this token as password."))
}

func (u *ui) deviceSecret(c *gin.Context, id, token, intro string) secretView {
	details := append(u.brokerAddresses(c), [2]string{"MQTT username", id})
	return secretView{
		Intro: intro, Label: "Device token", Value: token,
		Note:    "This token is shown only now. If it is lost, rotate it from the devices page and configure the player again.",
		Details: append(details, u.deviceTopics(id)...),
		Back:    "Back to devices", BackTo: "/devices",
	}
}

// PlayerBroker is where players connect: the embedded broker's listen
// addresses ("" for one that is off), or an external broker's URL.
type PlayerBroker struct {
	TCPAddr, WSAddr string
	URL             string // scheme, host and path only: no credentials
}

// brokerAddresses names where a player connects, as its configuration
// wants it. The embedded broker's listener on every interface (":1883") is
// shown at the host this page was reached at, which is this machine's name
// for the admin, and likely the players'; so is an external broker that
// the server reaches on the loopback (on this machine, then).
func (u *ui) brokerAddresses(c *gin.Context) [][2]string {
	pageHost := func() string {
		base, err := url.Parse(u.baseURL(c))
		if err != nil {
			return ""
		}
		return base.Hostname()
	}
	b := u.PlayerBroker
	if b.URL != "" {
		ext, err := url.Parse(b.URL)
		if err != nil {
			return [][2]string{{"MQTT broker", b.URL}}
		}
		if ip := net.ParseIP(ext.Hostname()); ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
			host, port := pageHost(), ext.Port()
			switch {
			case port != "":
				host = net.JoinHostPort(host, port)
			case strings.Contains(host, ":"): // IPv6
				host = "[" + host + "]"
			}
			ext.Host = host
		}
		return [][2]string{{"MQTT broker", ext.String()}}
	}
	var out [][2]string
	for _, l := range []struct{ label, scheme, addr string }{
		{"MQTT broker", "mqtt", b.TCPAddr},
		{"MQTT over WebSocket (browser players)", "ws", b.WSAddr},
	} {
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil { // off
			continue
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = pageHost()
		}
		out = append(out, [2]string{l.label, l.scheme + "://" + net.JoinHostPort(host, port)})
	}
	return out
}

// deviceTopics names a device's MQTT topics, as its player uses them.
func (u *ui) deviceTopics(id string) [][2]string {
	return [][2]string{
		{"Commands (subscribe)", u.Topics.Device(id, actions.KindCommands)},
		{"Desired state (subscribe)", u.Topics.Device(id, actions.KindDesired)},
		{"Acks (publish)", u.Topics.Device(id, actions.KindAcks)},
		{"Status (publish, retained)", u.Topics.Device(id, actions.KindStatus)},
	}
}

// deviceFormView is the device's edit page: its name (its id stays).
type deviceFormView struct {
	ID, Name string
	FromPage bool // opened from the device's page (?back=history), where Save and Cancel go back to
}

// Back is where the form's Cancel and a save go: the device's page it was
// opened from, or the devices list.
func (v deviceFormView) Back() string {
	if v.FromPage {
		return "/devices/" + v.ID + "/history"
	}
	return "/devices"
}

func (u *ui) editDevice(c *gin.Context) {
	d, err := u.Store.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, deviceGone))
		return
	}
	v := deviceFormView{ID: d.ID, Name: d.Name, FromPage: c.Query("back") == "history"}
	u.render(c, http.StatusOK, "device_form", &web.View{Title: deviceFormTitle(d), Nav: "devices", Data: v})
}

// deviceFormTitle names the device being edited, as saved.
func deviceFormTitle(d *store.Device) string { return "Edit device " + deviceTitle(d) }

// deviceTitle names a device for a page's title: “Lobby” (lobby-1), or its
// id alone when that is its name.
func deviceTitle(d *store.Device) string {
	if d.Name == d.ID {
		return "“" + d.ID + "”"
	}
	return "“" + d.Name + "” (" + d.ID + ")"
}

func (u *ui) updateDevice(c *gin.Context) {
	v := deviceFormView{ID: c.Param("id"), Name: form(c, "name"), FromPage: form(c, "back") == "history"}
	d, err := u.Store.Device(c.Request.Context(), v.ID)
	if err != nil {
		u.redirectError(c, "/devices", gone(err, deviceGone))
		return
	}
	name, err := u.Devices.Rename(c.Request.Context(), v.ID, v.Name)
	if err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		if asError(err).Code == actions.CodeNotFound {
			u.redirectError(c, "/devices", gone(err, deviceGone))
			return
		}
		errs, msg := fieldErrors(err, func(f string) string { return f })
		u.render(c, http.StatusUnprocessableEntity, "device_form", &web.View{Title: deviceFormTitle(d), Nav: "devices", Errors: errs, Error: msg, Data: v})
		return
	}
	u.Log.Info("ui: device renamed", "id", v.ID, "by", account(c).User.Username)
	u.redirect(c, v.Back(), "Saved the device “"+name+"” ("+v.ID+").")
}

func (u *ui) confirmRotateToken(c *gin.Context) {
	d, err := u.Store.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, deviceGone))
		return
	}
	u.confirm(c, "Rotate the token of "+deviceTitle(d), "devices", confirmView{
		Message: "Give “" + d.Name + "” (" + d.ID + ") a new token?",
		Detail:  "The old token stops working at once and the player is disconnected until it is configured with the new one.",
		Action:  "/devices/" + d.ID + "/token", Button: "Rotate token", Cancel: "/devices", Danger: true,
	})
}

func (u *ui) rotateToken(c *gin.Context) {
	ctx := c.Request.Context()
	d, err := u.Store.Device(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/devices", gone(err, deviceGone))
		return
	}
	token, err := u.Devices.Rotate(ctx, d.ID)
	if err != nil {
		u.redirectError(c, "/devices", gone(err, deviceGone))
		return
	}
	u.Log.Info("ui: device token rotated", "id", d.ID, "by", account(c).User.Username)
	u.showSecret(c, deviceSecretPath, "New token for “"+d.Name+"”", u.deviceSecret(c, d.ID, token,
		"The old token no longer works. Configure the player with this one."))
}

func (u *ui) confirmDeleteDevice(c *gin.Context) {
	d, err := u.Store.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, deviceGone))
		return
	}
	targeting, err := u.Store.ActionsTargeting(c.Request.Context(), actions.TargetDevice, d.ID)
	if err != nil {
		u.fail(c, err)
		return
	}
	if len(targeting) > 0 {
		u.confirm(c, "Delete device "+deviceTitle(d), "devices", confirmView{
			Message: "The device “" + d.Name + "” (" + d.ID + ") cannot be deleted while " +
				plural(len(targeting), "this action targets", "these actions target") + " it:",
			Blocked: blockingActions(targeting),
			Detail: "Change " + plural(len(targeting), "its target", "their target") + " to another device, or delete " +
				plural(len(targeting), "it", "them") + ", then delete the device.",
			Cancel: "/devices",
		})
		return
	}
	u.confirm(c, "Delete device "+deviceTitle(d), "devices", confirmView{
		Message: "Delete the device “" + d.Name + "” (" + d.ID + ")?",
		Detail:  "Its token stops working, it leaves its groups, and it gets no more commands. Its past commands stay in the history.",
		Action:  "/devices/" + d.ID + "/delete", Button: "Delete device", Cancel: "/devices", Danger: true,
	})
}

func (u *ui) deleteDevice(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("id")
	if err := u.Devices.Delete(ctx, id); err != nil {
		msg := u.deleteRefusal(ctx, actions.TargetDevice, id, "The device "+id)
		u.redirectError(c, "/devices", gone(conflictDetail(err, "%s", msg), deviceGone))
		return
	}
	u.Log.Info("ui: device deleted", "id", id, "by", account(c).User.Username)
	u.redirect(c, "/devices", "Deleted the device "+id+".")
}
