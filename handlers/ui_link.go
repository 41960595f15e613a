package handlers

import (
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/store"
	"devicehooks/web"
)

// sensorForm is the sensor data typed in for a sensor_event action.
type sensorForm struct{ ID, Event, Value string }

type linkView struct {
	Action  *store.Action
	Label   string
	Summary string // the action's parameters, in a few words
	Target  string
	Keys    []linkKey
	KeyID   string
	Sensor  *sensorForm // nil unless the action is a sensor_event
	Result  *linkResult // set once a link was generated

	Kind     string // "signed" (HMAC and expiry, no key in the link) or "key"
	ExpiresH int    // a signed link's lifetime in hours
	Expires  string // the field's text: ExpiresH, or what was typed if it was refused
	Confirm  bool   // the link asks for a confirming click
}

// linkKey is an API key in the generator's picker; Refused says, in a few words,
// why a GET link with it would be refused ("disabled", "POST only"), or is "".
type linkKey struct {
	store.APIKey
	Refused string
}

// defaultLinkHours is how long a signed link lives unless the admin says otherwise.
const defaultLinkHours = 24

// linkResult is what the generator made for an action and a key.
type linkResult struct {
	KeyName   string
	GetLink   string // none for a key limited to POST: only the curl example
	PostOnly  bool
	Curl      string
	KeyVar    string // set when the curl example takes the key from this shell variable
	Payload   string
	ExpiresAt web.Stamp // set for a signed link
	Confirm   bool
}

// webhookPayload is the JSON object a webhook call carries (CONTRACT §1).
type webhookPayload struct {
	EventID    string         `json:"event_id"`
	SensorData map[string]any `json:"sensor_data,omitempty"`
}

func (u *ui) actionLink(c *gin.Context) {
	act, err := u.Store.Action(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, actionGone))
		return
	}
	v := linkView{Action: act, Kind: "signed", ExpiresH: defaultLinkHours}
	if act.Function == actions.SensorEvent {
		v.Sensor = &sensorForm{}
	}
	u.renderLink(c, http.StatusOK, v, nil, "")
}

// generateLink reveals the chosen key server-side and builds the GET link and the
// POST example for it.
func (u *ui) generateLink(c *gin.Context) {
	ctx := c.Request.Context()
	act, err := u.Store.Action(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/actions", gone(err, actionGone))
		return
	}
	v := linkView{Action: act, KeyID: form(c, "key_id"), Sensor: readSensorForm(c, act), Kind: form(c, "kind"), Confirm: form(c, "confirm") != ""}
	if v.Kind != "key" {
		v.Kind = "signed"
	}
	// Every problem at once, marked at its field.
	errs, msg := map[string]string{}, ""
	v.Expires = strings.TrimSpace(form(c, "expires_h"))
	v.ExpiresH, err = strconv.Atoi(v.Expires)
	if v.Kind == "signed" && (err != nil || v.ExpiresH < 1 || v.ExpiresH > 8760) {
		errs["expires_h"] = "a whole number of hours from 1 to 8760"
	}
	p := webhookPayload{EventID: act.EventID}
	if v.Sensor != nil {
		p.SensorData = map[string]any{"id": v.Sensor.ID, "event": v.Sensor.Event, "value": v.Sensor.Value}
		// The webhook would refuse these (422): say so now, at the field.
		if _, err := actions.SensorParams(p.SensorData); err != nil {
			sensorErrs, detail := fieldErrors(err, sensorField)
			if maps.Copy(errs, sensorErrs); len(sensorErrs) == 0 {
				msg = detail // not a field's
			}
		}
	}
	key, err := u.Store.APIKey(ctx, v.KeyID)
	postOnly := false
	switch {
	case err != nil && (v.KeyID == "" || isUserError(err)):
		errs["key_id"] = "choose one of the API keys"
	case err != nil:
		u.fail(c, err)
		return
	default:
		// A POST-only key still gets the curl example; any other refusal, nothing.
		short, why := linkRefusal(key, act, time.Now())
		if postOnly = short == "POST only"; why != "" && !postOnly {
			errs["key_id"] = why + "; choose another key, or change its limits"
		}
	}
	if len(errs) > 0 || msg != "" {
		u.renderLink(c, http.StatusUnprocessableEntity, v, errs, msg)
		return
	}
	plain, err := u.Keys.Reveal(ctx, key.ID)
	if err != nil {
		u.fail(c, err)
		return
	}
	raw, err := marshalUnescaped(p) // the payload as typed: "<b>", not "\u003cb\u003e"
	if err != nil {
		u.fail(c, err)
		return
	}
	base := u.baseURL(c)
	payload := base64.RawURLEncoding.EncodeToString(raw) // URL-safe: nothing to escape
	q := url.Values{"api_key": {plain}, "payload": {payload}}
	var expiresAt web.Stamp
	if v.Kind == "signed" {
		exp := time.Now().Add(time.Duration(v.ExpiresH) * time.Hour).Unix()
		q = url.Values{"key_id": {key.ID}, "expires": {strconv.FormatInt(exp, 10)}, "payload": {payload},
			"sig": {auth.SignLink(plain, key.ID, exp, payload, v.Confirm)}}
		expiresAt = web.MinuteStamp(time.Unix(exp, 0))
	}
	if v.Confirm {
		q.Set("confirm", "1")
	}
	// The key is on screen only where what was asked for needs it: a link
	// with the key has it anyway, and a POST-only key's curl example is all
	// there is. Beside a signed link, chosen to keep the key out of what is
	// shared, the example names it by a shell variable.
	header, keyVar := shellQuote("x-webhook-apikey: "+plain), ""
	if v.Kind == "signed" && !postOnly {
		header, keyVar = `"x-webhook-apikey: $`+curlKeyVar+`"`, curlKeyVar
	}
	v.Result = &linkResult{
		KeyName: key.Name, ExpiresAt: expiresAt, Confirm: v.Confirm, PostOnly: postOnly, KeyVar: keyVar,
		Curl: "curl -X POST " + shellQuote(base+webhookPath) + " \\\n" +
			"  -H 'Content-Type: application/json' \\\n" +
			"  -H " + header + " \\\n" +
			"  -d " + shellQuote(string(raw)),
		Payload: string(raw),
	}
	if !postOnly {
		v.Result.GetLink = base + webhookPath + "?" + q.Encode()
	}
	u.Log.Info("ui: webhook link generated", "action", act.ID, "key", key.Prefix, "by", account(c).User.Username)
	u.renderLink(c, http.StatusOK, v, nil, "")
}

