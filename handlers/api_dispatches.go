package handlers

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/store"
)

type dispatchView struct {
	ID           string            `json:"id"`
	ActionID     string            `json:"action_id"`
	ActionName   string            `json:"action_name"`
	EventID      string            `json:"event_id"`
	Function     string            `json:"function"`
	APIKeyID     string            `json:"api_key_id,omitempty"`
	APIKeyPrefix string            `json:"api_key_prefix,omitempty"`
	Method       string            `json:"method"`
	Source       string            `json:"source"`
	Targets      int               `json:"targets"`
	CreatedAt    time.Time         `json:"created_at"`
	Counts       store.StateCounts `json:"counts"`
	Status       string            `json:"status"`
	Commands     []commandView     `json:"commands,omitzero"` // in a dispatch's detail, [] when it has none: not in a list
}

type commandView struct {
	ID          string     `json:"id"`
	DeviceID    string     `json:"device_id"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	PublishedAt *time.Time `json:"published_at"`
	AckedAt     *time.Time `json:"acked_at"`
	Detail      *string    `json:"detail"` // null when there is none
}

func dispatchViewOf(d *store.Dispatch, counts store.StateCounts) dispatchView {
	if counts == nil {
		counts = store.StateCounts{}
	}
	return dispatchView{
		ID: d.ID, ActionID: d.ActionID, ActionName: d.ActionName, EventID: d.EventID, Function: d.Function,
		APIKeyID: d.APIKeyID, APIKeyPrefix: d.APIKeyPrefix, Method: d.Method, Source: d.Source,
		Targets: d.Targets, CreatedAt: d.CreatedAt, Counts: counts, Status: DispatchStatus(d.Targets, counts),
	}
}

// DispatchStatus sums up a dispatch's command states in one word: "pending" while
// any command is unsettled, then "succeeded", "superseded" (every command
// replaced by a later dispatch before its ack: on purpose, not a failure),
// "failed" (none succeeded) or "partial"; "empty" for a dispatch that reached no
// device.
func DispatchStatus(targets int, c store.StateCounts) string {
	switch {
	case targets == 0:
		return "empty"
	case c[store.StateQueued]+c[store.StatePublished] > 0:
		return "pending"
	case c[store.StateSucceeded] == targets:
		return "succeeded"
	case c[store.Superseded] == targets:
		return "superseded"
	case c[store.StateSucceeded] == 0:
		return "failed"
	}
	return "partial"
}

// dispatchFilterOf reads the dispatch list's filters, each named as the
// field it matches: ?action_id=, ?api_key_id=, ?failed=true (a command
// failed, was rejected or expired, not superseded), ?since= and ?until=
// (RFC 3339, on created_at: from since, up to but not including until).
func dispatchFilterOf(c *gin.Context) (store.DispatchFilter, error) {
	q := func(name string) string { return strings.TrimSpace(c.Query(name)) }
	f := store.DispatchFilter{ActionID: q("action_id"), APIKeyID: q("api_key_id")}
	if v := q("failed"); v != "" {
		var err error
		if f.Failed, err = strconv.ParseBool(v); err != nil {
			return f, badRequest("failed must be true or false")
		}
	}
	var err error
	f.Since, f.Until, err = windowOf(c)
	return f, err
}

func (a *api) listDispatches(c *gin.Context) {
	f, err := dispatchFilterOf(c)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	p, err := pageOf(c)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	ds, counts, total, err := a.Store.DispatchesWithCounts(c.Request.Context(), f, p)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	views := make([]dispatchView, len(ds))
	for i := range ds {
		views[i] = dispatchViewOf(&ds[i], counts[ds[i].ID])
	}
	respondList(c, views, total, p)
}

func (a *api) getDispatch(c *gin.Context) {
	d, cmds, counts, err := a.Store.DispatchDetail(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, dispatchDetailView(d, cmds, counts))
}

// dispatchDetailView is a dispatch with every command, as GET shows it to an
// admin, and to the caller who made it.
func dispatchDetailView(d *store.Dispatch, cmds []store.Command, counts store.StateCounts) dispatchView {
	v := dispatchViewOf(d, counts)
	v.Commands = make([]commandView, len(cmds))
	for i := range cmds {
		v.Commands[i] = commandViewOf(&cmds[i])
	}
	return v
}

// listDispatchCommands pages a dispatch's commands, in the states of ?state=
// only if given: a fan-out to thousands of devices, or the screens it failed on.
func (a *api) listDispatchCommands(c *gin.Context) {
	states, err := statesOf(c)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	id := c.Param("id")
	if _, err := a.Store.Dispatch(c.Request.Context(), id); err != nil {
		respondError(c, a.Log, err)
		return
	}
	serveList(a, c, func(ctx context.Context, p store.Page) ([]store.Command, int64, error) {
		return a.Store.DispatchCommandPage(ctx, id, states, p)
	}, commandViewOf)
}

// statesOf reads ?state=, command states separated by commas, or given
// more than once (none: every state).
func statesOf(c *gin.Context) ([]string, error) {
	var states []string
	for st := range strings.SplitSeq(strings.Join(c.QueryArray("state"), ","), ",") {
		if st = strings.TrimSpace(st); st == "" {
			continue
		}
		if !slices.Contains(store.States, st) {
			return nil, badRequest("state %q is not a command state; use one or more of %s, separated by commas", st, strings.Join(store.States, ", "))
		}
		if !slices.Contains(states, st) {
			states = append(states, st)
		}
	}
	return states, nil
}

func commandViewOf(cmd *store.Command) commandView {
	return commandView{
		ID: cmd.ID, DeviceID: cmd.DeviceID, State: cmd.State, CreatedAt: cmd.CreatedAt, ExpiresAt: cmd.ExpiresAt,
		PublishedAt: cmd.PublishedAt, AckedAt: cmd.AckedAt, Detail: nullIfEmpty(cmd.Detail),
	}
}

// nullIfEmpty reads an empty string as a value not known (yet), which the API
// shows as null, as it does a time not known yet.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
