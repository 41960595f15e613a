package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
	"devicehooks/web"
)

// actionsPerPage is how many actions the actions page lists at once.
const actionsPerPage = 100

// pickerLimit is how many devices or groups a target picker lists; with more
// devices, the device is typed in (with suggestions).
const pickerLimit = 500

type actionRow struct {
	store.Action
	Label   string // the function's label
	Summary string // its parameters, in a few words ("on: Evacuate")
	Target  string // who it reaches, for people
}

type actionListView struct {
	Actions []actionRow
	Pager   pager
}

func (u *ui) actionList(c *gin.Context) {
	ctx := c.Request.Context()
	pg, offset := pagerOf(c, actionsPerPage)
	as, total, err := u.Store.Actions(ctx, store.Page{Limit: actionsPerPage, Offset: offset})
	if err != nil {
		u.fail(c, err)
		return
	}
	pg.setTotal(total, actionsPerPage)
	names, err := u.targetNames(ctx, as)
	if err != nil {
		u.fail(c, err)
		return
	}
	rows := make([]actionRow, len(as))
	for i, a := range as {
		rows[i] = actionRow{Action: a, Label: functionLabel(a.Function), Summary: actionSummary(a.Function, a.Params), Target: names(a.TargetType, a.TargetID)}
	}
	u.render(c, http.StatusOK, "actions", &web.View{Title: pg.title("Actions", ""), Nav: "actions", Data: actionListView{Actions: rows, Pager: pg}})
}

// targetNames returns a func that describes an action's target for people.
func (u *ui) targetNames(ctx context.Context, as []store.Action) (func(typ, id string) string, error) {
	var devIDs []string
	groups := map[string]string{}
	for _, a := range as {
		switch a.TargetType {
		case actions.TargetDevice:
			devIDs = append(devIDs, a.TargetID)
		case actions.TargetGroup:
			groups[a.TargetID] = ""
		}
	}
	devs := map[string]string{}
	if len(devIDs) > 0 {
		ds, err := u.Store.DevicesByID(ctx, devIDs)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			devs[d.ID] = d.Name
		}
	}
	if len(groups) > 0 {
		gs, err := u.Store.GroupSizesByID(ctx, slices.Collect(maps.Keys(groups)))
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			groups[g.ID] = fmt.Sprintf("%s (%d %s)", g.Name, g.Members, plural(g.Members, "device", "devices"))
		}
	}
	return func(typ, id string) string {
		switch typ {
		case actions.TargetAll:
			return "All devices"
		case actions.TargetGroup:
			return "Group " + groups[id]
		}
		if n := devs[id]; n != "" && n != id {
			return "Device " + n + " (" + id + ")"
		}
		return "Device " + id
	}, nil
}

// blockingActions are the links to the actions that keep a device or group
// from being deleted, for its confirmation page.
func blockingActions(as []store.Action) []confirmLink {
	out := make([]confirmLink, len(as))
	for i, a := range as {
		out[i] = confirmLink{Text: a.Name, Href: "/actions/" + a.ID + "/edit", Note: functionLabel(a.Function)}
	}
	return out
}

// deleteRefusal is the message for a device or group (what, such as "The
// device lobby-1") whose delete was refused: an action was made to target it
// since the confirmation page, which the message names if it can.
func (u *ui) deleteRefusal(ctx context.Context, targetType, id, what string) string {
	if targeting, err := u.Store.ActionsTargeting(ctx, targetType, id); err == nil && len(targeting) > 0 {
		return targetedRefusal(what, targeting)
	}
	return what + " is the target of an action; change or delete that action first."
}

// targetedRefusal says that a device or group (what, such as "The device
// “Lobby” (lobby-1)") cannot be deleted, naming the actions that target it.
func targetedRefusal(what string, as []store.Action) string {
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = "“" + a.Name + "”"
	}
	return fmt.Sprintf("%s is the target of the %s %s; change the target of %s or delete %s first.",
		what, plural(len(as), "action", "actions"), actions.Enumerate(names), plural(len(as), "that action", "those actions"), plural(len(as), "it", "them"))
}

func functionLabel(name string) string {
	if f, ok := actions.LookupFunction(name); ok {
		return f.Label
	}
	return name
}

func plural(n int, one, many string) string { return web.Plural(n, one, many) }

