package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	Members map[string]bool // the devices shown ticked
	Devices []store.Device
	TypeID  bool   // more devices than the list shows: others are added by id
	Suggest string // then, where the id field's suggestions come from (suggestDevices)
	Add     string // the device ids typed in to add, as typed

	// Paged: the edit form of a group in a fleet too large to list whole
	// (TypeID). It lists the group's members a page at a time (Shown, of
	// those whose id or name contains Search), and posts only what changes
	// (see saveMemberChanges).
	Paged  bool
	Shown  []store.Device
	Search string
	Pager  pager
	Size   int // how many members the group has

	Posted    bool     // shown again after a save that failed: its changes are not saved
	SavedName string   // the edited group's name as saved, for the page's title
	shownIDs  []string // the members a paged form showed, as it sent them; nil for a page as saved
}

// membersPerPage is how many members a paged group form lists at once.
const membersPerPage = 100

func (u *ui) newGroup(c *gin.Context) {
	u.renderGroupForm(c, http.StatusOK, groupFormView{Post: "/groups/new", Members: map[string]bool{}}, nil, "")
}

func (u *ui) editGroup(c *gin.Context) {
	ctx := c.Request.Context()
	g, err := u.Store.Group(ctx, c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, groupGone))
		return
	}
	paged, err := u.tooManyToList(ctx)
	if err != nil {
		u.fail(c, err)
		return
	}
	v := groupFormView{ID: g.ID, SavedName: g.Name, Post: c.Request.URL.RequestURI(), Name: g.Name, Members: map[string]bool{}, Paged: paged, Size: len(g.DeviceIDs)}
	if paged {
		v.Version = groupNameVersion(g)
	} else {
		v.Version = groupVersion(g)
		for _, id := range g.DeviceIDs {
			v.Members[id] = true
		}
	}
	u.renderGroupForm(c, http.StatusOK, v, nil, "")
}

// tooManyToList reports whether there are more devices than a form lists
// (pickerLimit): a group's edit form then pages through its members instead.
func (u *ui) tooManyToList(ctx context.Context) (bool, error) {
	_, total, err := u.Store.Devices(ctx, store.Page{Limit: 1})
	return total > pickerLimit, err
}

