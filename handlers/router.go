// Package handlers is devicehooks' HTTP side: the webhook endpoint, the management
// API, the admin UI (the ui_*.go files), health, metrics, the access log and the
// request log's writer. Routes are wired by hand in New.
package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/internal/logevery"
	"devicehooks/metrics"
	"devicehooks/secrets"
	"devicehooks/store"
)

// Deps is what the handlers need; main builds it.
type Deps struct {
	Store      *store.Store
	Keys       *auth.Keys
	Admins     *auth.Admins
	Devices    *auth.Devices
	Users      *auth.Users
	Dispatcher *actions.Dispatcher
	Presence   *actions.Presence
	Log        *slog.Logger
	// MaxBody is the webhook body limit in bytes; MaxHeader the header limit.
	MaxBody   int64
	MaxHeader int
	// MaxConcurrent bounds webhook calls in progress (0: 512).
	MaxConcurrent int
	// RequestLog records every webhook call; Metrics counts them.
	RequestLog *RequestLog
	Metrics    *metrics.Metrics
	// BrokerConnected reports the MQTT side's state for /healthz.
	BrokerConnected func() bool
	// WriteFailing tells /healthz that the database refuses the trigger
	// path's writes (a full disk, say), though it may still answer.
	WriteFailing func(ctx context.Context) bool
	// TrustedProxies may set the client address through X-Forwarded-For.
	TrustedProxies []string
	// Topics are the MQTT topics (the UI shows them to player developers).
	Topics actions.Topics
	// PublicURL is the base URL generated links use ("" = from the request).
	PublicURL string
	// PlayerBroker is where players connect (the UI tells whoever sets one up).
	PlayerBroker PlayerBroker
	// SecureCookies marks session cookies Secure (behind TLS).
	SecureCookies bool
}