// actionForm is the action form's values, as typed.
type actionForm struct {
	Name         string
	Function     string
	TargetType   string
	TargetDevice string
	TargetGroup  string
	TTL          string
	Enabled      bool
	Params       map[string]string // form field name ("p.load_url.url") -> value
}

type actionFormView struct {
	ID        string // "" for a new action
	SavedName string // the edited action's name as saved, for the page's title
	EventID   string
	Version   string // the edited action's version (editVersion) the form was opened on
	Post      string // where the form posts
	Form      actionForm
	Functions []functionView
	Devices   []store.Device
	TypeID    bool // too many devices for a list: the id is typed in
	Groups    []store.Group
}

type functionView struct {
	Name   string
	Label  string
	Params []paramView
	Note   string
}

type paramView struct {
	actions.Param
	Field string // the form field's name
	Value string
	Error string
}

// paramField is the form field of one parameter of one function, so that the
// url of load_url and the url of set_emergency are separate fields.
func paramField(fn, param string) string { return "p." + fn + "." + param }

func (u *ui) newAction(c *gin.Context) {
	f := actionForm{Function: actions.LoadURL, TargetType: actions.TargetDevice, TTL: strconv.Itoa(int(actions.DefaultTTL.Seconds())), Enabled: true}
	u.renderActionForm(c, http.StatusOK, actionFormView{Post: "/actions/new", Form: f}, nil, "")
}

func (u *ui) createAction(c *gin.Context) {
	ctx := c.Request.Context()
	f, in, ttlErr := readActionForm(c)
	v := actionFormView{Post: "/actions/new", Form: f}
	act := &store.Action{ID: actions.NewID()}
	if err := errors.Join(ttlErr, actions.BuildAction(ctx, u.Store, in, act)); err != nil {
		u.actionFormError(c, v, err)
		return
	}
	if err := u.Store.CreateAction(ctx, act); err != nil {
		u.actionFormError(c, v, err)
		return
	}
	u.Log.Info("ui: action created", "id", act.ID, "function", act.Function, "by", account(c).User.Username)
	u.redirect(c, "/actions/"+act.ID+"/link", "Created the action “"+act.Name+"”. Generate its link below.")
}

func (u *ui) editAction(c *gin.Context) {
	act, err := u.Store.Action(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, actionGone))
		return
	}
	v := actionFormView{ID: act.ID, SavedName: act.Name, EventID: act.EventID, Version: actionVersion(act), Post: "/actions/" + act.ID + "/edit", Form: actionFormOf(act)}
	u.renderActionForm(c, http.StatusOK, v, nil, "")
}

func (u *ui) updateAction(c *gin.Context) {
	ctx := c.Request.Context()
	act, err := u.Store.Action(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/actions", gone(err, actionGone))
		return
	}
	f, in, ttlErr := readActionForm(c)
	v := actionFormView{ID: act.ID, SavedName: act.Name, EventID: act.EventID, Version: form(c, "version"), Post: "/actions/" + act.ID + "/edit", Form: f}
	if err := errors.Join(ttlErr, actions.BuildAction(ctx, u.Store, in, act)); err != nil {
		u.actionFormError(c, v, err)
		return
	}
	var saved store.Action
	err = u.Store.EditAction(ctx, act.ID, func(a *store.Action) error {
		if stale(v.Version, actionVersion(a)) {
			saved = *a
			return errStale
		}
		return actions.ApplyAction(in, a)
	})
	switch {
	case errors.Is(err, errStale):
		// Shown again as typed, over the version now saved: a second save
		// replaces it, knowingly.
		v.Version, v.SavedName = actionVersion(&saved), saved.Name
		u.renderActionForm(c, http.StatusConflict, v, nil, u.staleActionMessage(ctx, &saved))
		return
	case asError(err).Code == actions.CodeNotFound: // deleted meanwhile
		u.redirectError(c, "/actions", gone(err, actionGone))
		return
	case err != nil:
		u.actionFormError(c, v, err)
		return
	}
	u.Log.Info("ui: action updated", "id", act.ID, "by", account(c).User.Username)
	u.redirect(c, "/actions", "Saved the action “"+act.Name+"”.")
}

// actionVersion is the version of an action that its edit form carries.
func actionVersion(a *store.Action) string { return editVersion(actionFormOf(a)) }

