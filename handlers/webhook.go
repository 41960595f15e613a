package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/metrics"
	"devicehooks/secrets"
	"devicehooks/store"
	"devicehooks/web"
)

// webhookPath is the webhook's endpoint, fixed by the contract: its routes, and the
// links and curl lines the UI makes for it.
const webhookPath = "/public-api/integration/webhooks"

// MaxWait bounds how long a webhook call may ask to wait for the devices' acks.
const MaxWait = 30 * time.Second

// webhookHandler serves POST and GET /public-api/integration/webhooks (CONTRACT §1).
type webhookHandler struct {
	st        *store.Store
	keys      *auth.Keys
	dispatch  *actions.Dispatcher
	log       *slog.Logger
	reqlog    *RequestLog
	metrics   *metrics.Metrics
	maxBody   int64
	maxHeader int
	cop       *http.CrossOriginProtection // a link's form posted by another site's page
	slots     chan struct{}               // bounds concurrent webhook calls
	waits     chan struct{}               // bounds calls waiting for acks, a smaller share
}

// call is what one webhook call did, for the request log and metrics.
type call struct {
	code       string // store.CallSuccess, an error code, or another store.Call… code for a call that fires nothing by design
	caller     *auth.Caller
	eventID    string
	dispatchID string
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
	Commands []commandResult `json:"commands,omitzero"` // [] when waited for a dispatch to no device; left out when not read
}

type commandResult struct {
	ID       string `json:"id"`
	DeviceID string `json:"device_id"`
	State    string `json:"state"`
	Detail   string `json:"detail,omitempty"`
}

// handle serves one call and records it, whatever its outcome.
func (h *webhookHandler) handle(c *gin.Context) { h.record(c, h.serve) }

// refuseMethod answers a method the webhook does not take (gin has set the
// Allow header), and records it as every call.
func (h *webhookHandler) refuseMethod(c *gin.Context) {
	h.record(c, func(c *gin.Context, cl *call) {
		h.fail(c, cl, actions.Errorf(actions.CodeMethod, "method %s is not allowed here; see the Allow header", c.Request.Method))
	})
}

// record runs serve and records the call in the request log and the metrics.
func (h *webhookHandler) record(c *gin.Context, serve func(*gin.Context, *call)) {
	start := time.Now()
	cl := &call{}
	serve(c, cl)
	d := time.Since(start)
	c.Set(ctxDispatchID, cl.dispatchID)
	// A key pasted where the event id goes is not kept: admins read this log.
	eventID := secrets.Mask(cl.eventID)
	rec := store.RequestLog{
		ID: actions.NewID(), At: start.UTC(), Method: c.Request.Method, Source: clientAddr(c),
		UserAgent: actions.Readable(actions.Truncate(c.Request.UserAgent(), 200)), EventID: actions.Readable(actions.Truncate(eventID, 64)),
		Status: c.Writer.Status(), Code: cl.code, DispatchID: cl.dispatchID, LatencyUS: d.Microseconds(),
	}
	if cl.caller != nil {
		rec.KeyID, rec.KeyPrefix = cl.caller.Key.ID, cl.caller.Key.Prefix
	}
	h.reqlog.Record(rec)
	h.metrics.WebhookCall(cl.code, d)
}

