package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"devicehooks/store"
	"devicehooks/web"
)

// dispatchesPerPage is how many dispatches the dispatches page lists at once.
const dispatchesPerPage = 50

// dispatchRow is a dispatch with its outcome.
type dispatchRow struct {
	store.Dispatch
	Status  string
	Summary string
}

func dispatchRowOf(d store.Dispatch, counts store.StateCounts) dispatchRow {
	return dispatchRow{Dispatch: d, Status: DispatchStatus(d.Targets, counts), Summary: stateSummary(d.Targets, counts)}
}

// stateSummary says how a dispatch's commands stand: "2 succeeded · 1 expired",
// with the expired commands a later dispatch replaced told apart: "1
// superseded".
func stateSummary(targets int, counts store.StateCounts) string {
	if targets == 0 {
		return "no devices targeted"
	}
	var parts []string
	for _, s := range store.States {
		n := counts[s]
		if s == store.StateExpired {
			n -= counts[store.Superseded]
		}
		if n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+s)
		}
	}
	if n := counts[store.Superseded]; n > 0 {
		parts = append(parts, strconv.Itoa(n)+" "+store.Superseded)
	}
	return strings.Join(parts, " · ")
}

// withOutcomes adds each dispatch's command counts.
func (u *ui) withOutcomes(c *gin.Context, ds []store.Dispatch) ([]dispatchRow, error) {
	ids := make([]string, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID
	}
	counts, err := u.Store.CommandCounts(c.Request.Context(), ids)
	return outcomeRows(ds, counts), err
}

// outcomeRows makes the table rows of dispatches with their command counts.
func outcomeRows(ds []store.Dispatch, counts map[string]store.StateCounts) []dispatchRow {
	rows := make([]dispatchRow, len(ds))
	for i, d := range ds {
		rows[i] = dispatchRowOf(d, counts[d.ID])
	}
	return rows
}

type dispatchesView struct {
	Dispatches []dispatchRow
	Failed     bool         // only the dispatches that need attention
	Filter     url.Values   // the filters the form keeps as hidden fields: action, key, since, until
	Chips      []filterChip // the active filters, each with a link that removes it
	Pager      pager
}

// dispatchFilterParams are the dispatches page's filters, as its query
// names them (the API's are named after the fields: action_id, api_key_id).
var dispatchFilterParams = []string{"action", "key", "failed", "since", "until"}

// dispatchList shows the dispatches, newest first, filtered by action, by
// key, by time (?since=, ?until=, from the dashboard's links) and to those
// that need attention.
func (u *ui) dispatchList(c *gin.Context) {
	ctx := c.Request.Context()
	q := url.Values{}
	for _, name := range dispatchFilterParams {
		if v := strings.TrimSpace(c.Query(name)); v != "" {
			q.Set(name, v)
		}
	}
	f := store.DispatchFilter{ActionID: q.Get("action"), APIKeyID: q.Get("key")}
	if f.Failed, _ = strconv.ParseBool(q.Get("failed")); !f.Failed { // "true" and the like; anything else: no filter
		q.Del("failed")
	}
	var err error
	if f.Since, f.Until, err = windowOf(c); err != nil {
		u.fail(c, err)
		return
	}
	pg, offset := pagerOf(c, dispatchesPerPage)
	pg.query = q
	ds, counts, total, err := u.Store.DispatchesWithCounts(ctx, f, store.Page{Limit: dispatchesPerPage, Offset: offset})
	if err != nil {
		u.fail(c, err)
		return
	}
	pg.setTotal(total, dispatchesPerPage)
	chips, err := u.dispatchChips(c, f, q)
	if err != nil {
		u.fail(c, err)
		return
	}
	kept := url.Values{}
	for k, v := range q {
		if k != "failed" {
			kept[k] = v
		}
	}
	u.render(c, http.StatusOK, "dispatches", &web.View{Title: pg.title("Dispatches", chipsTitle(chips)), Nav: "dispatches", Data: dispatchesView{
		Dispatches: outcomeRows(ds, counts), Failed: f.Failed, Filter: kept, Chips: chips, Pager: pg,
	}})
}