// staleActionMessage says that an action was saved by someone else while
// the form was open, and what it is now.
func (u *ui) staleActionMessage(ctx context.Context, a *store.Action) string {
	now := "“" + a.Name + "”: " + functionLabel(a.Function)
	if sum := actionSummary(a.Function, a.Params); sum != "" {
		now += " (" + sum + ")"
	}
	if names, err := u.targetNames(ctx, []store.Action{*a}); err == nil {
		now += " to " + names(a.TargetType, a.TargetID)
	}
	state := "disabled"
	if a.Enabled {
		state = "enabled"
	}
	now += fmt.Sprintf(", %s, commands valid %d s", state, a.TTLSeconds)
	return staleMessage("action", now)
}

// actionFormError shows a validation error next to its field, or fails.
func (u *ui) actionFormError(c *gin.Context, v actionFormView, err error) {
	if !isUserError(err) {
		u.fail(c, err)
		return
	}
	errs, msg := fieldErrors(err, func(field string) string {
		switch {
		case strings.HasPrefix(field, "params."):
			return paramField(v.Form.Function, strings.TrimPrefix(field, "params."))
		case field == "target.type":
			return "target_type"
		case field == "target.id" && v.Form.TargetType == actions.TargetGroup:
			return "target_group"
		case field == "target.id":
			return "target_device"
		}
		return field
	})
	// The target's errors as sentences, under the picker (not "is required: the device's id").
	for _, t := range []struct{ field, what, id string }{
		{"target_device", "device", v.Form.TargetDevice}, {"target_group", "group", v.Form.TargetGroup},
	} {
		switch {
		case errs[t.field] == "":
		case t.id == "":
			errs[t.field] = "Choose the " + t.what + " to send the command to."
		case strings.HasPrefix(errs[t.field], "no "+t.what+" with id"):
			errs[t.field] = "No " + t.what + " has the id “" + t.id + "”."
		}
	}
	u.renderActionForm(c, http.StatusUnprocessableEntity, v, errs, msg)
}

// readActionForm reads the posted form into its values and the domain's input.
// Only the chosen function's parameters are read. ttlErr reports a TTL that
// cannot even be handed to validation (missing or not a number).
func readActionForm(c *gin.Context) (f actionForm, in actions.ActionInput, ttlErr error) {
	f = actionForm{
		Name: form(c, "name"), Function: form(c, "function"), TargetType: form(c, "target_type"),
		TargetDevice: form(c, "target_device"), TargetGroup: form(c, "target_group"),
		TTL: form(c, "ttl_s"), Enabled: c.PostForm("enabled") == "on", Params: map[string]string{},
	}
	in = actions.ActionInput{Name: f.Name, Function: f.Function, Target: actions.Target{Type: f.TargetType}, Params: map[string]any{}, Enabled: &f.Enabled}
	switch f.TargetType {
	case actions.TargetDevice:
		in.Target.ID = f.TargetDevice
	case actions.TargetGroup:
		in.Target.ID = f.TargetGroup
	}
	if fn, ok := actions.LookupFunction(f.Function); ok {
		for _, p := range fn.Params {
			name := paramField(fn.Name, p.Name)
			raw := form(c, name)
			f.Params[name] = raw
			if raw == "" {
				continue
			}
			in.Params[p.Name] = paramValue(p.Type, raw)
		}
	}
	// The form always shows a TTL: an empty one was cleared, which must not
	// silently keep the old value.
	n, err := strconv.Atoi(f.TTL)
	if err != nil {
		return f, in, actions.Invalid("ttl_s", "must be a whole number of seconds, from 1 to %d (%d is the default)",
			int(actions.MaxTTL.Seconds()), int(actions.DefaultTTL.Seconds()))
	}
	in.TTLS = &n
	return f, in, nil
}

// paramValue converts a typed form value to the JSON type validation expects;
// a value that does not convert is passed as text, and validation names it.
func paramValue(typ, raw string) any {
	switch typ {
	case "int":
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return n
		}
	case "bool":
		if b, err := strconv.ParseBool(raw); err == nil {
			return b
		}
	}
	return raw
}