// serve reads top to bottom: limits, who is calling, what they may do, what they
// ask, then the dispatch.
func (h *webhookHandler) serve(c *gin.Context, cl *call) {
	if c.Request.Method == http.MethodHead {
		// Link checkers and mail scanners probe with HEAD: it never fires.
		cl.code = store.CallHead
		c.Status(http.StatusOK)
		return
	}
	if c.Request.ContentLength > h.maxBody {
		h.fail(c, cl, tooLarge(h.maxBody))
		return
	}
	if headerBytes(c.Request) > h.maxHeader {
		hint := "a long payload goes in a POST body"
		if c.Request.Method != http.MethodGet {
			hint = "a POST's JSON goes in its body; look for a large cookie or header"
		}
		h.fail(c, cl, actions.Errorf(actions.CodeTooLarge,
			"the request's URL and headers are over the size limit (%d bytes); %s", h.maxHeader, hint))
		return
	}
	if c.Request.Method == http.MethodGet && isPrefetch(c.Request.Header) {
		// A browser loading a link ahead of a click (prefetch, prerender, a
		// preview of its top sites). Answered with no 2xx, so that the browser
		// throws the answer away and asks again if the link is really opened.
		cl.code = store.CallPrefetch
		respondError(c, h.log, actions.Errorf(actions.CodeUnavailable, "a prefetch does not fire the action: open the link to fire it"))
		return
	}
	if c.Request.Method == http.MethodGet && isPreviewAgent(c.Request.UserAgent()) {
		cl.code = store.CallPreview
		h.page(c, http.StatusOK, web.WebhookResult{Preview: true})
		return
	}
	body, err := h.readBody(c)
	if err != nil {
		h.fail(c, cl, err)
		return
	}
	// A call takes its slot once its body is in: clients that send a body
	// slowly (or never) must not hold the slots that others need.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		c.Header("Retry-After", "1")
		h.fail(c, cl, actions.Errorf(actions.CodeUnavailable, "too many webhook calls in progress; try again shortly"))
		return
	}
	params, link, err := linkParams(c, body)
	if err != nil {
		h.fail(c, cl, err)
		return
	}
	if link && c.Request.Method == http.MethodPost && h.cop.Check(c.Request) != nil {
		// A confirm link's button posts from its own page. Another site's
		// form would fire a leaked link through a browser that may use it
		// (inside a key's address ranges), without the click the link asks for.
		h.refuse(c, cl, actions.Errorf(actions.CodeForbidden, "a link's form may be posted only from its own page"), link, params, body)
		return
	}
	caller, err := h.authenticate(c, params)
	if err != nil {
		h.refuse(c, cl, err, link, params, body)
		return
	}
	cl.caller = caller
	if err := caller.CheckRequest(c.Request.Method, link, c.ClientIP()); err != nil {
		h.refuse(c, cl, err, link, params, body)
		return
	}
	refund, err := h.keys.Limit(caller)
	if err != nil {
		c.Header("Retry-After", auth.RetryAfterSeconds(err))
		h.refuse(c, cl, err, link, params, body)
		return
	}
	req, err := readRequest(c, link, params, body)
	if err != nil {
		h.fail(c, cl, err)
		return
	}
	cl.eventID = req.EventID
	if c.Request.Method == http.MethodGet && params.Get("confirm") != "" {
		// A link made to ask first: fire only from the page's button (a POST).
		if !wantsHTML(c) {
			h.fail(c, cl, actions.Errorf(actions.CodeForbidden,
				"this link asks for a confirming click: open it in a browser (an API client sends a POST with the x-webhook-apikey header)"))
			return
		}
		cl.code = store.CallConfirm
		h.page(c, http.StatusOK, web.WebhookResult{Confirm: true, EventID: req.EventID, Fields: confirmFields(params)})
		return
	}
	wait, err := waitOf(c)
	if err != nil {
		h.fail(c, cl, err)
		return
	}
	if req.IdempotencyKey != "" {
		// A repeat answers as the first call did, even if the action changed since.
		out, err := h.dispatch.Replay(c.Request.Context(), caller.Key.ID, req.IdempotencyKey, req.EventID, req.SensorData)
		if err != nil {
			h.fail(c, cl, err)
			return
		}
		if out != nil {
			// A repeat costs no more than a read: it does not use up the
			// key's rate, so that retries do not crowd out new calls.
			refund()
			cl.code, cl.dispatchID = store.CallSuccess, out.DispatchID
			h.succeed(c, out, 0)
			return
		}
	}
	action, err := h.st.ActionByEventID(c.Request.Context(), req.EventID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !action.Enabled) {
		h.fail(c, cl, actions.Errorf(actions.CodeUnknownEvent, "no enabled action has event_id %q", req.EventID))
		return
	}
	if err != nil {
		h.fail(c, cl, fmt.Errorf("%w: %w", actions.Errorf(actions.CodeUnavailable, "could not look up the action; try again"), err))
		return
	}
	if err := caller.CheckAction(action); err != nil {
		// Before a wait slot: a key that may not use the action is told so
		// (final), never to retry because the slots are full.
		h.fail(c, cl, err)
		return
	}
	if wait > 0 {
		select {
		case h.waits <- struct{}{}:
			defer func() { <-h.waits }()
		default:
			c.Header("Retry-After", "1")
			h.fail(c, cl, actions.Errorf(actions.CodeUnavailable, "too many calls are waiting for acks; retry, or call without wait"))
			return
		}
	}
	h.keys.Used(caller.Key.ID, clientAddr(c))
	out, err := h.dispatch.Trigger(c.Request.Context(), actions.Trigger{
		Action: action, APIKeyID: caller.Key.ID, APIKeyPrefix: caller.Key.Prefix,
		Method: c.Request.Method, Source: clientAddr(c),
		SensorData: req.SensorData, IdempotencyKey: req.IdempotencyKey, Wait: wait,
	})
	if err != nil {
		h.fail(c, cl, err)
		return
	}
	cl.code, cl.dispatchID = store.CallSuccess, out.DispatchID
	h.succeed(c, out, wait)
}

