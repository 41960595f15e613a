package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
)

type groupView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	DeviceIDs []string  `json:"device_ids"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func groupViewOf(g *store.Group) groupView {
	ids := g.DeviceIDs
	if ids == nil {
		ids = []string{}
	}
	return groupView{ID: g.ID, Name: g.Name, DeviceIDs: ids, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

type groupInput struct {
	Name      string   `json:"name"`
	DeviceIDs []string `json:"device_ids"`
}

// group validates the input into g. Its device ids are read as a device's
// id is when it is made, without the spaces around them, and kept once each,
// in the order of the id, as the group is read back (so that what a create
// answers is what a GET answers).
func (in *groupInput) group(g *store.Group) error {
	var err error
	if g.Name, err = actions.RequiredName("name", in.Name); err != nil {
		return err
	}
	g.DeviceIDs = g.DeviceIDs[:0]
	for i, id := range in.DeviceIDs {
		in.DeviceIDs[i] = strings.TrimSpace(id) // as sent, for groupWriteError's places
		g.DeviceIDs = append(g.DeviceIDs, in.DeviceIDs[i])
	}
	slices.Sort(g.DeviceIDs)
	g.DeviceIDs = slices.Compact(g.DeviceIDs)
	return nil
}

// groupWriteError explains what went wrong in a write of the group name with
// the members ids: the first of them that is no device's, or the name another
// group has.
func groupWriteError(ctx context.Context, st *store.Store, err error, name string, ids []string) error {
	if !errors.Is(err, store.ErrNotFound) {
		return conflictDetail(err, "a group named %q already exists", name)
	}
	ds, lookupErr := st.DevicesByID(ctx, ids)
	if lookupErr != nil {
		return lookupErr
	}
	found := make(map[string]bool, len(ds))
	for _, d := range ds {
		found[d.ID] = true
	}
	for i, id := range ids {
		if !found[id] {
			return actions.Invalid(fmt.Sprintf("device_ids[%d]", i), "no device has the id %q", id)
		}
	}
	return actions.Invalid("device_ids", "lists a device that does not exist") // created since
}

func (a *api) createGroup(c *gin.Context) {
	var in groupInput
	if err := bindJSON(c, &in, groupView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	g := &store.Group{ID: actions.NewID()}
	if err := in.group(g); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if err := a.Store.CreateGroup(c.Request.Context(), g); err != nil {
		respondError(c, a.Log, groupWriteError(c.Request.Context(), a.Store, err, g.Name, in.DeviceIDs))
		return
	}
	created(c, "/api/v1/groups/"+g.ID, groupViewOf(g))
}

func (a *api) listGroups(c *gin.Context) {
	serveList(a, c, a.Store.Groups, groupViewOf)
}

func (a *api) getGroup(c *gin.Context) {
	g, err := a.Store.Group(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, groupViewOf(g))
}

func (a *api) updateGroup(c *gin.Context) {
	ctx := c.Request.Context()
	g := &store.Group{ID: c.Param("id")}
	if _, err := a.Store.Group(ctx, g.ID); err != nil {
		respondError(c, a.Log, err) // an unknown group is 404 whatever the body, as for every resource
		return
	}
	var in groupInput
	if err := bindJSON(c, &in, groupView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if err := in.group(g); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if in.DeviceIDs == nil { // left out (or null): the members stay, as a rename expects
		if err := a.Store.RenameGroup(ctx, g.ID, g.Name); err != nil {
			respondError(c, a.Log, conflictDetail(err, "a group named %q already exists", g.Name))
			return
		}
		c.Status(http.StatusNoContent)
		return
	}
	err := a.Store.UpdateGroup(ctx, g, nil)
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := a.Store.Group(ctx, g.ID); errors.Is(gerr, store.ErrNotFound) {
			respondError(c, a.Log, gerr)
			return
		}
	}
	if err != nil {
		respondError(c, a.Log, groupWriteError(ctx, a.Store, err, g.Name, in.DeviceIDs))
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *api) deleteGroup(c *gin.Context) {
	id := c.Param("id")
	if err := a.Store.DeleteGroup(c.Request.Context(), id); err != nil {
		respondError(c, a.Log, a.targetedConflict(c.Request.Context(), err, actions.TargetGroup, id))
		return
	}
	c.Status(http.StatusNoContent)
}

// targetedConflict says which actions keep a device or group from being
// deleted (their names and ids, the first few), so that a script or its
// admin knows what to change; other errors pass.
func (a *api) targetedConflict(ctx context.Context, err error, targetType, id string) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	what := fmt.Sprintf("%s %q is the target of", targetType, id)
	as, lookErr := a.Store.ActionsTargeting(ctx, targetType, id)
	if lookErr != nil || len(as) == 0 {
		return actions.Errorf(actions.CodeConflict, "%s an action; change or delete the action first", what)
	}
	names := make([]string, len(as))
	for i, ac := range as {
		names[i] = fmt.Sprintf("%q (%s)", ac.Name, ac.ID)
	}
	return actions.Errorf(actions.CodeConflict, "%s %s %s; change %s target or delete %s first", what,
		plural(len(as), "the action", "the actions"), actions.Enumerate(names), plural(len(as), "its", "their"), plural(len(as), "it", "them"))
}

// conflictDetail gives a store conflict a helpful message; other errors pass.
func conflictDetail(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrConflict) {
		return actions.Errorf(actions.CodeConflict, format, args...)
	}
	return err
}