// actionFormOf fills the form from a stored action.
func actionFormOf(a *store.Action) actionForm {
	f := actionForm{
		Name: a.Name, Function: a.Function, TargetType: a.TargetType,
		TTL: strconv.Itoa(a.TTLSeconds), Enabled: a.Enabled, Params: map[string]string{},
	}
	switch a.TargetType {
	case actions.TargetDevice:
		f.TargetDevice = a.TargetID
	case actions.TargetGroup:
		f.TargetGroup = a.TargetID
	}
	params, _ := actions.DecodeParams(a.Params)
	for k, v := range params {
		f.Params[paramField(a.Function, k)] = fmt.Sprint(v)
	}
	return f
}

func (u *ui) renderActionForm(c *gin.Context, status int, v actionFormView, errs map[string]string, msg string) {
	ctx := c.Request.Context()
	devs, total, err := u.Store.Devices(ctx, store.Page{Limit: pickerLimit})
	if err != nil {
		u.fail(c, err)
		return
	}
	groups, err := u.Store.GroupSizes(ctx, store.Page{Limit: pickerLimit})
	if err != nil {
		u.fail(c, err)
		return
	}
	v.Devices, v.Groups, v.TypeID = devs, groups, total > int64(len(devs))
	for _, fn := range actions.Catalogue {
		fv := functionView{Name: fn.Name, Label: fn.Label}
		for _, p := range fn.Params {
			field := paramField(fn.Name, p.Name)
			fv.Params = append(fv.Params, paramView{Param: p, Field: field, Value: v.Form.Params[field], Error: errs[field]})
		}
		switch fn.Name {
		case actions.SensorEvent:
			fv.Note = "No fixed parameters: each call carries sensor_data {id, event, value}, which is passed on to the devices. The link generator builds it for you."
		default:
			if len(fn.Params) == 0 {
				fv.Note = "This function has no parameters."
			}
		}
		v.Functions = append(v.Functions, fv)
	}
	// An edit page names the action (as saved, not as typed), so that a tab
	// or a history entry says which one it is.
	title := "New action"
	if v.ID != "" {
		title = "Edit action “" + v.SavedName + "”"
	}
	u.render(c, status, "action_form", &web.View{Title: title, Nav: "actions", Errors: errs, Error: msg, Data: v})
}

func (u *ui) setActionEnabled(c *gin.Context) {
	ctx := c.Request.Context()
	enabled := c.PostForm("enabled") == "true" // the form read before the transaction
	var act store.Action
	err := u.Store.EditAction(ctx, c.Param("id"), func(a *store.Action) error {
		a.Enabled = enabled
		act = *a
		return nil
	})
	back := "/actions" // the list's page the switch was on
	if n, err := strconv.Atoi(form(c, "page")); err == nil && n > 1 {
		back += "?page=" + strconv.Itoa(n)
	}
	if err != nil {
		u.redirectError(c, back, gone(err, actionGone))
		return
	}
	state := "Disabled"
	if act.Enabled {
		state = "Enabled"
	}
	u.Log.Info("ui: action "+strings.ToLower(state), "id", act.ID, "by", account(c).User.Username)
	u.redirect(c, back, state+" the action “"+act.Name+"”.")
}

func (u *ui) confirmDeleteAction(c *gin.Context) {
	act, err := u.Store.Action(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, actionGone))
		return
	}
	n, only, err := u.keysScopedTo(c.Request.Context(), act.ID, "")
	if err != nil {
		u.fail(c, err)
		return
	}
	u.confirm(c, "Delete action “"+act.Name+"”", "actions", confirmView{
		Message: "Delete the action “" + act.Name + "”?",
		Detail:  "Webhook calls with its event id will be refused (404 unknown_event). Its past dispatches stay in the history.",
		Note:    scopeNote(n, only, "action"),
		Action:  "/actions/" + act.ID + "/delete", Button: "Delete action", Cancel: "/actions", Danger: true,
	})
}

func (u *ui) deleteAction(c *gin.Context) {
	ctx := c.Request.Context()
	act, err := u.Store.Action(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/actions", gone(err, actionGone))
		return
	}
	if err := u.Store.DeleteAction(ctx, act.ID); err != nil {
		u.redirectError(c, "/actions", gone(err, actionGone))
		return
	}
	u.Log.Info("ui: action deleted", "id", act.ID, "by", account(c).User.Username)
	u.redirect(c, "/actions", "Deleted the action “"+act.Name+"”.")
}
