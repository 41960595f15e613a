package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
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

// keyLimitsView is the form that scopes and limits an API key.
type keyLimitsView struct {
	Key     *store.APIKey
	Version string // the key's version (editVersion) the form was opened on
	Name    string
	Limits  auth.Limits
	Methods []string // the methods ticked on the form
	Actions []store.Action
	Groups  []store.Group
	// Scoped actions and groups that the pickers do not list.
	MoreActions, MoreGroups []scopeOption
	Scoped                  bool // the key is scoped to some actions or groups now
	AllowAll                bool // "allow every action" is ticked
	// The form's text fields, kept as typed after an error.
	CIDRs, ExpiresAt, RatePerSecond, RateBurst string
	// Unreadable says why the stored limits cannot be read (auth.ReadLimits):
	// the key refuses every call, and its edit is refused; the page says so
	// instead of a form of what could be read.
	Unreadable string
}

// scopeOption is an action or group in a key's scope that the picker does not
// list (deleted, or beyond its first pickerLimit entries). It is offered as an
// option of its own, so that saving the form keeps it.
type scopeOption struct {
	ID, Label string
	Selected  bool
}

// expiresLayout is what an <input type="datetime-local"> sends, read as UTC.
const expiresLayout = "2006-01-02T15:04"

// limitsSummary describes a key's limits in a few words, for the keys table;
// left is how many of its scope's actions and groups still exist (see
// Keys.ScopeLeft).
func limitsSummary(l auth.Limits, left int) string {
	var parts []string
	if l.Disabled {
		parts = append(parts, "disabled")
	}
	if l.ExpiresAt != nil {
		if time.Now().After(*l.ExpiresAt) {
			parts = append(parts, "expired")
		} else {
			parts = append(parts, "expires "+l.ExpiresAt.UTC().Format("2006-01-02")+" UTC")
		}
	}
	switch n := len(l.Actions) + len(l.Groups); {
	case n > 0 && left == 0:
		parts = append(parts, "scoped to deleted actions or groups only: refuses every call")
	case left < n:
		parts = append(parts, fmt.Sprintf("%d action/group scope%s (and %d deleted)", left, plural(left, "", "s"), n-left))
	case n > 0:
		parts = append(parts, fmt.Sprintf("%d action/group scope%s", n, plural(n, "", "s")))
	}
	if len(l.Methods) == 1 {
		parts = append(parts, l.Methods[0]+" only")
	}
	if len(l.CIDRs) > 0 {
		parts = append(parts, strings.Join(l.CIDRs, ", "))
	}
	if l.Rate != nil {
		parts = append(parts, fmt.Sprintf("%g/s", l.Rate.PerSecond))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " · ")
}

func (u *ui) keyLimits(c *gin.Context) {
	k, err := u.Store.APIKey(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, keyGone))
		return
	}
	l, unreadable := auth.ReadLimits(k)
	v := keyLimitsView{Key: k, Version: keyVersion(k.Name, l), Name: k.Name, Limits: l, Methods: []string{"POST", "GET"}}
	if unreadable != nil {
		v.Unreadable = unreadable.Error()
	}
	if len(v.Limits.Methods) > 0 {
		v.Methods = v.Limits.Methods
	}
	v.CIDRs = strings.Join(v.Limits.CIDRs, "\n")
	if v.Limits.ExpiresAt != nil {
		v.ExpiresAt = v.Limits.ExpiresAt.UTC().Format(expiresLayout)
	}
	if r := v.Limits.Rate; r != nil {
		v.RatePerSecond, v.RateBurst = strconv.FormatFloat(r.PerSecond, 'g', -1, 64), strconv.Itoa(r.Burst)
	}
	u.renderKeyLimits(c, http.StatusOK, v, nil, "")
}

