package handlers

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
)

// A wait longer than MaxWait, however long, is read as MaxWait (docs/api.md:
// "more is read as 30"); a ?wait= that is not a number of seconds, 0 or more,
// is a 400, and such a Prefer: wait is ignored, as RFC 7240 has a server do
// with a preference it cannot honour (the trigger still fires).
func TestWaitOf(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "1.5": 1500 * time.Millisecond, "30": MaxWait, "31": MaxWait,
		"1000001": MaxWait, "1e400": MaxWait, "Inf": MaxWait,
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks?wait="+v, nil)
		if got, err := waitOf(c); err != nil || got != want {
			t.Errorf("wait=%s: %v, %v; want %v", v, got, err, want)
		}
		c, _ = gin.CreateTestContext(httptest.NewRecorder()) // a context keeps its query
		c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks", nil)
		c.Request.Header.Set("Prefer", "wait="+v)
		if got, err := waitOf(c); err != nil || got != want {
			t.Errorf("Prefer: wait=%s: %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"-1", "-1e400", "NaN", "soon", "5s"} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks?wait="+v, nil)
		if _, err := waitOf(c); err == nil || !strings.Contains(err.Error(), "0 or more") {
			t.Errorf("wait=%s: %v, want a 400 that says what a wait is", v, err)
		}
		c, _ = gin.CreateTestContext(httptest.NewRecorder()) // a context keeps its query
		c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks", nil)
		c.Request.Header.Set("Prefer", "wait="+v)
		if got, err := waitOf(c); err != nil || got != 0 {
			t.Errorf("Prefer: wait=%s: %v, %v; want it ignored", v, got, err)
		}
	}
	// Only the first wait preference counts (RFC 7240, section 2).
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks", nil)
	c.Request.Header.Add("Prefer", "respond-async, wait=2, wait=3")
	c.Request.Header.Add("Prefer", "wait=4")
	if got, err := waitOf(c); err != nil || got != 2*time.Second {
		t.Errorf("Prefer: wait=2, wait=3, wait=4: %v, %v; want the first, 2s", got, err)
	}
}

// A waited-for answer lists its commands, [] for a dispatch to no device,
// and leaves them out when they could not be read (docs/api.md).
func TestWaitedAnswerCommands(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for _, c := range []struct {
		commands []store.Command
		want     string
	}{
		{nil, `"settled":false}`},
		{[]store.Command{}, `"settled":true,"commands":[]}`},
		{[]store.Command{{ID: "c1", DeviceID: "d1", State: store.StateQueued}}, `"commands":[{"id":"c1","device_id":"d1","state":"queued"`},
	} {
		w := httptest.NewRecorder()
		ctx, _ := gin.CreateTestContext(w)
		ctx.Request = httptest.NewRequest("POST", "/public-api/integration/webhooks?wait=2", nil)
		(&webhookHandler{}).succeed(ctx, &actions.Outcome{Settled: c.commands != nil && len(c.commands) == 0, Commands: c.commands}, 2*time.Second)
		if !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("commands %v: answered %s, want %s in it", c.commands, w.Body, c.want)
		}
	}
}