func (h *webhookHandler) succeed(c *gin.Context, out *actions.Outcome, wait time.Duration) {
	if out.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	ans := webhookAnswer{Accepted: out.Accepted}
	if wait > 0 && !out.Replayed {
		if c.Query("wait") == "" { // asked for in a Prefer header (RFC 7240)
			c.Header("Preference-Applied", "wait="+strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
		}
		ans.Settled = &out.Settled
		if out.Commands != nil { // nil: not read in time, and left out
			ans.Commands = make([]commandResult, len(out.Commands))
		}
		for i, cmd := range out.Commands {
			ans.Commands[i] = commandResult{ID: cmd.ID, DeviceID: cmd.DeviceID, State: cmd.State, Detail: cmd.Detail}
		}
	}
	if wantsHTML(c) {
		r := web.WebhookResult{OK: true, DispatchID: ans.DispatchID, EventID: ans.EventID, Function: ans.Function, Targets: ans.Targets, Replayed: out.Replayed}
		if ans.Settled != nil {
			waitedPage(&r, out)
		}
		h.page(c, http.StatusOK, r)
		return
	}
	c.JSON(http.StatusOK, ans)
}

// waitedListed is how many commands that did not succeed a waited-for
// call's page names; the dispatch's page has the rest.
const waitedListed = 20

// waitedPage says on a browser's page what the call waited for: how its
// commands stood at the answer, and which did not succeed.
func waitedPage(r *web.WebhookResult, out *actions.Outcome) {
	r.Waited, r.Settled = true, out.Settled
	counts := store.StateCounts{}
	for _, cmd := range out.Commands {
		counts.Add(&cmd)
		if cmd.State == store.StateSucceeded {
			continue
		}
		if len(r.Unsucceeded) == waitedListed {
			r.More++
			continue
		}
		r.Unsucceeded = append(r.Unsucceeded, web.WaitedCommand{DeviceID: cmd.DeviceID, State: cmd.State, Detail: cmd.Detail})
	}
	r.Outcome = stateSummary(len(out.Commands), counts)
	bad := counts[store.StateFailed] + counts[store.StateRejected] + counts[store.StateExpired] - counts[store.Superseded]
	r.Failed, r.All = bad > 0, bad > 0 && bad == len(out.Commands)
}

// refuse fails a call refused before what it asks was read (for its key, its
// source, its rate), with the event id it names in the request log: an admin
// looking into an integration's refused calls sees which action they were for.
func (h *webhookHandler) refuse(c *gin.Context, cl *call, err error, link bool, params url.Values, body []byte) {
	if req, e := readRequest(c, link, params, body); e == nil {
		cl.eventID = req.EventID
	}
	h.fail(c, cl, err)
}

// fail answers with the contract's error body, or a small page for a browser.
func (h *webhookHandler) fail(c *gin.Context, cl *call, err error) {
	status, body := errorResponse(c, h.log, err)
	cl.code = string(body.Error.Code)
	if body.Error.Code == actions.CodeTooLarge && cl.caller == nil {
		h.attribute(c, cl)
	}
	if status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" && !asError(err).Final {
		c.Header("Retry-After", "1") // the database away, the writer's queue full: passing
	}
	if wantsHTML(c) {
		// What a signed link needs is said when it was refused as a link
		// (tampered, expired, its key unusable), not for an action disabled
		// since, say, where copying it again would not help.
		signed := c.Query("sig") != "" && body.Error.Code == actions.CodeUnauthorized
		h.page(c, status, web.WebhookResult{Code: string(body.Error.Code), Detail: body.Error.Detail, Field: body.Error.Field, SignedLink: signed})
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
	c.Header("Referrer-Policy", "no-referrer")
	c.Header("X-Robots-Tag", "noindex")
	// No other site may frame a link's page (a confirm button clicked
	// through a disguise) or have its form post elsewhere.
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Header("X-Frame-Options", "DENY")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// clientAddr is the caller's address as the records keep it: an IPv4
// address written as IPv6 (::ffff:203.0.113.5, as a proxy may forward it)
// as IPv4, so that one caller is one source in the request log's filters
// and its busiest sources. Its checks (a key's ranges) unmap it themselves.
func clientAddr(c *gin.Context) string {
	ip := c.ClientIP()
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.Unmap().String()
	}
	return ip
}

// readBody reads a POST body, up to the limit (readLimited), in UTF-8.
func (h *webhookHandler) readBody(c *gin.Context) ([]byte, error) {
	if c.Request.Method != http.MethodPost {
		return nil, nil
	}
	body, err := readLimited(c, h.maxBody)
	if err != nil {
		return nil, err
	}
	return fromUTF16(body), nil
}

// linkParams tells a link (a GET, or the form a confirm link's button posts,
// which carries a payload, a signature or a key) from an API call with a JSON body, and
// returns the link's parameters. A JSON body sent with curl's default form
// content type is still a JSON call, even if a value in it reads like a
// link's parameter ("&sig=" in a signed image URL).
func linkParams(c *gin.Context, body []byte) (url.Values, bool, error) {
	if c.Request.Method == http.MethodGet {
		q, err := linkQuery(c.Request.URL.RawQuery)
		return q, true, err
	}
	if strings.HasPrefix(c.ContentType(), "application/x-www-form-urlencoded") && !json.Valid(bytes.TrimPrefix(body, utf8BOM)) {
		form, err := url.ParseQuery(string(body))
		switch {
		case err != nil:
			return nil, false, badRequest("the body is neither a form nor JSON: %v", err)
		case form.Has("payload") || form.Has("sig") || form.Has("api_key"):
			return form, true, oneOfEach(form)
		case form.Has("event_id"):
			return nil, false, errFormBody
		}
	}
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		return nil, false, errFormBody
	}
	return url.Values{}, false, nil
}

