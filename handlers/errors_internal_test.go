package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/internal/logevery"
	"devicehooks/store"
)

// A failure is logged once where it is answered: at Error when something
// broke, with its cause; at Debug when the service refused by design.
func TestErrorResponseLogsFailuresOnce(t *testing.T) {
	shed := actions.Errorf(actions.CodeUnavailable, "too many calls at once; retry shortly")
	for _, tc := range []struct {
		name   string
		err    error
		status int
		level  string // "" for no line
	}{
		{"refused by design", shed, 503, "DEBUG"},
		{"a coded failure with its cause", fmt.Errorf("%w (write dispatch: %w)", shed, errors.New("disk I/O error")), 503, "ERROR"},
		{"an uncoded error", errors.New("boom"), 500, "ERROR"},
		{"the database unavailable", fmt.Errorf("store: create action: %w: %w", store.ErrUnavailable, errors.New("database is locked")), 503, "ERROR"},
		{"bad input", actions.Invalid("url", "must be http or https"), 422, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks", nil)
			status, body := errorResponse(c, log, tc.err)
			if status != tc.status || strings.Contains(body.Error.Detail, "disk") || strings.Contains(body.Error.Detail, "boom") {
				t.Fatalf("answer %d %+v", status, body)
			}
			lines := strings.Count(buf.String(), "\n")
			switch {
			case tc.level == "" && lines != 0:
				t.Fatalf("logged %q", buf.String())
			case tc.level != "" && (lines != 1 || !strings.Contains(buf.String(), "level="+tc.level)):
				t.Fatalf("want one %s line, got %q", tc.level, buf.String())
			}
			if tc.level == "ERROR" && !strings.Contains(buf.String(), strings.TrimPrefix(tc.err.Error(), "unavailable: ")) {
				t.Fatalf("the line lacks the cause: %q", buf.String())
			}
		})
	}
}

// The same failure on every call (the database down) is one line a second,
// not one per call.
func TestRepeatedFailuresAreLoggedOnceASecond(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	cause := fmt.Errorf("%w (write dispatch: %w)", actions.Errorf(actions.CodeUnavailable, "the trigger could not be accepted"), errors.New("database or disk is full"))
	lines := logevery.New(time.Second) // as New sets it up for every request
	for range 50 {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks", nil)
		c.Set(ctxFailureLines, lines)
		if status, _ := errorResponse(c, log, cause); status != 503 {
			t.Fatalf("status %d", status)
		}
	}
	if n := strings.Count(buf.String(), "request failed"); n != 1 {
		t.Fatalf("%d lines for 50 calls failing alike:\n%s", n, buf.String())
	}
}

// The access log has a line for each kind of request (method, route, status,
// address), one a second at most: a flood of calls alike is one line (the
// next one says how many were left out: logevery's tests); an error's line
// says what the caller was told, a webhook call's which dispatch it made.
func TestAccessLogLinesPerKind(t *testing.T) {
	var buf bytes.Buffer
	r := gin.New()
	r.Use(accessLog(slog.New(slog.NewTextHandler(&buf, nil))))
	r.GET("/things/:id", func(c *gin.Context) {
		switch c.Param("id") {
		case "missing", "busy":
			err := actions.Errorf(actions.CodeNotFound, "no such thing")
			if c.Param("id") == "busy" {
				err = actions.Errorf(actions.CodeUnavailable, "too many calls at once")
			}
			status, body := errorResponse(c, slog.New(slog.DiscardHandler), err)
			c.JSON(status, body)
			return
		}
		c.Set(ctxDispatchID, "d-1")
		c.Status(200)
	})
	get := func(path string) {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	for i := range 100 {
		get(fmt.Sprint("/things/", i))
	}
	get("/things/missing")
	get("/nowhere")
	get("/things/busy")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want one per kind (200, 404 from the route, 404 without one):\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"status=200 ", "status=404 ", "path=/nowhere status=404 ", `status=503 .* code=unavailable detail="too many calls at once"`} {
		if !regexp.MustCompile(want).MatchString(lines[i]) {
			t.Fatalf("line %d %q lacks %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "dispatch_id=d-1") || !strings.Contains(lines[1], "code=not_found") || strings.Contains(lines[1], "no such thing") {
		t.Fatalf("the lines lack the dispatch or the answer:\n%s", buf.String())
	}
}

// A panic in a handler is answered 500 and logged once, with its stack.
func TestPanicIsLoggedOnceWithItsStack(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	r := gin.New()
	r.Use(recovery(log))
	r.GET("/boom", func(*gin.Context) { panic("boom") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), `"code":"internal"`) {
		t.Fatalf("answered %d %s", w.Code, w.Body)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != 1 || !strings.Contains(buf.String(), "stack=") || !strings.Contains(buf.String(), "errors_internal_test.go") {
		t.Fatalf("%d lines, want one with the stack: %s", lines, buf.String())
	}
}
