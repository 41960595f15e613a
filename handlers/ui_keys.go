package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/auth"
	"devicehooks/store"
	"devicehooks/web"
)

// apiKeysPerPage is how many keys the API keys page lists at once.
const apiKeysPerPage = 100

type apiKeysView struct {
	Keys   []store.APIKey
	Limits map[string]string // key id -> a summary of its limits
	Pager  pager
	Name   string // the create form's value after an error
}

func (u *ui) apiKeys(c *gin.Context) { u.renderAPIKeys(c, http.StatusOK, "", nil, "") }

func (u *ui) renderAPIKeys(c *gin.Context, status int, name string, errs map[string]string, msg string) {
	pg, offset := pagerOf(c, apiKeysPerPage)
	keys, total, err := u.Store.APIKeys(c.Request.Context(), store.Page{Limit: apiKeysPerPage, Offset: offset})
	if err != nil {
		u.fail(c, err)
		return
	}
	pg.setTotal(total, apiKeysPerPage)
	limits := make(map[string]string, len(keys))
	for _, k := range keys {
		l, unreadable := auth.ReadLimits(&k)
		if unreadable != nil {
			limits[k.ID] = "stored limits unreadable: refuses every call (revoke it)"
			continue
		}
		left, err := u.Keys.ScopeLeft(c.Request.Context(), l) // no read for a key without a scope
		if err != nil {
			u.fail(c, err)
			return
		}
		limits[k.ID] = limitsSummary(l, left)
	}
	u.render(c, status, "api_keys", &web.View{
		Title: pg.title("API keys", ""), Nav: "api_keys", Errors: errs, Error: msg,
		Data: apiKeysView{Keys: keys, Limits: limits, Pager: pg, Name: name},
	})
}

func (u *ui) createAPIKey(c *gin.Context) {
	name := form(c, "name")
	k, plain, err := u.Keys.Create(c.Request.Context(), name, auth.Limits{})
	if err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, func(f string) string { return f })
		u.renderAPIKeys(c, http.StatusUnprocessableEntity, name, errs, msg)
		return
	}
	u.Log.Info("ui: api key created", "id", k.ID, "prefix", k.Prefix, "by", account(c).User.Username)
	u.showSecret(c, apiKeySecretPath, "API key created", secretView{
		Intro: "The key “" + k.Name + "” is ready. Webhook callers send it in the x-webhook-apikey header, or as api_key in a GET link.",
		Label: "API key", Value: plain,
		Note: "Keep it like a password. You can reveal it again from the API keys page, and revoke it there.",
		Back: "Back to API keys", BackTo: "/api-keys",
	})
}

func (u *ui) revealAPIKey(c *gin.Context) {
	ctx := c.Request.Context()
	k, err := u.Store.APIKey(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/api-keys", gone(err, keyGone))
		return
	}
	plain, err := u.Keys.Reveal(ctx, k.ID)
	if err != nil {
		u.redirectError(c, "/api-keys", gone(err, keyGone))
		return
	}
	u.Log.Info("ui: api key revealed", "id", k.ID, "prefix", k.Prefix, "by", account(c).User.Username)
	u.showSecret(c, apiKeySecretPath, "API key “"+k.Name+"”", secretView{
		Intro: "Created " + web.Ago(time.Since(k.CreatedAt)) + ".",
		Label: "API key", Value: plain,
		Back: "Back to API keys", BackTo: "/api-keys",
	})
}

// apiKeyCopyPath answers the API keys page's "Copy key" buttons.
const apiKeyCopyPath = "/api-keys/:id/copy"

// copyAPIKey reveals a key to the API keys page's script, which copies it to the
// clipboard: JSON {"key": ...}, never cached, for a POST from a signed-in
// session with its CSRF token (in the X-CSRF-Token header), logged as a reveal.
// The key never enters the page's HTML or a URL.
func (u *ui) copyAPIKey(c *gin.Context) {
	ctx := c.Request.Context()
	c.Header("Cache-Control", "no-store")
	k, err := u.Store.APIKey(ctx, c.Param("id"))
	var plain string
	if err == nil {
		plain, err = u.Keys.Reveal(ctx, k.ID)
	}
	if err != nil {
		respondError(c, u.Log, gone(err, keyGone))
		return
	}
	u.Log.Info("ui: api key revealed", "id", k.ID, "prefix", k.Prefix, "by", account(c).User.Username, "to", "clipboard")
	c.JSON(http.StatusOK, gin.H{"key": plain})
}

func (u *ui) confirmDeleteAPIKey(c *gin.Context) {
	k, err := u.Store.APIKey(c.Request.Context(), c.Param("id"))
	if err != nil {
		u.fail(c, gone(err, keyGone))
		return
	}
	u.confirm(c, "Revoke API key “"+k.Name+"”", "api_keys", confirmView{
		Message: "Revoke the API key “" + k.Name + "” (" + k.Prefix + "…)?",
		Detail:  "It stops working at once: every caller and GET link that uses it is refused. This cannot be undone.",
		Action:  "/api-keys/" + k.ID + "/delete", Button: "Revoke key", Cancel: "/api-keys", Danger: true,
	})
}

func (u *ui) deleteAPIKey(c *gin.Context) {
	ctx := c.Request.Context()
	k, err := u.Store.APIKey(ctx, c.Param("id"))
	if err != nil {
		u.redirectError(c, "/api-keys", gone(err, keyGone))
		return
	}
	if err := u.Keys.Revoke(ctx, k.ID); err != nil {
		u.redirectError(c, "/api-keys", gone(err, keyGone))
		return
	}
	u.Log.Info("ui: api key revoked", "id", k.ID, "prefix", k.Prefix, "by", account(c).User.Username)
	u.redirect(c, "/api-keys", "Revoked the API key “"+k.Name+"”.")
}