// readGroupForm reads the posted name and members: the ticked devices and the
// ids typed in to add (separated by commas, spaces or new lines). Only the
// ticked ones are shown ticked again; the typed ones stay in their field.
func readGroupForm(c *gin.Context, v *groupFormView) (groupInput, []string) {
	v.Name, v.Add = form(c, "name"), form(c, "add_devices")
	typed := strings.FieldsFunc(v.Add, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	ticked := c.PostFormArray("device_ids")
	in := groupInput{Name: v.Name, DeviceIDs: append(slices.Clip(ticked), typed...)}
	v.Members = map[string]bool{}
	for _, id := range ticked {
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
	// The form says which it is: the fleet may have grown past the list, or
	// shrunk, since it was opened.
	v := groupFormView{ID: g.ID, SavedName: g.Name, Version: form(c, "version"), Post: c.Request.URL.RequestURI(),
		Paged: c.PostForm("members") == "changes", Size: len(g.DeviceIDs)}
	if v.Paged {
		u.saveMemberChanges(c, g, v)
		return
	}
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
	u.groupUpdated(c, g, v, err, &saved, g.DeviceIDs)
}

// memberChanges are what a paged group form changes of the members: those
// unticked leave, those typed in join.
type memberChanges struct {
	remove map[string]bool
	add    []string
}

// readMemberChanges reads a paged form: the members it showed (shown), those
// of them still ticked, and the ids typed in.
func readMemberChanges(c *gin.Context, v *groupFormView) (groupInput, memberChanges) {
	in, typed := readGroupForm(c, v)
	v.shownIDs = append([]string{}, c.PostFormArray("shown")...) // not nil: shown again as sent (pageOfMembers)
	ch := memberChanges{remove: map[string]bool{}, add: typed}
	for _, id := range v.shownIDs {
		if !v.Members[id] {
			ch.remove[id] = true
		}
	}
	in.DeviceIDs = nil // the members are not replaced, only changed (apply)
	return in, ch
}

// apply returns the members a group has after the changes, from those it
// has now. An id both unticked and typed in stays: typing it is the later
// word.
func (ch memberChanges) apply(members []string) []string {
	out := make([]string, 0, len(members)+len(ch.add))
	seen := make(map[string]bool, cap(out))
	keep := func(id string) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range members {
		if !ch.remove[id] {
			keep(id)
		}
	}
	for _, id := range ch.add {
		keep(id)
	}
	return out
}

// saveMemberChanges saves a paged form: the name, and the changes to the
// members applied to the members the group has when it is saved, so that a
// member added or removed elsewhere meanwhile, which this page may not show,
// stays so. Changes never cross: only a name saved elsewhere meanwhile
// refuses the save, as the other edit forms do.
func (u *ui) saveMemberChanges(c *gin.Context, g *store.Group, v groupFormView) {
	in, ch := readMemberChanges(c, &v)
	if err := errors.Join(in.group(g), u.checkTyped(c, ch.add)); err != nil { // both marked at once
		u.groupFormError(c, v, err)
		return
	}
	var saved store.Group
	err := u.Store.UpdateGroup(c.Request.Context(), g, func(cur *store.Group) error {
		if stale(v.Version, groupNameVersion(cur)) {
			saved = *cur
			return errStale
		}
		g.DeviceIDs = ch.apply(cur.DeviceIDs)
		return nil
	})
	u.groupUpdated(c, g, v, err, &saved, ch.add)
}

// groupUpdated answers a save of the edit form: err is UpdateGroup's, saved
// the group as it is now if the form was stale, and added the device ids
// the form asked for, one of which may have been deleted meanwhile.
func (u *ui) groupUpdated(c *gin.Context, g *store.Group, v groupFormView, err error, saved *store.Group, added []string) {
	ctx := c.Request.Context()
	switch {
	case errors.Is(err, errStale):
		// Shown again as ticked, over the version now saved: a second save
		// replaces it, knowingly.
		v.Version, v.SavedName, v.Size = groupVersion(saved), saved.Name, len(saved.DeviceIDs)
		if v.Paged {
			v.Version = groupNameVersion(saved)
		}
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
		u.groupFormError(c, v, groupWriteError(ctx, u.Store, err, g.Name, added))
		return
	}
	u.Log.Info("ui: group updated", "id", g.ID, "by", account(c).User.Username)
	if v.Paged {
		// Back to the page of members it was on, to go on from there.
		u.redirect(c, v.Post, "Saved the group “"+g.Name+"”: its changes on this page are in.")
		return
	}
	u.redirect(c, "/groups", "Saved the group “"+g.Name+"”.")
}

// groupVersion is the version of a group that its edit form carries.
func groupVersion(g *store.Group) string {
	return editVersion(struct {
		Name    string
		Members []string
	}{g.Name, slices.Sorted(slices.Values(g.DeviceIDs))})
}

// groupNameVersion is the version that a paged edit form carries: its name
// only, as it changes the members without replacing them.
func groupNameVersion(g *store.Group) string {
	return editVersion(struct{ Name string }{g.Name})
}

func (u *ui) groupFormError(c *gin.Context, v groupFormView, err error) {
	if !isUserError(err) {
		u.fail(c, err)
		return
	}
	errs, msg := fieldErrors(err, func(f string) string { // device_ids[2] -> device_ids
		f, _, _ = strings.Cut(f, "[")
		if v.Paged && f == "device_ids" { // a paged form adds devices only by id
			f = "add_devices"
		}
		return f
	})
	if asError(err).Code == actions.CodeConflict {
		errs, msg = map[string]string{"name": "another group already has this name"}, "Please correct the marked field."
	}
	u.renderGroupForm(c, http.StatusUnprocessableEntity, v, errs, msg)
}

// renderGroupForm shows the group form: with the devices to tick, or, paged,
// with a page of the group's members.
func (u *ui) renderGroupForm(c *gin.Context, status int, v groupFormView, errs map[string]string, msg string) {
	v.Posted = c.Request.Method == http.MethodPost
	var err error
	if v.Paged {
		err = u.pageOfMembers(c, &v)
	} else {
		err = u.deviceChoices(c, &v)
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	if v.TypeID {
		v.Suggest = "/devices/suggest"
		if v.ID != "" {
			v.Suggest += "?not_in_group=" + url.QueryEscape(v.ID)
		}
	}
	// An edit page names the group as saved (see renderActionForm).
	title := "New group"
	if v.ID != "" {
		filter := ""
		if v.Search != "" {
			filter = "members with “" + v.Search + "”"
		}
		title = v.Pager.title("Edit group “"+v.SavedName+"”", filter)
	}
	u.render(c, status, "group_form", &web.View{Title: title, Nav: "groups", Errors: errs, Error: msg, Data: v})
}

// deviceChoices lists the first devices and every ticked one to choose from;
// with more devices than that, others are typed in.
func (u *ui) deviceChoices(c *gin.Context, v *groupFormView) error {
	ctx := c.Request.Context()
	devs, total, err := u.Store.Devices(ctx, store.Page{Limit: pickerLimit})
	if err != nil {
		return err
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
			return err
		}
		devs = append(devs, more...)
		sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })
	}
	v.Devices = devs
	return nil
}

// pageOfMembers lists a page of the group's members (?page=, of those whose
// id or name contains ?q=): as saved, all ticked; or, shown again after a
// save that failed, those the form showed, ticked as they were sent.
func (u *ui) pageOfMembers(c *gin.Context, v *groupFormView) error {
	ctx := c.Request.Context()
	pg, offset := pagerOf(c, membersPerPage)
	v.Search = strings.TrimSpace(c.Query("q"))
	shown, total, err := u.Store.GroupMembers(ctx, v.ID, v.Search, store.Page{Limit: membersPerPage, Offset: offset})
	if err != nil {
		return err
	}
	pg.setTotal(total, membersPerPage)
	v.Pager, v.TypeID = pg, true
	if v.shownIDs == nil {
		for _, d := range shown {
			v.Members[d.ID] = true
		}
		v.Shown = shown
		return nil
	}
	if v.Shown, err = u.Store.DevicesByID(ctx, v.shownIDs); err != nil {
		return err
	}
	sort.Slice(v.Shown, func(i, j int) bool { return v.Shown[i].ID < v.Shown[j].ID })
	return nil
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
		u.confirm(c, "Delete group “"+g.Name+"”", "groups", confirmView{
			Message: "The group “" + g.Name + "” cannot be deleted while " +
				plural(len(targeting), "this action targets", "these actions target") + " it:",
			Blocked: blockingActions(targeting),
			Detail: "Change " + plural(len(targeting), "its target", "their target") + " to another group or device, or delete " +
				plural(len(targeting), "it", "them") + ", then delete the group.",
			Cancel: "/groups",
		})
		return
	}
	u.confirm(c, "Delete group “"+g.Name+"”", "groups", confirmView{
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