// dispatchChips lists the dispatches page's active filters, naming an action
// and a key as the dispatches do (an action deleted since by its last name).
func (u *ui) dispatchChips(c *gin.Context, f store.DispatchFilter, q url.Values) ([]filterChip, error) {
	ctx := c.Request.Context()
	var chips []filterChip
	if f.ActionID != "" {
		chip := filterChip{Name: "action", Label: "action", Value: f.ActionID, Remove: withoutFilter("/dispatches", q, "action")}
		a, err := u.Store.Action(ctx, f.ActionID)
		switch {
		case err == nil:
			chip.Value = a.Name
		case !isUserError(err):
			return nil, err
		default:
			chip.Title = "no such action (deleted?)"
			ds, _, err := u.Store.Dispatches(ctx, store.DispatchFilter{ActionID: f.ActionID}, store.Page{Limit: 1})
			if err != nil {
				return nil, err
			}
			if len(ds) > 0 {
				chip.Value, chip.Title = ds[0].ActionName, "a deleted action"
			}
		}
		chips = append(chips, chip)
	}
	if f.APIKeyID != "" {
		chip, err := u.keyChip(c, f.APIKeyID, withoutFilter("/dispatches", q, "key"))
		if err != nil {
			return nil, err
		}
		chips = append(chips, chip)
	}
	if f.Failed {
		chips = append(chips, filterChip{Name: "failed", Label: "outcome", Value: "needs attention", Remove: withoutFilter("/dispatches", q, "failed")})
	}
	if !f.Since.IsZero() {
		chips = append(chips, filterChip{Name: "since", Label: "since", Value: web.When(f.Since), Time: web.WhenStamp(f.Since), Remove: withoutFilter("/dispatches", q, "since")})
	}
	if !f.Until.IsZero() {
		chips = append(chips, filterChip{Name: "until", Label: "before", Value: web.When(f.Until), Time: web.WhenStamp(f.Until), Remove: withoutFilter("/dispatches", q, "until")})
	}
	return chips, nil
}

// commandRow is one device's command, as the dispatch page shows it.
type commandRow struct {
	ID        string    `json:"id"`
	DeviceID  string    `json:"device_id"`
	Device    string    `json:"-"`
	Exists    bool      `json:"-"` // the device is still there: its name links to its page
	State     string    `json:"state"`
	Published web.Stamp `json:"published"`
	Acked     web.Stamp `json:"acked"`
	Detail    string    `json:"detail"`
	Expires   web.Stamp `json:"expires"` // for a command not answered yet (commandDetail)
}

type dispatchPageView struct {
	dispatchRow
	Commands []commandRow // a page of them (commandsPerPage)
	Pager    pager
	State    string            // the commands shown are in these states only, "failed or expired" ("": all)
	Filters  []stateFilter     // a link to the commands of each state
	Counts   store.StateCounts // of all the dispatch's commands
	Action   bool              // the action still exists
	Carried  string            // what the trigger carried (its first command's parameters), in a few words
	Params   string            // the same, as JSON
}

// stateFilter links to the dispatch page's commands in one state.
type stateFilter struct {
	State   string
	Count   int
	Link    string
	Current bool
}

// Hidden tells whether the link is left out: no command is in its state (the
// live refresh shows it once one is).
func (f stateFilter) Hidden() bool { return f.Count == 0 && !f.Current }

// FiltersHidden tells whether the state links are left out: all the commands
// are in one state, which is no choice.
func (v *dispatchPageView) FiltersHidden() bool {
	states := len(v.Counts)
	if v.Counts[store.Superseded] > 0 {
		states-- // a count of expired commands, not a state
	}
	return v.State == "" && states < 2
}

// Live tells whether the page refreshes itself: while commands are unsettled,
// and not while it shows the commands of one state only (a command leaving
// that state would stay on it, as it was).
func (v *dispatchPageView) Live() bool { return v.Status == "pending" && v.State == "" }

// dispatchLive is the dispatch page's refresh.
type dispatchLive struct {
	Status   string            `json:"status"`
	Summary  string            `json:"summary"`
	Counts   store.StateCounts `json:"counts"`
	Commands []commandRow      `json:"commands"`
}

// commandsPerPage is how many devices' commands the dispatch page lists at
// once: a fan-out to 10,000 would be megabytes of page, refreshed every second.
const commandsPerPage = 100

// LiveURL is where the page polls for its dispatch and the commands it shows.
func (v *dispatchPageView) LiveURL() string {
	if v.Pager.Page > 1 {
		return "/dispatches/" + v.ID + "/live?page=" + strconv.Itoa(v.Pager.Page)
	}
	return "/dispatches/" + v.ID + "/live"
}