// isForm tells a body that is form fields naming an event_id.
func isForm(body []byte) bool {
	form, err := url.ParseQuery(string(bytes.TrimSpace(body)))
	return err == nil && form.Has("event_id")
}

// errFormBody answers a POST whose fields came as a form (PowerShell's
// -Body @{…}, Postman's form tabs), which would otherwise read as bad JSON.
var errFormBody = badRequest(`the body is a form: send the JSON object {"event_id": "…"}, with Content-Type: application/json`)

// linkFields are the query parameters of a link: its key or signature, and
// its payload.
var linkFields = []string{"api_key", "key_id", "expires", "sig", "payload"}

// linkQuery reads a GET link's query. A pair that is not validly URL-encoded is
// dropped, as net/url does, unless the link needs it: then the caller hears
// that, rather than that the parameter is missing.
func linkQuery(raw string) (url.Values, error) {
	// A link copied out of HTML with its '&' escaped: "…&amp;payload=…". A
	// value's own '&' is percent-encoded, so this is always a separator.
	raw = strings.ReplaceAll(raw, "&amp;", "&")
	q, err := url.ParseQuery(raw)
	if err == nil {
		return q, oneOfEach(q)
	}
	for _, name := range linkFields {
		if !q.Has(name) && (strings.HasPrefix(raw, name+"=") || strings.Contains(raw, "&"+name+"=")) {
			return nil, badRequest("the %s parameter is not validly URL-encoded: %v", name, err)
		}
	}
	return q, oneOfEach(q)
}

