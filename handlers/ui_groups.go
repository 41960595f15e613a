package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
	"devicehooks/web"
)

// groupsPerPage is how many groups the groups page lists at once.
const groupsPerPage = 100

type groupsView struct {
	Groups []groupRow
	Names  map[string]string // device id -> name, of the members shown
	Pager  pager
}

// groupRow is a group on the groups page: its first members (by id, shown by
// name), and how many more its edit page lists.
type groupRow struct {
	store.Group
	Shown []string
	More  int
}

// membersShown is how many members of a group the groups page names: a group
// of hundreds would make the page as long as all their names.
const membersShown = 12

func (u *ui) groupList(c *gin.Context) {
	ctx := c.Request.Context()
	pg, offset := pagerOf(c, groupsPerPage)
	gs, total, err := u.Store.Groups(ctx, store.Page{Limit: groupsPerPage, Offset: offset})
	if err != nil {
		u.fail(c, err)
		return
	}
	pg.setTotal(total, groupsPerPage)
	var ids []string
	rows := make([]groupRow, len(gs))
	for i, g := range gs {
		shown := g.DeviceIDs[:min(len(g.DeviceIDs), membersShown)]
		rows[i] = groupRow{Group: g, Shown: shown, More: len(g.DeviceIDs) - len(shown)}
		ids = append(ids, shown...)
	}
	names := map[string]string{}
	if len(ids) > 0 {
		ds, err := u.Store.DevicesByID(ctx, ids)
		if err != nil {
			u.fail(c, err)
			return
		}
		for _, d := range ds {
			names[d.ID] = d.Name
		}
	}
	u.render(c, http.StatusOK, "groups", &web.View{Title: pg.title("Groups", ""), Nav: "groups", Data: groupsView{Groups: rows, Names: names, Pager: pg}})
}

type groupFormView struct {
	ID      string
	Version string // the edited group's version (editVersion) the form was opened on
	Post    string
	Name    string
	Members map[string]bool
	Devices []store.Device
	TypeID  bool     // more devices than the list shows: others are added by id
	Suggest []string // then, the ids the list does not show, for the id field
	Add     string   // the device ids typed in to add, as typed

	SavedName string // the edited group's name as saved, for the page's title
}

// maxSuggestions bounds the ids the group form suggests (about 1 MB of page at
// the longest ids); past that, ids are typed without suggestions.
const maxSuggestions = 20000

func (u *ui) newGroup(c *gin.Context) {
	u.renderGroupForm(c, http.StatusOK, groupFormView{Post: "/groups/new", Members: map[string]bool{}}, nil, "")
}

func (u *ui) editGroup(c *gin.Context) {
	g, err := u.Store.Group(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, groupGone))
		return
	}
	v := groupFormView{ID: g.ID, SavedName: g.Name, Version: groupVersion(g), Post: "/groups/" + g.ID + "/edit", Name: g.Name, Members: map[string]bool{}}
	for _, id := range g.DeviceIDs {
		v.Members[id] = true
	}
	u.renderGroupForm(c, http.StatusOK, v, nil, "")
}