func (u *ui) saveKeyLimits(c *gin.Context) {
	ctx := c.Request.Context()
	k, err := u.Store.APIKey(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/api-keys", gone(err, keyGone))
		return
	}
	v := keyLimitsView{
		Key: k, Version: form(c, "version"), Name: form(c, "name"), CIDRs: form(c, "cidrs"), ExpiresAt: form(c, "expires_at"),
		RatePerSecond: form(c, "rate_per_second"), RateBurst: form(c, "rate_burst"),
	}
	v.Methods, v.AllowAll = c.PostFormArray("methods"), form(c, "allow_all") != ""
	v.Limits = auth.Limits{
		Actions: c.PostFormArray("actions"), Groups: c.PostFormArray("groups"),
		Methods: slices.Clone(v.Methods), Disabled: form(c, "disabled") != "",
	}
	if m := slices.Compact(slices.Sorted(slices.Values(v.Limits.Methods))); slices.Equal(m, []string{http.MethodGet, http.MethodPost}) {
		v.Limits.Methods = nil // both allowed: no limit
	} else {
		v.Limits.Methods = m // anything else is validated as given
	}
	v.Limits.CIDRs = append(v.Limits.CIDRs, strings.Fields(v.CIDRs)...)
	errs := map[string]string{}
	if len(v.Methods) == 0 && !v.Limits.Disabled {
		errs["methods"] = "choose at least one method (or disable the key)"
	}
	// An empty scope lets the key trigger every action: widening a scoped key so
	// takes a tick, never an emptied list.
	if was := auth.LimitsOf(k); len(was.Actions)+len(was.Groups) > 0 && len(v.Limits.Actions)+len(v.Limits.Groups) == 0 && !v.AllowAll {
		errs["actions"] = "choose at least one action or group, or tick “Allow every action” to remove the key's scope"
	}
	if v.ExpiresAt != "" {
		t, err := time.Parse(expiresLayout, v.ExpiresAt)
		had := auth.LimitsOf(k).ExpiresAt
		switch {
		case err != nil:
			errs["expires_at"] = "a date and time, or empty for no expiry"
		case had != nil && had.UTC().Format(expiresLayout) == v.ExpiresAt:
			t = *had // as it was, to the second the form does not show: Limits.Problems leaves it alone
		}
		v.Limits.ExpiresAt = &t
	}
	if v.RatePerSecond != "" || v.RateBurst != "" {
		rps, err1 := strconv.ParseFloat(v.RatePerSecond, 64)
		if v.RateBurst == "" && err1 == nil && rps > 0 && rps <= math.MaxInt32 {
			// A rate alone: a burst of one second's worth, shown as saved.
			v.RateBurst = strconv.Itoa(int(math.Ceil(rps)))
		}
		burst, err2 := strconv.Atoi(v.RateBurst)
		switch {
		case v.RatePerSecond == "":
			errs["rate_per_second"] = "both a rate per second and a burst, or neither"
		case err1 != nil:
			errs["rate_per_second"] = "a number of requests per second, such as 5 or 0.5"
		}
		switch {
		case v.RateBurst == "":
			errs["rate_burst"] = "both a rate per second and a burst, or neither"
		case err2 != nil:
			errs["rate_burst"] = "a whole number of requests, such as 10"
		}
		v.Limits.Rate = &auth.Rate{PerSecond: rps, Burst: burst}
	}
	// Every problem at once, where Keys.Edit stops at the first.
	problems, err := u.Keys.Problems(ctx, v.Name, k.Name, &v.Limits, auth.LimitsOf(k))
	if err != nil {
		u.fail(c, err)
		return
	}
	for _, err := range problems {
		fe, _ := fieldErrors(err, limitsField)
		for f, msg := range fe {
			if _, ok := errs[f]; !ok {
				errs[f] = msg
			}
		}
	}
	if len(errs) > 0 {
		u.renderKeyLimits(c, http.StatusUnprocessableEntity, v, errs, "Please correct the marked "+plural(len(errs), "field.", "fields."))
		return
	}
	var savedName string
	var saved auth.Limits
	err = u.Keys.Edit(ctx, k.ID, func(name string, l auth.Limits) (string, auth.Limits, error) {
		if stale(v.Version, keyVersion(name, l)) {
			savedName, saved = name, l
			return "", auth.Limits{}, errStale
		}
		return v.Name, v.Limits, nil
	})
	switch {
	case errors.Is(err, errStale):
		// Shown again as typed, over the version now saved: a second save
		// replaces it, knowingly.
		v.Version = keyVersion(savedName, saved)
		u.renderKeyLimits(c, http.StatusConflict, v, nil, staleMessage("key", "“"+savedName+"”, limits: "+limitsSummary(saved, len(saved.Actions)+len(saved.Groups))))
		return
	case asError(err).Code == actions.CodeNotFound: // revoked meanwhile
		u.redirectError(c, "/api-keys", gone(err, keyGone))
		return
	}
	if err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, limitsField)
		u.renderKeyLimits(c, http.StatusUnprocessableEntity, v, errs, msg)
		return
	}
	u.Log.Info("ui: api key limits saved", "id", k.ID, "prefix", k.Prefix, "by", account(c).User.Username)
	u.redirect(c, "/api-keys", "Saved the limits of “"+v.Name+"”.")
}

// keyVersion is the version of a key that its limits form carries.
func keyVersion(name string, l auth.Limits) string {
	return editVersion(struct {
		Name   string
		Limits auth.Limits
	}{name, l})
}

// limitsField maps the limits' field names to the form's: actions[2] -> actions,
// rate.burst -> rate_burst.
func limitsField(f string) string {
	f, _, _ = strings.Cut(f, "[")
	return strings.ReplaceAll(f, ".", "_")
}