// authenticate finds the caller: a signed link (key_id, expires, sig), or the key
// in the x-webhook-apikey header or a link's api_key parameter.
func (h *webhookHandler) authenticate(c *gin.Context, params url.Values) (*auth.Caller, error) {
	if sig := params.Get("sig"); sig != "" {
		// The signature covers the number: only its one spelling is the link
		// (not "0017…" or "+17…"), so that a link works exactly as it was made.
		raw := params.Get("expires")
		expires, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || strconv.FormatInt(expires, 10) != raw {
			return nil, auth.ErrBadLink
		}
		caller, payload, err := h.keys.AuthenticateLink(c.Request.Context(), params.Get("key_id"), expires, params.Get("payload"), sig, params.Get("confirm") != "")
		if err == nil {
			params.Set("payload", payload) // the text the signature covers
		}
		return caller, err
	}
	key, err := headerKey(c)
	if err != nil {
		return nil, err
	}
	if key == "" {
		key = strings.TrimSpace(params.Get("api_key"))
	}
	switch {
	case key == "" && c.Request.Method == http.MethodPost && c.Query("api_key") != "":
		return nil, actions.Errorf(actions.CodeUnauthorized,
			"missing API key: a POST sends it in the x-webhook-apikey header (api_key in the query string counts on a GET link only)")
	case key == "":
		return nil, actions.Errorf(actions.CodeUnauthorized,
			"missing API key: send it in the x-webhook-apikey header, or as api_key in a GET link")
	}
	return h.keys.Authenticate(c.Request.Context(), key)
}

// attribute files a call refused before its key was read (its body or
// headers over the limit) under the key of its x-webhook-apikey header or
// api_key parameter, if that is a key in use: the request log then shows the
// key's oversized calls with its others. The key is checked as a call's is,
// holding a slot (such a call has none yet: a flood of them must not queue
// reads beyond what calls may), and not at all when none is free. It
// neither counts against the key's rate nor marks it used.
func (h *webhookHandler) attribute(c *gin.Context, cl *call) {
	key, err := headerKey(c)
	if err != nil {
		return
	}
	if key == "" {
		key = strings.TrimSpace(c.Query("api_key"))
	}
	if key == "" {
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		return
	}
	if caller, err := h.keys.Authenticate(c.Request.Context(), key); err == nil {
		cl.caller = caller
	}
}

// headerKey is the key of the x-webhook-apikey header ("" if none).
func headerKey(c *gin.Context) (string, error) { return oneHeader(c, "x-webhook-apikey") }

// oneHeader is the value of the header name, trimmed ("" if none). Two
// different values are refused: which one is meant is not guessed.
func oneHeader(c *gin.Context, name string) (string, error) {
	var value string
	for _, v := range c.Request.Header.Values(name) {
		switch v = strings.TrimSpace(v); {
		case value == "":
			value = v
		case v != "" && v != value:
			return "", badRequest("the call has two different %s headers: send one", name)
		}
	}
	return value, nil
}

// oneOfEach refuses a link that gives one of its parameters twice with
// different values (two api_key, or two payload): as for two headers, which
// one is meant is not guessed.
func oneOfEach(q url.Values) error {
	for _, name := range linkFields {
		vs := q[name]
		for _, v := range vs[min(1, len(vs)):] {
			if strings.TrimSpace(v) != strings.TrimSpace(vs[0]) {
				return badRequest("the link has two different %s parameters: send one", name)
			}
		}
	}
	return nil
}

