package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/store"
)

// followUp serves GET /public-api/integration/webhooks/dispatches/:id and
// records it in the request log as every webhook call (code "follow_up"
// when answered): it counts against the key's rate, and a key's calls in
// the log must add up to what its rate saw.
func (h *webhookHandler) followUp(c *gin.Context) { h.record(c, h.dispatchStatus) }

// dispatchStatus is the follow-up: the caller of a webhook follows up on its
// own dispatch, with the API key that made it, as the management API shows
// it to an admin. Another key's dispatch is not found, as one that does not
// exist, so that a key learns nothing of the others' calls. It fires
// nothing; it counts against the key's rate as a call does (a dispatch to
// every device is thousands of rows to read), and takes a webhook call's
// slot. Its errors are JSON, whoever asks: it is an API, not a link.
func (h *webhookHandler) dispatchStatus(c *gin.Context, cl *call) {
	fail := func(err error) {
		status, body := errorResponse(c, h.log, err)
		cl.code = string(body.Error.Code)
		c.AbortWithStatusJSON(status, body)
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		c.Header("Retry-After", "1")
		fail(actions.Errorf(actions.CodeUnavailable, "too many webhook calls in progress; try again shortly"))
		return
	}
	ctx := c.Request.Context()
	key, err := headerKey(c)
	if err != nil {
		fail(err)
		return
	}
	if key == "" {
		fail(actions.Errorf(actions.CodeUnauthorized,
			"missing API key: send the key that made the dispatch in the x-webhook-apikey header"))
		return
	}
	caller, err := h.keys.Authenticate(ctx, key)
	if err != nil {
		fail(err)
		return
	}
	cl.caller = caller
	if err := caller.CheckSource(c.ClientIP()); err != nil {
		fail(err)
		return
	}
	if _, err := h.keys.Limit(caller); err != nil {
		c.Header("Retry-After", auth.RetryAfterSeconds(err))
		fail(err)
		return
	}
	notFound := actions.Errorf(actions.CodeNotFound, "this API key made no dispatch with the id %q (or it was purged)", c.Param("id"))
	d, err := h.st.Dispatch(ctx, c.Param("id"))
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && d.APIKeyID != caller.Key.ID:
		fail(notFound)
		return
	case err != nil:
		fail(err)
		return
	}
	d, cmds, counts, err := h.st.DispatchDetail(ctx, d.ID)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound // purged meanwhile
	}
	if err != nil {
		fail(err)
		return
	}
	cl.code, cl.dispatchID = store.CallFollowUp, d.ID
	c.JSON(http.StatusOK, dispatchDetailView(d, cmds, counts))
}
