package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"devicehooks/actions"
	"devicehooks/store"
)

type deviceView struct {
	ID        string                  `json:"id"`
	Name      string                  `json:"name"`
	Online    bool                    `json:"online"`
	LastSeen  *time.Time              `json:"last_seen"`
	CreatedAt time.Time               `json:"created_at"`
	Desired   *actions.DesiredMessage `json:"desired,omitempty"`
	Token     string                  `json:"token,omitempty"`
}

func (a *api) deviceViewOf(d *store.Device) deviceView {
	v := deviceView{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt}
	v.Online, v.LastSeen = a.Presence.Of(d)
	if d.DesiredVersion > 0 {
		ds := actions.DesiredOf(d)
		v.Desired = &ds
	}
	return v
}

func (a *api) createDevice(c *gin.Context) {
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := bindJSON(c, &in, deviceView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	d, token, err := a.Devices.Create(c.Request.Context(), in.ID, in.Name)
	if err != nil {
		respondError(c, a.Log, conflictDetail(err, "a device with id %q already exists", strings.TrimSpace(in.ID)))
		return
	}
	v := a.deviceViewOf(d)
	v.Token = token
	created(c, "/api/v1/devices/"+d.ID, v)
}

func (a *api) listDevices(c *gin.Context) {
	serveList(a, c, a.Store.Devices, a.deviceViewOf)
}

func (a *api) getDevice(c *gin.Context) {
	d, err := a.Store.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, a.deviceViewOf(d))
}

func (a *api) updateDevice(c *gin.Context) {
	if _, err := a.Store.Device(c.Request.Context(), c.Param("id")); err != nil {
		respondError(c, a.Log, err) // an unknown device is 404 whatever the body, as for every resource
		return
	}
	var in struct {
		Name *string `json:"name"`
	}
	if err := bindJSON(c, &in, deviceView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if in.Name == nil {
		respondError(c, a.Log, actions.Invalid("name", "is required (at most %d characters; empty for the device's id)", actions.MaxName))
		return
	}
	if _, err := a.Devices.Rename(c.Request.Context(), c.Param("id"), *in.Name); err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *api) rotateDeviceToken(c *gin.Context) {
	token, err := a.Devices.Rotate(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": c.Param("id"), "token": token})
}

func (a *api) deleteDevice(c *gin.Context) {
	id := c.Param("id")
	if err := a.Devices.Delete(c.Request.Context(), id); err != nil {
		respondError(c, a.Log, a.targetedConflict(c.Request.Context(), err, actions.TargetDevice, id))
		return
	}
	c.Status(http.StatusNoContent)
}

// deviceCommandView is a command in a device's history, with the trigger it
// came from.
type deviceCommandView struct {
	commandView
	DispatchID string `json:"dispatch_id"`
	Function   string `json:"function"`
	ActionID   string `json:"action_id"`
	ActionName string `json:"action_name"`
	EventID    string `json:"event_id"`
}

// deviceHistoryView is a page of a device's history. It pages by dispatch
// (?before=), not by offset: it is found through the dispatches, newest
// first, and a page looks at a bounded number of them (see
// store.DeviceHistory).
type deviceHistoryView struct {
	Items          []deviceCommandView `json:"items"`
	Limit          int                 `json:"limit"`
	Next           *string             `json:"next"` // ?before= for the next page; null at the end
	Searched       int                 `json:"searched"`
	SearchedBackTo *time.Time          `json:"searched_back_to"`
}

// listDeviceCommands pages a device's commands, newest first: what each
// trigger sent the screen and what became of it.
func (a *api) listDeviceCommands(c *gin.Context) {
	q, err := historyQueryOf(c)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	ctx := c.Request.Context()
	d, err := a.Store.Device(ctx, c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	h, err := a.Store.DeviceHistory(ctx, d.ID, q.states, q.before, q.limit)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	v := deviceHistoryView{Items: make([]deviceCommandView, len(h.Commands)), Limit: q.limit, Next: nullIfEmpty(h.Next), Searched: h.Searched}
	if !h.Reached.IsZero() {
		v.SearchedBackTo = &h.Reached
	}
	for i := range h.Commands {
		cmd := &h.Commands[i]
		v.Items[i] = deviceCommandView{commandView: commandViewOf(&cmd.Command), DispatchID: cmd.DispatchID,
			Function: cmd.Function, ActionID: cmd.ActionID, ActionName: cmd.ActionName, EventID: cmd.EventID}
	}
	c.JSON(http.StatusOK, v)
}

// historyQuery is what a page of a device's history asks for.
type historyQuery struct {
	states []string
	before string
	limit  int
}

// historyQueryOf reads ?state=, ?before= and ?limit= (as a list's); ?offset=
// is refused, as this list does not page by it.
func historyQueryOf(c *gin.Context) (historyQuery, error) {
	var q historyQuery
	if _, ok := c.GetQuery("offset"); ok {
		return q, badRequest("a device's commands page with ?before= (the answer's next), not ?offset=")
	}
	p, err := pageOf(c)
	if err != nil {
		return q, err
	}
	q.limit = p.Limit
	q.states, q.before, err = historyFilter(c)
	return q, err
}

// historyFilter reads what a page of a device's history shows: ?state= and
// ?before=, a dispatch id as a page's next gives it. Another ?before= is
// refused, not read as none: a damaged one would start again from the
// newest without a word.
func historyFilter(c *gin.Context) (states []string, before string, err error) {
	if states, err = statesOf(c); err != nil {
		return nil, "", err
	}
	before = c.Query("before")
	if id, err := uuid.Parse(before); before != "" && (err != nil || id.String() != before) { // as ids are written: compared as text
		return nil, "", badRequest("before must be a dispatch id, as a page's next gives it")
	}
	return states, before, nil
}