// curlKeyVar is the shell variable a signed link's curl example takes the
// key from.
const curlKeyVar = "WEBHOOK_API_KEY"

// testAction fires the action now, as the webhook would, with no API key.
func (u *ui) testAction(c *gin.Context) {
	ctx := c.Request.Context()
	act, err := u.Store.Action(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/actions", gone(err, actionGone))
		return
	}
	v := linkView{Action: act, KeyID: form(c, "key_id"), Sensor: readSensorForm(c, act)}
	if !act.Enabled {
		u.renderLink(c, http.StatusConflict, v, nil, "This action is disabled: enable it on the actions page to test it.")
		return
	}
	t := actions.Trigger{Action: act, Method: "TEST", Source: c.ClientIP()}
	if v.Sensor != nil {
		t.SensorData = map[string]any{"id": v.Sensor.ID, "event": v.Sensor.Event, "value": v.Sensor.Value}
		// Refused now, at the fields, rather than after "Fire now?".
		if _, err := actions.SensorParams(t.SensorData); err != nil {
			errs, msg := fieldErrors(err, sensorField)
			u.renderLink(c, http.StatusUnprocessableEntity, v, errs, msg)
			return
		}
	}
	if act.TargetType != actions.TargetDevice && form(c, "confirmed") == "" {
		u.confirmTest(c, act, v)
		return
	}
	out, err := u.Dispatcher.Trigger(ctx, t)
	if err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, sensorField)
		status, _ := statusFor(err)
		u.renderLink(c, status, v, errs, msg)
		return
	}
	u.Log.Info("ui: action tested", "action", act.ID, "dispatch", out.DispatchID, "by", account(c).User.Username)
	u.redirect(c, "/dispatches/"+out.DispatchID,
		"Test sent: "+act.Function+" to "+strconv.Itoa(out.Targets)+" "+plural(out.Targets, "device", "devices")+".")
}

// sensorField maps a sensor data field ("sensor_data.id") to the form's.
func sensorField(f string) string { return strings.Replace(f, "sensor_data.", "sensor_", 1) }