// New returns the HTTP handler with every route.
func New(d Deps) (http.Handler, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		return nil, err
	}
	// X-Forwarded-For alone, whose last address a proxy appends: gin also
	// believes X-Real-IP by default, and takes it when X-Forwarded-For does
	// not read, which let a caller behind a proxy that does not set it name
	// any address (a key's ranges, the sign-in lockout).
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	failures := logevery.New(time.Second) // see logFailure
	r.Use(func(c *gin.Context) { c.Set(ctxFailureLines, failures) }, accessLog(d.Log), recovery(d.Log))
	r.HandleMethodNotAllowed = true

	r.GET("/healthz", health(d))
	r.HEAD("/healthz", health(d)) // some health checkers ask with HEAD

	if d.MaxConcurrent <= 0 {
		d.MaxConcurrent = 512
	}
	if d.MaxHeader <= 0 {
		d.MaxHeader = 16 << 10
	}
	cop := crossOriginProtection(d)
	wh := &webhookHandler{
		st: d.Store, keys: d.Keys, dispatch: d.Dispatcher, log: d.Log, reqlog: d.RequestLog, metrics: d.Metrics,
		maxBody: d.MaxBody, maxHeader: d.MaxHeader, cop: cop,
		slots: make(chan struct{}, d.MaxConcurrent), waits: make(chan struct{}, max(8, d.MaxConcurrent/8)),
	}
	// The UI's routes are registered below; a browser opening an address
	// that only takes a form is answered with its pages.
	var u *ui
	r.NoMethod(func(c *gin.Context) { // gin has set the Allow header
		switch {
		case c.Request.URL.Path == webhookPath:
			wh.refuseMethod(c)
		case wantsPage(c.Request):
			u.noPage(c)
		default:
			respondError(c, d.Log, actions.Errorf(actions.CodeMethod, "method %s is not allowed here; see the Allow header", c.Request.Method))
		}
	})
	r.POST(webhookPath, wh.handle)
	r.GET(webhookPath, wh.handle)
	r.HEAD(webhookPath, wh.handle)
	r.GET(webhookPath+"/dispatches/:id", wh.followUp)
	r.HEAD(webhookPath+"/dispatches/:id", wh.followUp)

	a := &api{Deps: d}
	v1 := r.Group("/api/v1", requireAdmin(d.Admins, d.Log)) // no-store: see apiHeaders
	// Each route names the query parameters it reads (takesQuery): a
	// misspelled filter is refused, as a misspelled field of a body is,
	// rather than ignored, which would list everything. What answers a GET
	// answers a HEAD too (curl -I, a monitor's check), without its body,
	// which net/http leaves out.
	route := func(method, path string, h gin.HandlerFunc, query ...string) {
		v1.Handle(method, path, takesQuery(d.Log, query), h)
		if method == http.MethodGet {
			v1.Handle(http.MethodHead, path, takesQuery(d.Log, query), h)
		}
	}
	page := []string{"limit", "offset"}
	route("POST", "/api-keys", a.createAPIKey)
	route("GET", "/api-keys", a.listAPIKeys, page...)
	route("GET", "/api-keys/:id", a.getAPIKey)
	route("PUT", "/api-keys/:id", a.updateAPIKey)
	route("POST", "/api-keys/:id/reveal", a.revealAPIKey)
	route("DELETE", "/api-keys/:id", a.deleteAPIKey)

	route("POST", "/actions", a.createAction)
	route("GET", "/actions", a.listActions, page...)
	route("GET", "/actions/:id", a.getAction)
	route("PUT", "/actions/:id", a.updateAction)
	route("DELETE", "/actions/:id", a.deleteAction)

	route("POST", "/devices", a.createDevice)
	route("GET", "/devices", a.listDevices, page...)
	route("GET", "/devices/:id", a.getDevice)
	route("PUT", "/devices/:id", a.updateDevice)
	route("DELETE", "/devices/:id", a.deleteDevice)
	route("POST", "/devices/:id/token", a.rotateDeviceToken)
	route("GET", "/devices/:id/commands", a.listDeviceCommands, "limit", "offset", "state", "before") // offset: refused with a hint

	route("POST", "/groups", a.createGroup)
	route("GET", "/groups", a.listGroups, page...)
	route("GET", "/groups/:id", a.getGroup)
	route("PUT", "/groups/:id", a.updateGroup)
	route("DELETE", "/groups/:id", a.deleteGroup)

	route("GET", "/dispatches", a.listDispatches, append(page, "action_id", "api_key_id", "failed", "since", "until")...)
	route("GET", "/dispatches/:id", a.getDispatch)
	route("GET", "/dispatches/:id/commands", a.listDispatchCommands, append(page, "state")...)
	route("GET", "/requests", a.listRequests, append(page, "code", "key_id", "source", "method", "since", "until")...)
	route("GET", "/requests/sources", a.topSources, "since")

	// Operators scrape with the admin token here, or without one on --metrics-addr.
	metrics := []gin.HandlerFunc{requireAdmin(d.Admins, d.Log), gin.WrapH(d.Metrics.Handler())}
	r.GET("/metrics", metrics...)
	r.HEAD("/metrics", metrics...)

	u = registerUI(r, d, cop)
	// An unknown path: a browser asking for a page gets the UI's "Not found"
	// page; the management API, the webhook and other clients get the JSON error.
	r.NoRoute(func(c *gin.Context) {
		if wantsPage(c.Request) {
			u.notFound(c)
			return
		}
		respondError(c, d.Log, actions.Errorf(actions.CodeNotFound, "no such endpoint: %s %s", c.Request.Method, c.Request.URL.Path))
	})
	return apiHeaders(r), nil
}

// apiHeaders keeps every answer under /api/ (some carry secrets), of
// /metrics, and under /public-api/ (a cache that gave a webhook's answer again would stand for a
// call that fired nothing) out of caches: also those no handler of theirs
// writes, such as a 404, a 405 or gin's redirect of a trailing slash, which
// caches may otherwise keep. Their content type is what it says
// (nosniff), as the UI's pages' is (securityHeaders).
func apiHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/public-api/") || r.URL.Path == "/metrics" {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
		}
		h.ServeHTTP(w, r)
	})
}

