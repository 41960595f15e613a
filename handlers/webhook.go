package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/store"
	"devicehooks/web"
)

// MaxWait bounds how long a webhook call may ask to wait for the devices' acks.
const MaxWait = 30 * time.Second

// webhookHandler serves POST and GET /public-api/integration/webhooks (CONTRACT §1).
type webhookHandler struct {
	st       *store.Store
	keys     *auth.Keys
	dispatch *actions.Dispatcher
	log      *slog.Logger
	maxBody  int64
}

// webhookRequest is the JSON body of a POST, or the decoded GET payload.
type webhookRequest struct {
	EventID        string
	SensorData     map[string]any
	IdempotencyKey string
}

// webhookAnswer is the success body; it embeds the contract's fields and adds the
// devices' states when the caller waited for acks.
type webhookAnswer struct {
	actions.Accepted
	Settled  *bool           `json:"settled,omitempty"`
	Commands []commandResult `json:"commands,omitempty"`
}

type commandResult struct {
	ID       string `json:"id"`
	DeviceID string `json:"device_id"`
	State    string `json:"state"`
	Detail   string `json:"detail,omitempty"`
}

func (h *webhookHandler) handle(c *gin.Context) {
	if c.Request.ContentLength > h.maxBody {
		h.fail(c, tooLarge(h.maxBody))
		return
	}
	key, err := h.keys.Authenticate(c.Request.Context(), apiKeyOf(c))
	if err != nil {
		h.fail(c, err)
		return
	}
	req, err := h.readRequest(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	wait, err := waitOf(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	action, err := h.st.ActionByEventID(c.Request.Context(), req.EventID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !action.Enabled) {
		h.fail(c, actions.Errorf(actions.CodeUnknownEvent, "no enabled action has event_id %q", req.EventID))
		return
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	h.keys.Used(key.ID, c.ClientIP())
	out, err := h.dispatch.Trigger(c.Request.Context(), actions.Trigger{
		Action: action, APIKeyID: key.ID, APIKeyPrefix: key.Prefix,
		Method: c.Request.Method, Source: c.ClientIP(),
		SensorData: req.SensorData, IdempotencyKey: req.IdempotencyKey, Wait: wait,
	})
	if err != nil {
		h.fail(c, err)
		return
	}
	if out.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	ans := webhookAnswer{Accepted: out.Accepted}
	if wait > 0 && !out.Replayed {
		ans.Settled = &out.Settled
		ans.Commands = make([]commandResult, len(out.Commands))
		for i, cmd := range out.Commands {
			ans.Commands[i] = commandResult{ID: cmd.ID, DeviceID: cmd.DeviceID, State: cmd.State, Detail: cmd.Detail}
		}
	}
	if wantsHTML(c) {
		h.page(c, http.StatusOK, web.WebhookResult{OK: true, DispatchID: ans.DispatchID, EventID: ans.EventID, Function: ans.Function, Targets: ans.Targets, Replayed: out.Replayed})
		return
	}
	c.JSON(http.StatusOK, ans)
}

// fail answers with the contract's error body, or a small page for a browser.
func (h *webhookHandler) fail(c *gin.Context, err error) {
	status, body := errorResponse(c, h.log, err)
	if body.Error.Code == actions.CodeRateLimited && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "1")
	}
	if wantsHTML(c) {
		h.page(c, status, web.WebhookResult{Code: string(body.Error.Code), Detail: body.Error.Detail})
		c.Abort()
		return
	}
	c.AbortWithStatusJSON(status, body)
}

func (h *webhookHandler) page(c *gin.Context, status int, r web.WebhookResult) {
	var buf bytes.Buffer
	if err := web.RenderWebhookResult(&buf, r); err != nil {
		h.log.Error("render webhook page", "err", err)
		c.Status(http.StatusInternalServerError)
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// apiKeyOf reads the key from the x-webhook-apikey header, or on GET from the
// api_key query parameter.
func apiKeyOf(c *gin.Context) string {
	if k := strings.TrimSpace(c.GetHeader("x-webhook-apikey")); k != "" {
		return k
	}
	if c.Request.Method == http.MethodGet {
		return strings.TrimSpace(c.Query("api_key"))
	}
	return ""
}

// readRequest reads the POST body or the GET payload into a webhookRequest.
func (h *webhookHandler) readRequest(c *gin.Context) (*webhookRequest, error) {
	var raw []byte
	if c.Request.Method == http.MethodGet {
		p := c.Query("payload")
		if p == "" {
			return nil, badRequest("the payload query parameter is required: base64 of {\"event_id\": \"...\"}")
		}
		var err error
		if raw, err = DecodePayload(p); err != nil {
			return nil, err
		}
	} else {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.maxBody))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, tooLarge(h.maxBody)
		}
		if err != nil {
			return nil, badRequest("could not read the request body: %v", err)
		}
		raw = body
	}
	req, err := ParseWebhookJSON(raw)
	if err != nil {
		return nil, err
	}
	if k := strings.TrimSpace(c.GetHeader("Idempotency-Key")); k != "" {
		req.IdempotencyKey = k
	}
	if len(req.IdempotencyKey) > 255 {
		return nil, badRequest("the idempotency key must be at most 255 characters")
	}
	return req, nil
}

