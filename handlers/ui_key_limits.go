package handlers

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/auth"
	"devicehooks/store"
	"devicehooks/web"
)

// keyLimitsView is the form that scopes and limits an API key.
type keyLimitsView struct {
	Key     *store.APIKey
	Name    string
	Limits  auth.Limits
	Actions []store.Action
	Groups  []store.Group
	// The form's text fields, kept as typed after an error.
	CIDRs, ExpiresAt, RatePerSecond, RateBurst string
}

// expiresLayout is what an <input type="datetime-local"> sends, read as UTC.
const expiresLayout = "2006-01-02T15:04"

// LimitsSummary describes a key's limits in a few words for the keys table.
func LimitsSummary(k store.APIKey) string {
	l := auth.LimitsOf(&k)
	var parts []string
	if l.Disabled {
		parts = append(parts, "disabled")
	}
	if l.ExpiresAt != nil {
		if time.Now().After(*l.ExpiresAt) {
			parts = append(parts, "expired")
		} else {
			parts = append(parts, "expires "+l.ExpiresAt.UTC().Format("2006-01-02"))
		}
	}
	if n := len(l.Actions) + len(l.Groups); n > 0 {
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
		u.fail(c, err)
		return
	}
	v := keyLimitsView{Key: k, Name: k.Name, Limits: auth.LimitsOf(k)}
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
		u.fail(c, err)
		return
	}
	c.Request.ParseForm()
	v := keyLimitsView{
		Key: k, Name: form(c, "name"), CIDRs: form(c, "cidrs"), ExpiresAt: form(c, "expires_at"),
		RatePerSecond: form(c, "rate_per_second"), RateBurst: form(c, "rate_burst"),
	}
	v.Limits = auth.Limits{
		Actions: c.PostFormArray("actions"), Groups: c.PostFormArray("groups"),
		Methods: c.PostFormArray("methods"), Disabled: form(c, "disabled") != "",
	}
	if len(v.Limits.Methods) == 2 {
		v.Limits.Methods = nil // both allowed: no limit
	}
	for _, line := range strings.Fields(v.CIDRs) {
		v.Limits.CIDRs = append(v.Limits.CIDRs, line)
	}
	errs := map[string]string{}
	if v.ExpiresAt != "" {
		t, err := time.Parse(expiresLayout, v.ExpiresAt)
		if err != nil {
			errs["expires_at"] = "a date and time, or empty for no expiry"
		}
		v.Limits.ExpiresAt = &t
	}
	if v.RatePerSecond != "" || v.RateBurst != "" {
		rps, err1 := strconv.ParseFloat(v.RatePerSecond, 64)
		burst, err2 := strconv.Atoi(v.RateBurst)
		if err1 != nil || err2 != nil {
			errs["rate_per_second"] = "both a rate per second and a burst, or neither"
		}
		v.Limits.Rate = &auth.Rate{PerSecond: rps, Burst: burst}
	}
	if len(errs) > 0 {
		u.renderKeyLimits(c, http.StatusUnprocessableEntity, v, errs, "Please correct the marked field.")
		return
	}
	if err := u.Keys.Update(ctx, k.ID, v.Name, v.Limits); err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, func(f string) string { return strings.ReplaceAll(f, ".", "_") })
		u.renderKeyLimits(c, http.StatusUnprocessableEntity, v, errs, msg)
		return
	}
	u.Log.Info("ui: api key limits saved", "id", k.ID, "prefix", k.Prefix, "by", account(c).User.Username)
	u.redirect(c, "/api-keys", "Saved the limits of “"+v.Name+"”.")
}

func (u *ui) renderKeyLimits(c *gin.Context, status int, v keyLimitsView, errs map[string]string, msg string) {
	ctx := c.Request.Context()
	var err error
	if v.Actions, _, err = u.Store.Actions(ctx, store.Page{Limit: pickerLimit}); err == nil {
		v.Groups, _, err = u.Store.Groups(ctx, store.Page{Limit: pickerLimit})
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	u.render(c, status, "api_key_limits", &web.View{Title: "Limits of “" + v.Key.Name + "”", Nav: "api_keys", Errors: errs, Error: msg, Data: v})
}

// Has reports whether list holds s (for checked boxes and selected options).
func (v keyLimitsView) Has(list []string, s string) bool { return slices.Contains(list, s) }