// readRequest reads the JSON body, or the link's payload, into a webhookRequest.
func readRequest(c *gin.Context, link bool, params url.Values, body []byte) (*webhookRequest, error) {
	raw := body
	if link {
		p := params.Get("payload")
		if p == "" {
			return nil, badRequest("the payload parameter is required: base64 of {\"event_id\": \"...\"}")
		}
		var err error
		if raw, err = DecodePayload(p); err != nil {
			return nil, err
		}
		if len(raw) == 0 { // nothing but punctuation, "=" or "!!!"
			return nil, badRequest("the payload is not base64: it has no base64 character in it")
		}
	}
	switch trimmed := bytes.TrimSpace(bytes.TrimPrefix(raw, utf8BOM)); {
	case link && !json.Valid(trimmed) && !bytes.HasPrefix(trimmed, []byte("{")):
		// Base64 of something else: a link cut short or joined wrongly, or
		// a standard base64 '+' read as a space.
		return nil, badRequest("the payload is base64, but not of a JSON object: check that the link was copied whole, and that a + in it is written %%2B")
	case !link && len(trimmed) == 0 && c.Query("payload") != "":
		return nil, badRequest("the body is empty: a POST sends the JSON object in its body (payload in the query string counts on a GET link only)")
	}
	req, err := ParseWebhookJSON(toUTF8(raw))
	if err != nil && !link && isForm(raw) {
		return nil, errFormBody // labelled JSON: PowerShell's -Body @{…} with -ContentType application/json
	}
	if err != nil {
		return nil, err
	}
	k, err := oneHeader(c, "Idempotency-Key")
	if err != nil {
		return nil, err
	}
	if k != "" {
		req.IdempotencyKey = k
	}
	if err := checkIdentifier("the idempotency key", req.IdempotencyKey, maxIdempotencyKey); err != nil {
		return nil, err
	}
	return req, nil
}

// maxEventID and maxIdempotencyKey bound the two identifiers a call names, in
// characters. A real event id ("evt_…") has 30.
const (
	maxEventID        = 64
	maxIdempotencyKey = 255
)

// checkIdentifier refuses, as a 400 that names it by what, an event id or an
// idempotency key that is not one line of at most max characters.
func checkIdentifier(what, s string, max int) error {
	var e *actions.Error
	if errors.As(actions.CheckLine(what, s, max), &e) {
		return badRequest("%s %s", what, e.Detail)
	}
	return nil
}

// confirmFields are the link parameters the confirmation form posts back.
func confirmFields(params url.Values) map[string]string {
	out := map[string]string{"confirm": params.Get("confirm")} // a signed link's signature covers it
	for _, k := range linkFields {
		if v := params.Get(k); v != "" {
			out[k] = v
		}
	}
	return out
}

// DecodePayload decodes a GET link's payload: base64 in the standard or URL-safe
// alphabet, padded or not. A space is read as an unescaped '+', or as where a
// wrapped link was joined (auth.PayloadReadings): the first reading that
// decodes to a JSON object is taken, or else the first that decodes.
func DecodePayload(p string) ([]byte, error) {
	var first []byte
	var firstErr error
	for i, s := range auth.PayloadReadings(p) {
		s = strings.TrimRight(strings.TrimSpace(s), "=")
		s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
		b, err := base64.RawStdEncoding.DecodeString(s)
		switch {
		case i == 0:
			first, firstErr = b, err
		case err != nil:
			continue
		case firstErr != nil:
			first, firstErr = b, nil
		}
		if err == nil && isJSONObject(b) {
			return b, nil
		}
	}
	switch t := strings.TrimSpace(p); {
	case firstErr == nil:
		return first, nil
	case strings.HasPrefix(t, "{"):
		return nil, badRequest("the payload is JSON, not base64 of it: encode the JSON object with base64, then URL-encode that")
	case strings.Contains(t, "%"):
		return nil, badRequest("the payload is not base64: it has a %% in it, as a link URL-encoded twice has; URL-encode it once")
	default:
		return nil, badRequest("the payload is not base64: %v", firstErr)
	}
}

func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// toUTF8 reads a body or payload as UTF-8 when it is valid UTF-8, whatever
// charset its Content-Type names, and else as Windows-1252: what Windows
// PowerShell 5 sends (often labelled UTF-8), whose letters are Latin-1's.
// Nothing is refused for its encoding: a call that worked before, its bad
// bytes read as U+FFFD, still works, and its letters now arrive.
func toUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return b // cannot happen: every byte is a Windows-1252 character
	}
	return out
}

