package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/store"
)

var errAdminTokenMissing = actions.Errorf(actions.CodeUnauthorized, "an admin token is required: Authorization: Bearer <token>")

type apiKeyView struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Prefix       string     `json:"prefix"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	LastUsedFrom *string    `json:"last_used_from"`
	auth.Limits
	LimitsError *string `json:"limits_error"` // the stored limits do not read: the key refuses every call
	Key         string  `json:"key,omitempty"`
}

func apiKeyViewOf(k *store.APIKey) apiKeyView {
	l, err := auth.ReadLimits(k)
	v := apiKeyView{
		ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, LastUsedFrom: nullIfEmpty(k.LastUsedFrom), Limits: l,
	}
	if err != nil {
		v.LimitsError = nullIfEmpty("stored limits cannot be read (" + err.Error() + "): the key refuses every call; revoke it and create another")
	}
	return v
}

// apiKeyInput is a key's name and optional limits.
type apiKeyInput struct {
	Name string `json:"name"`
	auth.Limits
}

func (a *api) createAPIKey(c *gin.Context) {
	var in apiKeyInput
	if err := bindJSON(c, &in, apiKeyView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	k, plain, err := a.Keys.Create(c.Request.Context(), in.Name, in.Limits)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	v := apiKeyViewOf(k)
	v.Key = plain
	created(c, "/api/v1/api-keys/"+k.ID, v)
}

func (a *api) listAPIKeys(c *gin.Context) {
	serveList(a, c, a.Store.APIKeys, apiKeyViewOf)
}

func (a *api) getAPIKey(c *gin.Context) {
	k, err := a.Store.APIKey(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, apiKeyViewOf(k))
}

func (a *api) revealAPIKey(c *gin.Context) {
	plain, err := a.Keys.Reveal(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": c.Param("id"), "key": plain}) // no-store: see apiHeaders
}

// updateAPIKey changes what the body names and keeps the rest: the body is
// read over the key's name and limits, so a field left out keeps its value
// (a rename does not lift a key's limits, as it does not enable a disabled
// action), and null or [] removes a limit. It is checked against the key as
// read (the scope's ids looked up), then read again over the key as it is when
// saved, so that another change made meanwhile is kept too.
func (a *api) updateAPIKey(c *gin.Context) {
	ctx := c.Request.Context()
	body, err := readJSONBody(c)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	old, err := a.Store.APIKey(ctx, c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	in, err := apiKeyInputOver(body, old.Name, auth.LimitsOf(old))
	if err == nil {
		err = a.Keys.Check(ctx, in.Name, old.Name, &in.Limits, auth.LimitsOf(old))
	}
	if err == nil {
		err = a.Keys.Edit(ctx, old.ID, func(name string, l auth.Limits) (string, auth.Limits, error) {
			in, err := apiKeyInputOver(body, name, l)
			return in.Name, in.Limits, err
		})
	}
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// apiKeyInputOver decodes a PUT's body over a key's name and limits.
func apiKeyInputOver(body []byte, name string, l auth.Limits) (apiKeyInput, error) {
	in := apiKeyInput{Name: name, Limits: l}
	if in.ExpiresAt != nil { // decoded into: not the key's own
		at := *in.ExpiresAt
		in.ExpiresAt = &at
	}
	return in, decodeJSON(body, &in, apiKeyView{})
}

func (a *api) deleteAPIKey(c *gin.Context) {
	if err := a.Keys.Revoke(c.Request.Context(), c.Param("id")); err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}
