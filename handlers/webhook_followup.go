package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/store"
)

// dispatchStatus serves GET /public-api/integration/webhooks/dispatches/:id:
// the caller of a webhook follows up on its own dispatch, with the API key
// that made it, as the management API shows it to an admin. Another key's
// dispatch is not found, as one that does not exist, so that a key learns
// nothing of the others' calls. It fires nothing; it counts against the
// key's rate as a call does (a dispatch to every device is thousands of rows
// to read), and takes a webhook call's slot.
func (h *webhookHandler) dispatchStatus(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		c.Header("Retry-After", "1")
		respondError(c, h.log, actions.Errorf(actions.CodeUnavailable, "too many webhook calls in progress; try again shortly"))
		return
	}
	ctx := c.Request.Context()
	key, err := headerKey(c)
	if err != nil {
		respondError(c, h.log, err)
		return
	}
	if key == "" {
		respondError(c, h.log, actions.Errorf(actions.CodeUnauthorized,
			"missing API key: send the key that made the dispatch in the x-webhook-apikey header"))
		return
	}
	caller, err := h.keys.Authenticate(ctx, key)
	if err != nil {
		respondError(c, h.log, err)
		return
	}
	if err := caller.CheckSource(c.ClientIP()); err != nil {
		respondError(c, h.log, err)
		return
	}
	if _, err := h.keys.Limit(caller); err != nil {
		c.Header("Retry-After", auth.RetryAfterSeconds(err))
		respondError(c, h.log, err)
		return
	}
	notFound := actions.Errorf(actions.CodeNotFound, "this API key made no dispatch with the id %q (or it was purged)", c.Param("id"))
	d, err := h.st.Dispatch(ctx, c.Param("id"))
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && d.APIKeyID != caller.Key.ID:
		respondError(c, h.log, notFound)
		return
	case err != nil:
		respondError(c, h.log, err)
		return
	}
	d, cmds, counts, err := h.st.DispatchDetail(ctx, d.ID)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound // purged meanwhile
	}
	if err != nil {
		respondError(c, h.log, err)
		return
	}
	c.JSON(http.StatusOK, dispatchDetailView(d, cmds, counts))
}