// fromUTF16 turns a body in UTF-16, which PowerShell 5's Out-File writes (a
// file then sent with -InFile, labelled a form), into UTF-8, before it is
// read as a form or as JSON; any other body is returned as it is. UTF-16 is
// told by its byte-order mark, or by the zero byte beside its first
// character, which a JSON or form body in UTF-8 never has.
func fromUTF16(b []byte) []byte {
	order, ok := utf16Order(b)
	if !ok {
		return b
	}
	out, err := unicode.UTF16(order, unicode.UseBOM).NewDecoder().Bytes(b)
	if err != nil {
		return b
	}
	return out
}

// utf16Order tells UTF-16 text and its byte order.
func utf16Order(b []byte) (unicode.Endianness, bool) {
	switch {
	case len(b) < 2:
		return unicode.LittleEndian, false
	case b[0] == 0xff && b[1] == 0xfe, b[0] != 0 && b[1] == 0:
		return unicode.LittleEndian, true
	case b[0] == 0xfe && b[1] == 0xff, b[0] == 0 && b[1] != 0:
		return unicode.BigEndian, true
	}
	return unicode.LittleEndian, false
}

// utf8BOM is the byte-order mark some tools put before UTF-8 text.
var utf8BOM = []byte("\xef\xbb\xbf")

// ParseWebhookJSON reads the webhook JSON object and checks its types.
func ParseWebhookJSON(raw []byte) (*webhookRequest, error) {
	raw = bytes.TrimPrefix(raw, utf8BOM) // some Windows tools write one
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("the body must be a JSON object with an event_id")
	}
	var fields map[string]json.RawMessage
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(raw, &fields); errors.As(err, &typeErr) {
		return nil, badRequest("the payload must be a JSON object with an event_id, not a JSON %s", typeErr.Value)
	} else if err != nil && bytes.ContainsAny(raw, "\u201c\u201d\u201e\u2018\u2019") {
		return nil, badRequest("the payload is not a JSON object: it has typographic quotes (“ ”), as word processors and chat apps write them; JSON needs straight quotes (\")")
	} else if err != nil {
		return nil, badRequest("the payload is not a JSON object: %v", err)
	}
	req := &webhookRequest{}
	if err := jsonString(fields["event_id"], "event_id", &req.EventID); err != nil {
		return nil, err
	}
	req.EventID = strings.TrimSpace(req.EventID)
	if req.EventID == "" {
		return nil, badRequest("event_id is required: the event id of an action (evt_…)")
	}
	if err := checkIdentifier("event_id", req.EventID, maxEventID); err != nil {
		return nil, err
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
// RFC 7240 header "Prefer: wait=SECONDS". At most MaxWait. A ?wait= that is not
// a number of seconds is a 400; a preference is a hint, which RFC 7240 has a
// server ignore when it cannot honour it, so a bad one waits for nothing rather
// than losing the trigger.
func waitOf(c *gin.Context) (time.Duration, error) {
	if v := c.Query("wait"); v != "" {
		d, ok := seconds(v)
		if !ok {
			return 0, badRequest("wait must be a number of seconds, 0 or more (more than %d is read as %d)",
				int(MaxWait.Seconds()), int(MaxWait.Seconds()))
		}
		return d, nil
	}
	d, _ := seconds(preferredWait(c.Request.Header))
	return d, nil
}

// seconds reads a wait of v seconds, at most MaxWait; ok is false when v is
// not a number of seconds, 0 or more. "" is no wait.
func seconds(v string) (d time.Duration, ok bool) {
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseFloat(v, 64)
	if errors.Is(err, strconv.ErrRange) && n > 0 {
		n, err = math.Inf(1), nil // "1e400": a long wait, read as the longest
	}
	if err != nil || math.IsNaN(n) || n < 0 {
		return 0, false
	}
	if n >= MaxWait.Seconds() {
		return MaxWait, true
	}
	return time.Duration(n * float64(time.Second)), true
}

// preferredWait is the value of the first wait preference in Prefer headers
// ("wait=5", "Wait = 5", `wait="5"; x=y`), or "". RFC 7240 has later ones
// ignored.
func preferredWait(h http.Header) string {
	for _, pref := range strings.Split(strings.Join(h.Values("Prefer"), ","), ",") {
		pref, _, _ = strings.Cut(pref, ";") // the preference's own parameters
		name, s, ok := strings.Cut(pref, "=")
		if ok && strings.EqualFold(strings.TrimSpace(name), "wait") {
			return strings.Trim(strings.TrimSpace(s), `"`)
		}
	}
	return ""
}

func tooLarge(limit int64) error {
	return actions.Errorf(actions.CodeTooLarge, "the request is over the size limit (body %d bytes)", limit)
}

// headerBytes is the size of a request's header fields.
func headerBytes(r *http.Request) int {
	n := len(r.RequestURI)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// wantsHTML tells a browser (that opened a link, or posted a confirm form) from an
// API client: its Accept names text/html, and ranks it no lower than JSON.
func wantsHTML(c *gin.Context) bool {
	if c.Request.Method != http.MethodGet && !strings.HasPrefix(c.ContentType(), "application/x-www-form-urlencoded") {
		return false
	}
	htmlQ, jsonQ := acceptQ(c.GetHeader("Accept"))
	return htmlQ > 0 && htmlQ >= jsonQ
}

// acceptQ reads the quality values an Accept header gives text/html, which
// it must name, and JSON: application/json, a +json type, or a wildcard
// (application/*, */*), so that curl's */* gets JSON and a browser's
// "text/html, …, */*;q=0.8" a page.
func acceptQ(accept string) (htmlQ, jsonQ float64) {
	for _, part := range strings.Split(accept, ",") {
		mediaType, params, _ := strings.Cut(part, ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			name, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				}
			}
		}
		switch mediaType = strings.ToLower(strings.TrimSpace(mediaType)); {
		case mediaType == "text/html":
			htmlQ = max(htmlQ, q)
		case mediaType == "application/json", mediaType == "application/*", mediaType == "*/*",
			strings.HasPrefix(mediaType, "application/") && strings.HasSuffix(mediaType, "+json"):
			jsonQ = max(jsonQ, q)
		}
	}
	return htmlQ, jsonQ
}

