package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/secrets"
	"devicehooks/store"
)

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "/",
		"/":                      "/",
		"/api-keys":              "/api-keys",
		"/dispatches?page=2":     "/dispatches?page=2",
		"//evil.example/x":       "/",
		"/\\evil.example":        "/",
		"https://evil.example/":  "/",
		"javascript:alert(1)":    "/",
		"api-keys":               "/",
		"/login?next=/api-keys":  "/",
		"/a\r\nSet-Cookie: x=1":  "/",
		"/actions/1/edit#params": "/actions/1/edit",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:               `'plain'`,
		`{"a":"it's"}`:        `'{"a":"it'\''s"}'`,
		`$(rm -rf /) ; echo`:  `'$(rm -rf /) ; echo'`,
		`x-webhook-apikey: k`: `'x-webhook-apikey: k'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestStateSummary(t *testing.T) {
	got := stateSummary(4, store.StateCounts{store.StateExpired: 1, store.StateSucceeded: 2, store.StateQueued: 1})
	if want := "1 queued · 2 succeeded · 1 expired"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	got = stateSummary(3, store.StateCounts{store.StateExpired: 2, store.Superseded: 1, store.StateSucceeded: 1})
	if got != "1 succeeded · 1 expired · 1 superseded" {
		t.Errorf("with a superseded command: %q", got)
	}
	for _, c := range []struct {
		counts store.StateCounts
		want   string
	}{
		{store.StateCounts{store.StateExpired: 2, store.Superseded: 2}, "superseded"},
		{store.StateCounts{store.StateExpired: 2, store.Superseded: 1}, "failed"},
		{store.StateCounts{store.StateSucceeded: 1, store.StateExpired: 1, store.Superseded: 1}, "partial"},
		{store.StateCounts{store.StateSucceeded: 2}, "succeeded"},
		{store.StateCounts{store.StateQueued: 1, store.StateExpired: 1, store.Superseded: 1}, "pending"},
	} {
		if got := DispatchStatus(2, c.counts); got != c.want {
			t.Errorf("DispatchStatus(2, %v) = %q, want %q", c.counts, got, c.want)
		}
	}
	// Every command expired, superseded: one state, no choice of filters.
	if v := (&dispatchPageView{Counts: store.StateCounts{store.StateExpired: 2, store.Superseded: 2}}); !v.FiltersHidden() {
		t.Error("a dispatch whose commands are all expired (superseded) offers state filters")
	}
	if got := stateSummary(0, nil); got != "no devices targeted" {
		t.Errorf("empty: %q", got)
	}
}

func TestPager(t *testing.T) {
	p := pager{Page: 2}
	p.setTotal(101, 50)
	if p.Pages != 3 || p.Prev() != 1 || p.Next() != 3 {
		t.Errorf("pager %+v prev %d next %d", p, p.Prev(), p.Next())
	}
	p = pager{Page: 1}
	p.setTotal(0, 50)
	if p.Pages != 1 || p.Prev() != 0 || p.Next() != 0 {
		t.Errorf("empty pager %+v", p)
	}
}

func TestOriginOf(t *testing.T) {
	if got := originOf("https://hooks.example.com/base/"); got != "https://hooks.example.com" {
		t.Errorf("originOf = %q", got)
	}
}

// TestSecretCookie: a new secret reaches its page sealed, for that page and that
// session only, and not in the clear.
func TestSecretCookie(t *testing.T) {
	kr, err := secrets.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	u := &ui{Deps: Deps{Users: auth.NewUsers(nil, kr)}}
	u.secretSeal = u.newSecretSeal
	ctx := func(session string) *gin.Context {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
		c.Set(ctxSession, session)
		return c
	}
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodPost, "/api-keys", nil)
	c.Set(ctxSession, "session-a")
	u.showSecret(c, apiKeySecretPath, "API key created", secretView{Value: "dhk_secretvalue"})
	cookies := rec.Result().Cookies()
	if c.Writer.Status() != http.StatusSeeOther || rec.Header().Get("Location") != apiKeySecretPath || len(cookies) != 1 {
		t.Fatalf("%d %q %v", c.Writer.Status(), rec.Header().Get("Location"), cookies)
	}
	raw := cookies[0].Value
	if strings.Contains(raw, "secretvalue") {
		t.Fatal("the cookie holds the secret in the clear")
	}
	if s, ok := u.openSecret(ctx("session-a"), apiKeySecretPath, raw); !ok || s.View.Value != "dhk_secretvalue" {
		t.Fatalf("open: %v %+v", ok, s)
	}
	tampered := "A" + raw[1:]
	if raw[0] == 'A' { // one cookie in 64 starts so: "A" would change nothing
		tampered = "B" + raw[1:]
	}
	for name, open := range map[string]func() bool{
		"another session": func() bool { _, ok := u.openSecret(ctx("session-b"), apiKeySecretPath, raw); return ok },
		"another page":    func() bool { _, ok := u.openSecret(ctx("session-a"), deviceSecretPath, raw); return ok },
		"tampered":        func() bool { _, ok := u.openSecret(ctx("session-a"), apiKeySecretPath, tampered); return ok },
		"empty":           func() bool { _, ok := u.openSecret(ctx("session-a"), apiKeySecretPath, ""); return ok },
	} {
		if open() {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestLinkRefusal(t *testing.T) {
	act := &store.Action{ID: "a1", TargetType: actions.TargetGroup, TargetID: "g1"}
	past := time.Now().Add(-time.Hour)
	for _, c := range []struct {
		key  store.APIKey
		want string
	}{
		{store.APIKey{ScopeActions: "[]", ScopeGroups: "[]", Methods: "[]"}, ""},
		{store.APIKey{Disabled: true}, "disabled"},
		{store.APIKey{ExpiresAt: &past}, "expired"},
		{store.APIKey{Methods: `["POST"]`}, "POST only"},
		{store.APIKey{Methods: `["GET"]`}, ""},
		{store.APIKey{ScopeActions: `["a2"]`}, "not for this action"},
		{store.APIKey{ScopeActions: `["a2"]`, Methods: `["POST"]`}, "not for this action"}, // nor by POST
		{store.APIKey{ScopeActions: `["a1"]`}, ""},
		{store.APIKey{ScopeGroups: `["g1"]`}, ""},
	} {
		if got, _ := linkRefusal(&c.key, act, time.Now()); got != c.want {
			t.Errorf("%+v: %q, want %q", c.key, got, c.want)
		}
	}
}

func TestParamsSummary(t *testing.T) {
	for _, c := range []struct {
		function, params, want string
	}{
		{actions.SetEmergency, `{"enabled":true,"message":"Evacuate via north stairs"}`, "on: Evacuate via north stairs"},
		{actions.SetEmergency, `{"enabled":true,"message":"Leave","url":"https://example.com/e"}`, "on: Leave · https://example.com/e"},
		{actions.SetEmergency, `{"enabled":true}`, "on"},
		{actions.SetEmergency, `{"enabled":false}`, "off"},
		{actions.LoadURL, `{"url":"https://example.com/welcome"}`, "https://example.com/welcome"},
		{actions.LoadURL, `{"url":"https://example.com/a","duration_s":30}`, "https://example.com/a for 30 s"},
		{actions.RefreshDatasource, `{"datasource_id":"42"}`, "datasource 42"},
		{actions.RefreshDatasource, `{}`, "all datasources"},
		{actions.SensorEvent, `{}`, "sensor data from each call"},
		{actions.SensorEvent, `{"id":"door-3","event":"opened","value":"1"}`, "sensor door-3 · event opened · value 1"},
		{actions.Restart, `{}`, ""},
		{"set_volume", `{"level":40,"fade":true}`, "fade true · level 40"}, // a function added without a case here
		{actions.SetEmergency, `{"enabled":true,"message":"` + strings.Repeat("é", 300) + `"}`, "on: " + strings.Repeat("é", summaryLength-5) + "…"},
	} {
		if got := actionSummary(c.function, c.params); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.function, c.params, got, c.want)
		}
	}
	// Every function of the catalogue with parameters has a summary of them.
	sample := map[string]any{"url": "https://example.com/x", "bool": true, "string": "x", "int": 5}
	for _, f := range actions.Catalogue {
		p := map[string]any{}
		for _, param := range f.Params {
			if p[param.Name] = sample[param.Type]; p[param.Name] == nil {
				t.Errorf("%s: parameter %s has a type the UI's form does not know: %q", f.Name, param.Name, param.Type)
			}
		}
		if len(p) > 0 && paramsText(f.Name, p) == "" {
			t.Errorf("%s: no summary of its parameters %v", f.Name, p)
		}
	}
	p, raw := commandParams(`{"id":"c","function":"sensor_event","params":{"id":"door-3","event":"opened"}}`)
	if got := paramsSummary(actions.SensorEvent, p); got != "sensor door-3 · event opened" || raw != `{"event":"opened","id":"door-3"}` {
		t.Errorf("command params: %q %s", got, raw)
	}
	if p, raw := commandParams(`{"id":"c","function":"restart","params":{}}`); p != nil || raw != "" {
		t.Errorf("no params: %v %q", p, raw)
	}
}

// A form shows input errors joined together, but a server failure among them
// makes the whole a failure: the form would show the input errors and hide it.
func TestJoinedErrorsOnAForm(t *testing.T) {
	name, ttl := actions.Invalid("name", "is required"), actions.Invalid("ttl_s", "must be from 1")
	if !isUserError(errors.Join(name, ttl)) {
		t.Fatal("two input errors are not a user error")
	}
	if isUserError(errors.Join(name, fmt.Errorf("look up the target: %w", store.ErrUnavailable))) {
		t.Fatal("a database failure joined with an input error is taken for a user error")
	}
	errs, msg := fieldErrors(errors.Join(name, ttl), func(f string) string { return f })
	if len(errs) != 2 || errs["name"] != "is required" || msg != "Please correct the marked fields." {
		t.Fatalf("field errors %v, %q", errs, msg)
	}
}

// A form sent after the session ended leads, once signed in again, back to
// the page it was sent from: every form's route has a page to come back to.
func TestEveryFormHasAPageToComeBackTo(t *testing.T) {
	r := gin.New()
	registerUI(r, Deps{}, http.NewCrossOriginProtection())
	var pages []string
	for _, rt := range r.Routes() {
		if rt.Method == http.MethodGet {
			pages = append(pages, rt.Path)
		}
	}
	matches := func(pattern, path string) bool {
		ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
		if len(ps) != len(xs) {
			return false
		}
		for i := range ps {
			if ps[i] != xs[i] && !strings.HasPrefix(ps[i], ":") {
				return false
			}
		}
		return true
	}
	for _, rt := range r.Routes() {
		if rt.Method != http.MethodPost || rt.Path == "/login" || rt.Path == "/logout" || rt.Path == apiKeyCopyPath {
			continue // not behind a session, or answered with JSON
		}
		page := formPage(rt.Path, strings.ReplaceAll(rt.Path, ":id", "x"), "x")
		found := false
		for _, p := range pages {
			found = found || matches(p, page)
		}
		if !found {
			t.Errorf("a form posted to %s comes back to %s, which is no page", rt.Path, page)
		}
	}
}