func (u *ui) loadDispatch(c *gin.Context) (*dispatchPageView, error) {
	pg, offset := pagerOf(c, commandsPerPage)
	states, err := statesOf(c)
	if err != nil {
		return nil, err
	}
	d, cmds, total, counts, err := u.Store.DispatchPage(c.Request.Context(), c.Param("id"), states, store.Page{Limit: commandsPerPage, Offset: offset})
	if err != nil {
		return nil, gone(err, dispatchGone)
	}
	pg.setTotal(total, commandsPerPage)
	v := &dispatchPageView{Commands: make([]commandRow, len(cmds)), Pager: pg, State: strings.Join(states, " or "), Counts: counts}
	if d.Targets > 0 {
		for _, st := range store.States {
			v.Filters = append(v.Filters, stateFilter{State: st, Count: counts[st], Current: len(states) == 1 && st == states[0],
				Link: "/dispatches/" + d.ID + "?state=" + st})
		}
	}
	for i, cmd := range cmds {
		v.Commands[i] = commandRow{ID: cmd.ID, DeviceID: cmd.DeviceID, Device: cmd.DeviceID, State: cmd.State,
			Published: web.ClockStamp(cmd.PublishedAt), Acked: web.ClockStamp(cmd.AckedAt)}
		v.Commands[i].Detail, v.Commands[i].Expires = u.commandDetail(&cmd)
	}
	v.dispatchRow = dispatchRowOf(*d, counts)
	return v, nil
}

// commandDetail is what a command's row says of it: the device's answer, or
// for a command not answered yet, until when it may be (expires); for one not
// sent yet, also that it waits for its device (an offline one: to connect).
func (u *ui) commandDetail(cmd *store.Command) (detail string, expires web.Stamp) {
	if cmd.Detail != "" || !store.IsOpen(cmd.State) {
		return cmd.Detail, web.Stamp{}
	}
	if cmd.State == store.StateQueued {
		detail = u.queuedDetail(cmd.DeviceID)
	}
	return detail, web.ClockStamp(&cmd.ExpiresAt)
}

// queuedDetail says what a queued command (not sent yet) waits for.
func (u *ui) queuedDetail(deviceID string) string {
	if u.Presence != nil && u.Presence.Online(deviceID) {
		return "sending (the device is online)"
	}
	return "waiting for the device (offline): sent when it connects"
}

func (u *ui) dispatchPage(c *gin.Context) {
	ctx := c.Request.Context()
	v, err := u.loadDispatch(c)
	if err != nil {
		u.fail(c, err)
		return
	}
	ids := make([]string, len(v.Commands))
	for i, cmd := range v.Commands {
		ids[i] = cmd.DeviceID
	}
	if len(ids) > 0 {
		ds, err := u.Store.DevicesByID(ctx, ids)
		if err != nil {
			u.fail(c, err)
			return
		}
		names := map[string]string{}
		for _, d := range ds {
			names[d.ID] = d.Name
		}
		for i := range v.Commands {
			if n, ok := names[v.Commands[i].DeviceID]; ok {
				v.Commands[i].Device, v.Commands[i].Exists = n, true
			}
		}
	}
	if _, err := u.Store.Action(ctx, v.ActionID); err == nil {
		v.Action = true
	}
	if len(v.Commands) > 0 {
		payload, err := u.Store.FirstCommandPayload(ctx, v.ID)
		if err != nil {
			u.fail(c, err)
			return
		}
		var params map[string]any
		params, v.Params = commandParams(payload)
		v.Carried = paramsSummary(v.Function, params)
	}
	// The title names the trigger by its action and when it came, and says
	// which of its commands the page shows.
	title := "Dispatch: " + v.ActionName + ", " + v.CreatedAt.UTC().Format("2006-01-02 15:04") + " UTC"
	if v.State != "" {
		title += ", " + v.State + " commands"
	}
	u.render(c, http.StatusOK, "dispatch", &web.View{Title: v.Pager.title(title, ""), Nav: "dispatches", Data: v})
}

func (u *ui) dispatchLive(c *gin.Context) {
	v, err := u.loadDispatch(c)
	if err != nil {
		respondError(c, u.Log, err)
		return
	}
	c.JSON(http.StatusOK, dispatchLive{Status: v.Status, Summary: v.Summary, Counts: v.Counts, Commands: v.Commands})
}