// linkRefusal says why the webhook would refuse a GET link (or a signed link)
// with this key for this action, in a few words for the picker ("disabled",
// "POST only") and in a sentence, or "", "" if it would not. It asks the key's
// limits what the webhook asks them; the caller's address is not known here, so
// address ranges are not checked.
func linkRefusal(k *store.APIKey, act *store.Action, now time.Time) (short, why string) {
	l, unreadable := auth.ReadLimits(k)
	switch {
	case unreadable != nil:
		return "limits unreadable", "this key's stored limits cannot be read, so it refuses every call: revoke it and create another"
	case l.Disabled:
		return "disabled", "this key is disabled, so the link would be refused"
	case !l.Usable(now):
		return "expired", "this key expired on " + l.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + ", so the link would be refused"
	case !l.AllowsAction(act): // before the method: a POST would be refused too
		return "not for this action", "this key is scoped to other actions or groups, so the link would be refused"
	case !l.AllowsMethod(http.MethodGet):
		return "POST only", "this key is limited to POST, so a GET link would be refused"
	}
	return "", ""
}

// confirmTest asks before a test of an action that reaches more than one
// device: "Test: fire now" next to "Generate link" must not restart, or put
// in emergency mode, a whole fleet at one stray click.
func (u *ui) confirmTest(c *gin.Context, act *store.Action, v linkView) {
	ctx := c.Request.Context()
	reach := "every device"
	if act.TargetType == actions.TargetAll {
		if _, n, err := u.Store.Devices(ctx, store.Page{Limit: 1}); err == nil {
			reach = "every device (" + strconv.FormatInt(n, 10) + " now)"
		}
	} else if g, err := u.Store.Group(ctx, act.TargetID); err == nil {
		reach = "the group “" + g.Name + "” (" + strconv.Itoa(len(g.DeviceIDs)) + " " + plural(len(g.DeviceIDs), "device", "devices") + ")"
	} else {
		reach = "its group"
	}
	fields := map[string]string{"confirmed": "1", "key_id": v.KeyID}
	if v.Sensor != nil {
		fields["sensor_id"], fields["sensor_event"], fields["sensor_value"] = v.Sensor.ID, v.Sensor.Event, v.Sensor.Value
	}
	u.confirm(c, "Test “"+act.Name+"”", "actions", confirmView{
		Message: "Fire “" + act.Name + "” (" + functionLabel(act.Function) + ") now on " + reach + "?",
		Detail:  "The command goes out at once, as a webhook call would send it.",
		Action:  "/actions/" + act.ID + "/test", Fields: fields,
		Button: "Fire now", Cancel: "/actions/" + act.ID + "/link", Danger: true,
	})
}

func readSensorForm(c *gin.Context, act *store.Action) *sensorForm {
	if act.Function != actions.SensorEvent {
		return nil
	}
	return &sensorForm{ID: form(c, "sensor_id"), Event: form(c, "sensor_event"), Value: form(c, "sensor_value")}
}

func (u *ui) renderLink(c *gin.Context, status int, v linkView, errs map[string]string, msg string) {
	ctx := c.Request.Context()
	keys, _, err := u.Store.APIKeys(ctx, store.Page{Limit: pickerLimit})
	if err != nil {
		u.fail(c, err)
		return
	}
	names, err := u.targetNames(ctx, []store.Action{*v.Action})
	if err != nil {
		u.fail(c, err)
		return
	}
	v.Label, v.Target = functionLabel(v.Action.Function), names(v.Action.TargetType, v.Action.TargetID)
	v.Summary = actionText(v.Action.Function, v.Action.Params) // whole, wrapped: the page is about this action
	now := time.Now()
	for i := range keys {
		short, _ := linkRefusal(&keys[i], v.Action, now)
		v.Keys = append(v.Keys, linkKey{APIKey: keys[i], Refused: short})
	}
	if v.KeyID == "" && len(v.Keys) > 0 {
		// The first key a link would work with, else the first.
		v.KeyID = v.Keys[0].ID
		if i := slices.IndexFunc(v.Keys, func(k linkKey) bool { return k.Refused == "" }); i >= 0 {
			v.KeyID = v.Keys[i].ID
		}
	}
	if v.Kind == "" {
		v.Kind = "signed"
	}
	if v.Expires == "" && errs["expires_h"] == "" { // an emptied field refused stays empty
		v.Expires = strconv.Itoa(defaultLinkHours)
	}
	if len(errs) > 0 && msg == "" { // as every form says it
		msg = "Please correct the marked " + plural(len(errs), "field.", "fields.")
	}
	u.render(c, status, "action_link", &web.View{Title: "Link for “" + v.Action.Name + "”", Nav: "actions", Errors: errs, Error: msg, Data: v})
}

// baseURL is where callers reach this server: --public-url, or the request's
// own scheme and host.
func (u *ui) baseURL(c *gin.Context) string {
	if u.PublicURL != "" {
		return strings.TrimRight(u.PublicURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil || u.SecureCookies {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