// wantsPage tells a browser's request for a page (a GET that accepts HTML,
// outside the API and the webhook's paths) from an API client's.
func wantsPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/public-api/") {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// health answers 200 while the database answers and takes the trigger path's
// writes, and says whether the broker is connected (triggers are accepted and
// queued either way).
func health(d Deps) gin.HandlerFunc {
	return func(c *gin.Context) {
		mqtt := "connected"
		if d.BrokerConnected != nil && !d.BrokerConnected() {
			mqtt = "disconnected"
		}
		if err := d.Store.Ping(c.Request.Context()); err != nil {
			// Limited as other failures are: several probes a second
			// (load balancers, an orchestrator) are one line a second.
			logFailure(c, d.Log, http.StatusServiceUnavailable, fmt.Errorf("health: database: %w", err))
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "database": "down", "mqtt": mqtt})
			return
		}
		if d.WriteFailing != nil && d.WriteFailing(c.Request.Context()) {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "database": "refusing writes", "mqtt": mqtt})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok", "database": "ok", "mqtt": mqtt})
	}
}

// accessLog writes a line for each request, with every secret in its URL
// masked and, for an error, the code and detail it was answered with: one line
// a second at most for each kind of request (method, route, status, client
// address), with more_like_it=N for those left out since the last. A busy
// integration or a flood of bad calls is a line a second, not thousands: the
// rest of the log stays readable, and a log's rate limit (journald's) does not
// drop the lines that matter. Every webhook call is in the request log, and
// /metrics counts them all.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	lines := logevery.New(time.Second)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if !log.Enabled(c.Request.Context(), slog.LevelInfo) {
			return // --log-level warn: nothing to work out per request
		}
		status := c.Writer.Status()
		// Now, not the start: a call that waited 30 s for acks must not wind
		// its kind's clock back.
		ok, skipped := lines.Allow(c.Request.Method+" "+c.FullPath()+" "+strconv.Itoa(status)+" "+c.ClientIP(), time.Now())
		if !ok {
			return
		}
		path := secrets.Mask(c.Request.URL.Path)
		if q := c.Request.URL.RawQuery; q != "" {
			path += "?" + secrets.MaskQuery(q)
		}
		attrs := []any{"method", c.Request.Method, "path", path, "status", status,
			"dur_ms", float64(time.Since(start).Microseconds()) / 1000, "ip", c.ClientIP(), "bytes", c.Writer.Size()}
		if e, ok := c.Value(ctxAnswerError).(errorDetail); ok {
			attrs = append(attrs, "code", e.Code)
			if status >= http.StatusInternalServerError {
				// What the service refused and why ("too many webhook calls in
				// progress"); a 4xx's detail may name the caller's event id,
				// which stays out of the log as a link's payload does.
				attrs = append(attrs, "detail", actions.Truncate(e.Detail, 200))
			}
		}
		if id := c.GetString(ctxDispatchID); id != "" {
			attrs = append(attrs, "dispatch_id", id)
		}
		if skipped > 0 {
			attrs = append(attrs, "more_like_it", skipped)
		}
		log.Info("http", attrs...)
	}
}

// ctxDispatchID holds the dispatch a webhook call made, for the access log.
const ctxDispatchID = "devicehooks.dispatchID"

// recovery turns a panic into a 500 with the usual error body.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler { // net/http's way to drop a connection: not a failure
				panic(r)
			}
			// One line, with where it happened; the answer is not logged again.
			log.Error("panic in handler", "panic", r, "method", c.Request.Method, "path", c.Request.URL.Path, "stack", string(debug.Stack()))
			e := errorDetail{Code: actions.CodeInternal, Detail: "internal error; see the server log"}
			c.Set(ctxAnswerError, e)
			c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Message: "Error", Error: e})
		}()
		c.Next()
	}
}
