package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"devicehooks/store"
)

// The dispatches page, in a real Chromium against the real server, narrows
// to an action, a key and the dispatches that need attention: from a click
// on a row's action or key, from the actions and keys pages, and from the
// dashboard; each filter shows as a chip that removes it.
func TestUIDispatchFilters(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	seedDevices(t, s, "lobby-1")
	keyID, key := s.createKey("Signage CMS")
	action := func(name string) string {
		return s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
			"name": name, "function": "restart", "target": map[string]any{"type": "device", "id": "lobby-1"}})["id"].(string)
	}
	welcome, night := action("Welcome"), action("Night mode")
	// Three triggers, seeded as the writer would leave them once settled:
	// Welcome by the key (failed on the screen), Welcome from the UI's test
	// button, Night mode by the key.
	now := time.Now().UTC()
	var nds []*store.NewDispatch
	for i, d := range []struct{ id, action, name, key, state string }{
		{"d-welcome-failed", welcome, "Welcome", keyID, store.StateFailed},
		{"d-welcome-test", welcome, "Welcome", "", store.StateSucceeded},
		{"d-night", night, "Night mode", keyID, store.StateSucceeded},
	} {
		at := now.Add(time.Duration(i-3) * time.Minute)
		nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: d.id, ActionID: d.action, ActionName: d.name, EventID: "evt", Function: "restart",
			APIKeyID: d.key, Method: "POST", Targets: 1, CreatedAt: at}}
		if d.key != "" {
			nd.Dispatch.APIKeyPrefix = key[:12]
		} else {
			nd.Dispatch.Method = "TEST"
		}
		nd.Commands = []store.Command{{ID: d.id + "-c", DispatchID: d.id, DeviceID: "lobby-1", State: d.state, Function: "restart",
			Payload: "{}", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}}
		nds = append(nds, nd)
	}
	if _, err := s.app.store.WriteDispatches(context.Background(), nds); err != nil {
		t.Fatal(err)
	}
	b.signIn(uiUser, uiPassword)

	rows := func() []string {
		return evalIn[[]string](b, `[...document.querySelectorAll("#dispatches tbody tr")].map(r => r.dataset.dispatch)`)
	}
	chip := func(name string) string { return `#filter-chips .chip[data-filter="` + name + `"]` }
	want := func(what string, ids ...string) {
		t.Helper()
		if got := rows(); !slices.Equal(got, ids) {
			t.Fatalf("%s: rows %v, want %v (at %s)", what, got, ids, b.location())
		}
	}

	b.open("/dispatches")
	want("all", "d-night", "d-welcome-test", "d-welcome-failed")
	if b.has("#filter-chips") || b.has("#clear-filters") {
		t.Fatal("chips or 'Show all' without a filter")
	}

	// A click on a row's action shows that action's dispatches only.
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-dispatch="d-welcome-test"] a.action-filter`)))
	want("by action", "d-welcome-test", "d-welcome-failed")
	if got := b.text(chip("action") + " strong"); got != "Welcome" {
		t.Fatalf("action chip %q", got)
	}
	if title := evalIn[string](b, `document.title`); !strings.HasPrefix(title, "Dispatches: action Welcome") {
		t.Fatalf("title %q", title)
	}

	// The checkbox narrows further, keeping the action.
	b.submit(chromedp.Click(chromedp.ID("f-failed")), chromedp.Click(chromedp.ID("filter")))
	want("failed of the action", "d-welcome-failed")
	if u, _ := url.Parse(b.location()); u.Query().Get("action") != welcome || u.Query().Get("failed") != "true" {
		t.Fatalf("at %s", b.location())
	}
	if !evalIn[bool](b, `document.getElementById("f-failed").checked`) || b.text(chip("failed")+" strong") != "needs attention" {
		t.Fatalf("the failed filter is not shown: %q", b.text("#filter-chips"))
	}

	// Each chip's × removes its own filter only.
	b.submit(chromedp.Click(chromedp.CSS(chip("action") + " a.chip-remove")))
	want("failed", "d-welcome-failed")
	if u, _ := url.Parse(b.location()); u.RawQuery != "failed=true" {
		t.Fatalf("after removing the action: at %s", b.location())
	}
	b.submit(chromedp.Click(chromedp.ID("f-failed")), chromedp.Click(chromedp.ID("filter")))
	want("nothing after unticking", "d-night", "d-welcome-test", "d-welcome-failed")

	// A click on a key prefix: that key's dispatches (not the test button's).
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-dispatch="d-night"] a.key-filter`)))
	want("by key", "d-night", "d-welcome-failed")
	if got := b.text(chip("key") + " strong"); !strings.HasSuffix(got, "…") || !strings.HasPrefix(key, strings.TrimSuffix(got, "…")) {
		t.Fatalf("key chip %q", got)
	}
	b.submit(chromedp.Click(chromedp.ID("clear-filters")))
	want("shown all", "d-night", "d-welcome-test", "d-welcome-failed")

	// From the actions page and the keys page.
	b.open("/actions")
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-action="` + night + `"] a.dispatches-link`)))
	want("from the actions page", "d-night")
	b.open("/api-keys")
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-key="` + keyID + `"] a.dispatches-link`)))
	want("from the keys page", "d-night", "d-welcome-failed")

	// From the dashboard: the failed dispatches of the last 24 hours.
	b.open("/")
	if got := b.text("#stat-failed"); got != "1" {
		t.Fatalf("failed stat %q", got)
	}
	b.submit(chromedp.Click(chromedp.ID("all-failed")))
	want("from the dashboard", "d-welcome-failed")
	if !b.has(chip("since")) || !b.has(chip("failed")) {
		t.Fatalf("chips %q", b.text("#filter-chips"))
	}

	// An action deleted since is named as its dispatches name it.
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/actions/"+night, nil)
	b.open("/dispatches?action=" + night)
	want("a deleted action", "d-night")
	if got, title := b.text(chip("action")+" strong"), evalIn[string](b, `document.querySelector('`+chip("action")+`').title`); got != "Night mode" || title != "a deleted action" {
		t.Fatalf("deleted action chip %q (%q)", got, title)
	}

	// A key revoked since is named by its prefix and name, as before.
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/api-keys/"+keyID, nil)
	b.open("/dispatches?key=" + keyID)
	want("a revoked key", "d-night", "d-welcome-failed")
	if got, title := b.text(chip("key")+" strong"), evalIn[string](b, `document.querySelector('`+chip("key")+`').title`); !strings.HasPrefix(key, strings.TrimSuffix(got, "…")) || title != "Signage CMS (revoked)" {
		t.Fatalf("revoked key chip %q (%q)", got, title)
	}

	// A filter that matches nothing says so; a time it cannot read is 400.
	b.open("/dispatches?action=no-such-action")
	if got := b.text(".empty"); got != "No dispatch matches these filters." {
		t.Fatalf("empty result says %q", got)
	}
	if st := b.open("/dispatches?since=yesterday"); st != http.StatusBadRequest {
		t.Fatalf("a bad time: status %d", st)
	}
}