// DecodePayload decodes a GET link's payload: base64 in the standard or URL-safe
// alphabet, padded or not. A '+' that arrived as a space (an unescaped '+' in a
// query string) is read as '+'.
func DecodePayload(p string) ([]byte, error) {
	s := strings.TrimSpace(p)
	s = strings.ReplaceAll(s, " ", "+")
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, badRequest("the payload is not base64: %v", err)
	}
	return b, nil
}

// ParseWebhookJSON reads the webhook JSON object and checks its types.
func ParseWebhookJSON(raw []byte) (*webhookRequest, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("the body must be a JSON object with an event_id")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, badRequest("the payload is not a JSON object: %v", err)
	}
	req := &webhookRequest{}
	if err := jsonString(fields["event_id"], "event_id", &req.EventID); err != nil {
		return nil, err
	}
	req.EventID = strings.TrimSpace(req.EventID)
	if req.EventID == "" || len(req.EventID) > 64 {
		return nil, badRequest("event_id is required: a string of at most 64 characters")
	}
	if sd, ok := fields["sensor_data"]; ok && string(sd) != "null" {
		dec := json.NewDecoder(bytes.NewReader(sd))
		dec.UseNumber()
		if err := dec.Decode(&req.SensorData); err != nil || req.SensorData == nil {
			return nil, badRequest("sensor_data must be an object: {\"id\", \"event\", \"value\"}")
		}
	}
	if err := jsonString(fields["idempotency_key"], "idempotency_key", &req.IdempotencyKey); err != nil {
		return nil, err
	}
	return req, nil
}

func jsonString(raw json.RawMessage, name string, dst *string) error {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return badRequest("%s must be a string", name)
	}
	return nil
}

// waitOf reads how long the caller wants to wait for acks: ?wait=SECONDS or the
// RFC 7240 header "Prefer: wait=SECONDS". At most MaxWait.
func waitOf(c *gin.Context) (time.Duration, error) {
	v := c.Query("wait")
	if v == "" {
		for _, pref := range strings.Split(c.GetHeader("Prefer"), ",") {
			if s, ok := strings.CutPrefix(strings.TrimSpace(pref), "wait="); ok {
				v = s
			}
		}
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return 0, badRequest("wait must be a number of seconds from 0 to %d", int(MaxWait.Seconds()))
	}
	return min(time.Duration(n*float64(time.Second)), MaxWait), nil
}

func tooLarge(limit int64) error {
	return actions.Errorf(actions.CodeTooLarge, "the request body is over the limit of %d bytes", limit)
}

// wantsHTML tells a browser that opened a GET link from an API client.
func wantsHTML(c *gin.Context) bool {
	return c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html")
}