// readGroupForm reads the posted name and members: the ticked devices and the
// ids typed in to add (separated by commas or spaces).
func readGroupForm(c *gin.Context, v *groupFormView) (groupInput, []string) {
	v.Name, v.Add = form(c, "name"), form(c, "add_devices")
	typed := strings.FieldsFunc(v.Add, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	in := groupInput{Name: v.Name, DeviceIDs: append(c.PostFormArray("device_ids"), typed...)}
	v.Members = map[string]bool{}
	for _, id := range in.DeviceIDs {
		v.Members[id] = true
	}
	return in, typed
}

// checkTyped refuses device ids typed in that name no device, at their field.
func (u *ui) checkTyped(c *gin.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ds, err := u.Store.DevicesByID(c.Request.Context(), ids)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	for _, d := range ds {
		found[d.ID] = true
	}
	var unknown []string
	for _, id := range ids {
		if !found[id] {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return actions.Invalid("add_devices", "no device has the id %s", strings.Join(unknown, ", "))
	}
	return nil
}

func (u *ui) createGroup(c *gin.Context) {
	v := groupFormView{Post: "/groups/new"}
	in, typed := readGroupForm(c, &v)
	g := &store.Group{ID: actions.NewID()}
	if err := errors.Join(in.group(g), u.checkTyped(c, typed)); err != nil { // both marked at once
		u.groupFormError(c, v, err)
		return
	}
	if err := u.Store.CreateGroup(c.Request.Context(), g); err != nil {
		u.groupFormError(c, v, groupWriteError(c.Request.Context(), u.Store, err, g.Name, g.DeviceIDs))
		return
	}
	u.Log.Info("ui: group created", "id", g.ID, "by", account(c).User.Username)
	u.redirect(c, "/groups", "Created the group “"+g.Name+"”.")
}

func (u *ui) updateGroup(c *gin.Context) {
	ctx := c.Request.Context()
	g, err := u.Store.Group(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/groups", gone(err, groupGone))
		return
	}
	v := groupFormView{ID: g.ID, SavedName: g.Name, Version: form(c, "version"), Post: "/groups/" + g.ID + "/edit"}
	in, typed := readGroupForm(c, &v)
	if err := errors.Join(in.group(g), u.checkTyped(c, typed)); err != nil { // both marked at once
		u.groupFormError(c, v, err)
		return
	}
	var saved store.Group
	err = u.Store.UpdateGroup(ctx, g, func(cur *store.Group) error {
		if stale(v.Version, groupVersion(cur)) {
			saved = *cur
			return errStale
		}
		return nil
	})
	switch {
	case errors.Is(err, errStale):
		// Shown again as ticked, over the version now saved: a second save
		// replaces it, knowingly.
		v.Version, v.SavedName = groupVersion(&saved), saved.Name
		n := len(saved.DeviceIDs)
		u.renderGroupForm(c, http.StatusConflict, v, nil, staleMessage("group", fmt.Sprintf("“%s” with %d %s", saved.Name, n, plural(n, "device", "devices"))))
		return
	case errors.Is(err, store.ErrNotFound): // the group, or one of the devices, is gone
		if _, gerr := u.Store.Group(ctx, g.ID); gerr != nil {
			u.redirectError(c, "/groups", gone(gerr, groupGone))
			return
		}
	}
	if err != nil {
		u.groupFormError(c, v, groupWriteError(ctx, u.Store, err, g.Name, g.DeviceIDs))
		return
	}
	u.Log.Info("ui: group updated", "id", g.ID, "by", account(c).User.Username)
	u.redirect(c, "/groups", "Saved the group “"+g.Name+"”.")
}

// groupVersion is the version of a group that its edit form carries.
func groupVersion(g *store.Group) string {
	return editVersion(struct {
		Name    string
		Members []string
	}{g.Name, slices.Sorted(slices.Values(g.DeviceIDs))})
}

func (u *ui) groupFormError(c *gin.Context, v groupFormView, err error) {
	if !isUserError(err) {
		u.fail(c, err)
		return
	}
	errs, msg := fieldErrors(err, func(f string) string { // device_ids[2] -> device_ids
		f, _, _ = strings.Cut(f, "[")
		return f
	})
	if asError(err).Code == actions.CodeConflict {
		errs, msg = map[string]string{"name": "another group already has this name"}, "Please correct the marked field."
	}
	u.renderGroupForm(c, http.StatusUnprocessableEntity, v, errs, msg)
}

// renderGroupForm lists the first devices and every current member to choose
// from; with more devices than that, others are typed in (with suggestions).
func (u *ui) renderGroupForm(c *gin.Context, status int, v groupFormView, errs map[string]string, msg string) {
	ctx := c.Request.Context()
	devs, total, err := u.Store.Devices(ctx, store.Page{Limit: pickerLimit})
	if err != nil {
		u.fail(c, err)
		return
	}
	v.TypeID = total > int64(len(devs))
	listed := map[string]bool{}
	for _, d := range devs {
		listed[d.ID] = true
	}
	var missing []string
	for id := range v.Members {
		if !listed[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		more, err := u.Store.DevicesByID(ctx, missing)
		if err != nil {
			u.fail(c, err)
			return
		}
		devs = append(devs, more...)
		sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })
	}
	v.Devices = devs
	if v.TypeID {
		ids, err := u.Store.DeviceIDs(ctx)
		if err != nil {
			u.fail(c, err)
			return
		}
		for _, id := range ids {
			if !listed[id] && !v.Members[id] && len(v.Suggest) < maxSuggestions {
				v.Suggest = append(v.Suggest, id)
			}
		}
	}
	// An edit page names the group as saved (see renderActionForm).
	title := "New group"
	if v.ID != "" {
		title = "Edit “" + v.SavedName + "”"
	}
	u.render(c, status, "group_form", &web.View{Title: title, Nav: "groups", Errors: errs, Error: msg, Data: v})
}

func (u *ui) confirmDeleteGroup(c *gin.Context) {
	g, err := u.Store.Group(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, groupGone))
		return
	}
	n, only, err := u.keysScopedTo(c.Request.Context(), "", g.ID)
	if err != nil {
		u.fail(c, err)
		return
	}
	targeting, err := u.Store.ActionsTargeting(c.Request.Context(), actions.TargetGroup, g.ID)
	if err != nil {
		u.fail(c, err)
		return
	}
	if len(targeting) > 0 {
		u.confirm(c, "Delete group", "groups", confirmView{
			Message: "The group “" + g.Name + "” cannot be deleted while " +
				plural(len(targeting), "this action targets", "these actions target") + " it:",
			Blocked: blockingActions(targeting),
			Detail: "Change " + plural(len(targeting), "its target", "their target") + " to another group or device, or delete " +
				plural(len(targeting), "it", "them") + ", then delete the group.",
			Cancel: "/groups",
		})
		return
	}
	u.confirm(c, "Delete group", "groups", confirmView{
		Message: "Delete the group “" + g.Name + "”?",
		Detail:  "Its devices stay; only the group goes.",
		Note:    scopeNote(n, only, "group"),
		Action:  "/groups/" + g.ID + "/delete", Button: "Delete group", Cancel: "/groups", Danger: true,
	})
}

func (u *ui) deleteGroup(c *gin.Context) {
	ctx := c.Request.Context()
	g, err := u.Store.Group(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/groups", gone(err, groupGone))
		return
	}
	if err := u.Store.DeleteGroup(ctx, g.ID); err != nil {
		msg := u.deleteRefusal(ctx, actions.TargetGroup, g.ID, "The group “"+g.Name+"”")
		u.redirectError(c, "/groups", gone(conflictDetail(err, "%s", msg), groupGone))
		return
	}
	u.Log.Info("ui: group deleted", "id", g.ID, "by", account(c).User.Username)
	u.redirect(c, "/groups", "Deleted the group “"+g.Name+"”.")
}