func (u *ui) renderKeyLimits(c *gin.Context, status int, v keyLimitsView, errs map[string]string, msg string) {
	ctx := c.Request.Context()
	var err error
	if v.Actions, _, err = u.Store.Actions(ctx, store.Page{Limit: pickerLimit}); err == nil {
		v.Groups, err = u.Store.GroupSizes(ctx, store.Page{Limit: pickerLimit})
	}
	if err == nil {
		v.MoreActions, v.MoreGroups, err = u.unlistedScope(ctx, v)
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	was := auth.LimitsOf(v.Key)
	v.Scoped = len(was.Actions)+len(was.Groups) > 0
	u.render(c, status, "api_key_limits", &web.View{Title: "Limits of “" + v.Key.Name + "”", Nav: "api_keys", Errors: errs, Error: msg, Data: v})
}

// Has reports whether list holds s (for checked boxes and selected options).
func (v keyLimitsView) Has(list []string, s string) bool { return slices.Contains(list, s) }

// unlistedScope returns the actions and groups in the key's scope (as stored,
// and as posted) that the pickers do not list, described for people.
func (u *ui) unlistedScope(ctx context.Context, v keyLimitsView) (moreActions, moreGroups []scopeOption, err error) {
	was := auth.LimitsOf(v.Key)
	listed := map[string]bool{}
	for _, a := range v.Actions {
		listed[a.ID] = true
	}
	for _, g := range v.Groups {
		listed[g.ID] = true
	}
	unlisted := func(stored, posted []string) []string {
		var out []string
		for _, id := range slices.Concat(stored, posted) {
			if !listed[id] && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, id := range unlisted(was.Actions, v.Limits.Actions) {
		label := "deleted action " + shortID(id)
		a, err := u.Store.Action(ctx, id)
		switch {
		case err == nil:
			label = a.Name + " (" + a.Function + ") (not in the first " + strconv.Itoa(pickerLimit) + ")"
		case !errors.Is(err, store.ErrNotFound):
			return nil, nil, err
		}
		moreActions = append(moreActions, scopeOption{ID: id, Label: label, Selected: slices.Contains(v.Limits.Actions, id)})
	}
	for _, id := range unlisted(was.Groups, v.Limits.Groups) {
		label := "deleted group " + shortID(id)
		g, err := u.Store.Group(ctx, id)
		switch {
		case err == nil:
			label = g.Name + " (not in the first " + strconv.Itoa(pickerLimit) + ")"
		case !errors.Is(err, store.ErrNotFound):
			return nil, nil, err
		}
		moreGroups = append(moreGroups, scopeOption{ID: id, Label: label, Selected: slices.Contains(v.Limits.Groups, id)})
	}
	return moreActions, moreGroups, nil
}

// shortID is the start of an id, enough to tell it from others.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// keysScopedTo counts the API keys whose scope names the action (or the group),
// and how many of those have nothing else in their scope that still exists.
func (u *ui) keysScopedTo(ctx context.Context, actionID, groupID string) (n, only int, err error) {
	for offset := 0; ; offset += pickerLimit {
		keys, total, err := u.Store.APIKeys(ctx, store.Page{Limit: pickerLimit, Offset: offset})
		if err != nil {
			return 0, 0, err
		}
		for i := range keys {
			l := auth.LimitsOf(&keys[i])
			if (actionID != "" && slices.Contains(l.Actions, actionID)) || (groupID != "" && slices.Contains(l.Groups, groupID)) {
				n++
				rest, err := u.Keys.ScopeRemains(ctx, l, actionID, groupID)
				if err != nil {
					return 0, 0, err
				}
				if !rest {
					only++
				}
			}
		}
		if len(keys) == 0 || int64(offset+len(keys)) >= total {
			return n, only, nil
		}
	}
}

// scopeNote tells, on the page that confirms deleting an action or a group, what
// becomes of the API keys scoped to it.
func scopeNote(n, only int, what string) string {
	if n == 0 {
		return ""
	}
	s := fmt.Sprintf("%d API %s scoped to this %s. ", n, plural(n, "key is", "keys are"), what)
	switch {
	case only == n:
		return s + fmt.Sprintf("After the deletion %s scoped to nothing, so %s refused for every action until %s limits are changed.",
			plural(n, "it is", "they are"), plural(n, "it is", "they are"), plural(n, "its", "their"))
	case only > 0:
		return s + fmt.Sprintf("After the deletion they are scoped to what remains of their scope; %d of them to nothing, "+
			"so refused for every action until their limits are changed.", only)
	}
	return s + fmt.Sprintf("After the deletion %s scoped to what remains of %s scope.", plural(n, "it is", "they are"), plural(n, "its", "their"))
}
