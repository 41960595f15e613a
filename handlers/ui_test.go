package handlers

import (
	"testing"

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