// previewAgents are the user agents of chat apps and link unfurlers that fetch a
// link to show a preview: their GET must not fire the action. Microsoft
// Office's apps are among them: Outlook previews links, and Word or Excel
// fetch a clicked link themselves before they open it in the browser, which
// would fire it twice.
var previewAgents = []string{
	"slackbot", "slack-imgproxy", "twitterbot", "facebookexternalhit", "facebot", "discordbot",
	"telegrambot", "whatsapp", "linkedinbot", "skypeuripreview", "microsoftpreview", "googlebot",
	"bingbot", "applebot", "embedly", "iframely", "redditbot", "pinterest", "mattermost",
	"rocket.chat", "viber", "vkshare", "bitlybot", "outlook-iOS-android", "google-safety", "yahoo! slurp",
	"mastodon", "pleroma", "akkoma", "misskey", "synapse (bot", "keybase", "zulipurlpreview",
	"nextcloud server crawler", "snapurlpreview", "microsoft office", "ms-office", "msoffice",
}

// isPrefetch tells a browser's request made ahead of a click: a prefetch or
// prerender (Sec-Purpose, Purpose, X-Moz), or Safari's preview of a top site
// (X-Purpose: preview).
func isPrefetch(h http.Header) bool {
	for _, name := range []string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"} {
		v := strings.ToLower(h.Get(name))
		if strings.Contains(v, "prefetch") || strings.Contains(v, "prerender") || strings.Contains(v, "preview") {
			return true
		}
	}
	return false
}

func isPreviewAgent(ua string) bool {
	ua = strings.ToLower(ua)
	for _, a := range previewAgents {
		if strings.Contains(ua, strings.ToLower(a)) {
			return true
		}
	}
	return false
}
