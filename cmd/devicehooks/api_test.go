package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// TestManagementAPIInput: what a script sends is taken as it means it, or
// refused naming the field; nothing is dropped or reset without a word.
func TestManagementAPIInput(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("lobby-1")
	target := map[string]any{"type": "device", "id": "lobby-1"}
	created := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "Welcome", "function": "load_url", "target": target,
		"params": map[string]any{"url": "https://example.com"}, "enabled": false, "ttl_s": 60,
	})
	path := "/api/v1/actions/" + created["id"].(string)

	// A rename leaves out enabled and ttl_s: they keep their values.
	s.mustCall(http.StatusNoContent, "PUT", path, map[string]any{
		"name": "Welcome (lobby)", "function": "load_url", "target": target,
		"params": map[string]any{"url": "https://example.com"},
	})
	got := s.mustCall(http.StatusOK, "GET", path, nil)
	if got["name"] != "Welcome (lobby)" || got["enabled"] != false || got["ttl_s"] != float64(60) {
		t.Fatalf("after a rename: %v", got)
	}

	// A PUT is the whole action: one without its function says it is required.
	status, ans := s.call("PUT", path, map[string]any{"name": "Welcome (lobby)"})
	wantError(t, "a PUT without its function", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if e := ans["error"].(map[string]any); e["field"] != "function" || !strings.HasPrefix(e["detail"].(string), "function is required; one of load_url") {
		t.Fatalf("a PUT without its function: %v", e)
	}

	// A whole number written as a float, as some JSON encoders do, is taken;
	// a fraction is not.
	floats := func(ttl string) (int, map[string]any) {
		return s.call("PUT", path, json.RawMessage(`{"name":"Welcome (lobby)","function":"load_url",`+
			`"target":{"type":"device","id":"lobby-1"},"params":{"url":"https://example.com","duration_s":30.0},"ttl_s":`+ttl+`}`))
	}
	if status, ans := floats("120.0"); status != http.StatusNoContent {
		t.Fatalf("ttl_s 120.0: %d %v", status, ans)
	}
	if got := s.mustCall(http.StatusOK, "GET", path, nil); got["ttl_s"] != float64(120) {
		t.Fatalf("ttl_s after 120.0: %v", got["ttl_s"])
	}
	status, ans = floats("1.2e2")
	if status != http.StatusNoContent {
		t.Fatalf("ttl_s 1.2e2: %d %v", status, ans)
	}
	status, ans = floats("120.5")
	wantError(t, "ttl_s 120.5", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if f := ans["error"].(map[string]any)["field"]; f != "ttl_s" {
		t.Fatalf("ttl_s 120.5 refused for %v", f)
	}
	key := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", json.RawMessage(`{"name":"floats","rate":{"per_second":1.5,"burst":10.0}}`))
	if r := key["rate"].(map[string]any); r["burst"] != float64(10) {
		t.Fatalf("a burst of 10.0: %v", key)
	}

	// What a GET answered goes back with a change: its read-only fields (id,
	// event_id, created_at, ...) are ignored.
	got["enabled"] = true
	s.mustCall(http.StatusNoContent, "PUT", path, got)
	if again := s.mustCall(http.StatusOK, "GET", path, nil); again["enabled"] != true || again["event_id"] != created["event_id"] {
		t.Fatalf("after a round trip: %v", again)
	}

	for _, tc := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"a typo", "PUT", path, map[string]any{"name": "x", "function": "restart", "target": target, "enable": false}, "enable"},
		{"a name that is a number", "POST", "/api/v1/actions", map[string]any{"name": 5, "function": "restart", "target": target}, "name"},
		{"a target that is a string", "POST", "/api/v1/actions", map[string]any{"name": "x", "function": "restart", "target": "all"}, "target"},
		{"a nested field of the wrong type", "POST", "/api/v1/actions", map[string]any{"name": "x", "function": "restart", "target": map[string]any{"type": 1}}, "target.type"},
		{"an unknown field of a group", "POST", "/api/v1/groups", map[string]any{"name": "x", "devices": []string{"lobby-1"}}, "devices"},
		{"device ids that are not an array", "POST", "/api/v1/groups", map[string]any{"name": "x", "device_ids": "lobby-1"}, "device_ids"},
		{"a device id that is a number", "POST", "/api/v1/groups", map[string]any{"name": "x", "device_ids": []any{"lobby-1", 1}}, "device_ids"},
		{"a nested typo", "POST", "/api/v1/actions", map[string]any{"name": "x", "function": "restart", "target": map[string]any{"type": "device", "idd": "lobby-1"}}, "target.idd"},
		{"a key's methods that are not an array", "POST", "/api/v1/api-keys", map[string]any{"name": "k", "methods": "GET"}, "methods"},
		{"a key's expiry that is not a time", "POST", "/api/v1/api-keys", map[string]any{"name": "k", "expires_at": "tomorrow"}, "expires_at"},
		{"a key's expiry that is a number", "POST", "/api/v1/api-keys", map[string]any{"name": "k", "expires_at": 5}, "expires_at"},
		{"a key's rate of the wrong type", "POST", "/api/v1/api-keys", map[string]any{"name": "k", "rate": map[string]any{"per_second": "x"}}, "rate.per_second"},
		{"a typo in a key's rate", "POST", "/api/v1/api-keys", map[string]any{"name": "k", "rate": map[string]any{"persecond": 1}}, "rate.persecond"},
		{"a key's rate below the lowest", "POST", "/api/v1/api-keys", map[string]any{"name": "k", "rate": map[string]any{"per_second": 1e-12, "burst": 1}}, "rate.per_second"},
		{"a ttl_s past what a duration holds", "PUT", path, map[string]any{"name": "x", "function": "restart", "target": target, "ttl_s": 18446744075}, "ttl_s"},
		{"a ttl_s that overflows to a valid one", "POST", "/api/v1/actions", map[string]any{"name": "x", "function": "restart", "target": target, "ttl_s": 18446744075000}, "ttl_s"},
		{"a device's rename without a name", "PUT", "/api/v1/devices/lobby-1", map[string]any{}, "name"},
		{"a device's name on two lines", "PUT", "/api/v1/devices/lobby-1", map[string]any{"name": "a\nb"}, "name"},
	} {
		status, ans := s.call(tc.method, tc.path, tc.body)
		wantError(t, tc.name, status, ans, http.StatusUnprocessableEntity, "invalid_params")
		if f := ans["error"].(map[string]any)["field"]; f != tc.field {
			t.Errorf("%s: field %v, want %q: %v", tc.name, f, tc.field, ans)
		}
	}
	if got := s.mustCall(http.StatusOK, "GET", path, nil); got["enabled"] != true || got["name"] != "Welcome (lobby)" {
		t.Fatalf("a refused update changed the action: %v", got)
	}
	// A device renamed to nothing is shown by its id, as when it was added
	// without a name (and as the UI's form does).
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/devices/lobby-1", map[string]any{"name": "Lobby"})
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/devices/lobby-1", map[string]any{"name": " "})
	if got := s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-1", nil); got["name"] != "lobby-1" {
		t.Fatalf("a device renamed to nothing: %v", got)
	}

	// A device an action targets is not deleted, and the answer names the
	// action, so that a script knows what to change.
	status, ans = s.call("DELETE", "/api/v1/devices/lobby-1", nil)
	wantError(t, "deleting a device an action targets", status, ans, http.StatusConflict, "conflict")
	if d := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(d, `the action "Welcome (lobby)" (`+created["id"].(string)+`)`) {
		t.Errorf("deleting a device an action targets: %q does not name the action", d)
	}
	// An action without a target says that one is required.
	status, ans = s.call("POST", "/api/v1/actions", map[string]any{"name": "x", "function": "restart"})
	wantError(t, "an action without a target", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if e := ans["error"].(map[string]any); e["field"] != "target.type" || !strings.Contains(e["detail"].(string), "is required") {
		t.Errorf("an action without a target: %v", e)
	}

	// A refusal from inside an edit's transaction keeps its field, whatever
	// its text: "duplicate key value" is also how PostgreSQL says 409.
	keyID, _ := s.createKey("k")
	status, ans = s.call("PUT", "/api/v1/api-keys/"+keyID, map[string]any{"cidrs": []string{"duplicate key value"}})
	wantError(t, "a key's range that reads like a database's error", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if f := ans["error"].(map[string]any)["field"]; f != "cidrs[0]" {
		t.Errorf("a key's range that reads like a database's error: field %v", f)
	}

	// Malformed JSON is a 400; so is a body that is not an object, and one
	// that is not UTF-8 (decoded, its bytes would become U+FFFD in the name).
	for _, body := range []string{`{"name":`, `[]`, `{"name":"a"} {"name":"b"}`, `{"name":"a"}}`, `{"name":"a"}]`, "{\"name\":\"\xff\xfe\"}",
		`{"name":"\ud800x"}`, `{"name":"x\udc00"}`, `{"name":"\ud83d\u0041"}`, `{"name":"\\\ud800"}`} { // half a surrogate pair: U+FFFD, decoded

		req, _ := http.NewRequest("POST", s.base+"/api/v1/groups", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		status, ans := s.do(req)
		wantError(t, body, status, ans, http.StatusBadRequest, "bad_request")
	}

	// A whole pair is a character, and an escaped backslash before a u no escape.
	if g := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", json.RawMessage(`{"name":"\ud83d\ude00 \\ud800"}`)); g["name"] != "\U0001F600 \\ud800" {
		t.Fatalf("a name with a surrogate pair: %q", g["name"])
	}

	// The scheme is case-insensitive.
	req, _ := http.NewRequest("GET", s.base+"/api/v1/actions", nil)
	req.Header.Set("Authorization", "bearer "+testAdminToken)
	if status, ans := s.do(req); status != http.StatusOK {
		t.Fatalf("lower-case bearer: %d %v", status, ans)
	}
}

// TestManagementAPIAsAToolReadsIt: what a provisioning tool (Terraform, a
// script) relies on. What a create answers is what a GET answers; an unknown
// object is 404 whatever the body; an id is read without the spaces around
// it wherever it is named, as when it was made; a misspelled filter is
// refused rather than ignored (which lists everything); a body as PowerShell
// writes it is read; times come back in UTC; a dispatch's detail always has
// its commands.
func TestManagementAPIAsAToolReadsIt(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("lobby-1")
	s.createDevice("lobby-2")

	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Lobby", "device_ids": []string{"lobby-2", " lobby-1", "lobby-2 "}})
	read := s.mustCall(http.StatusOK, "GET", "/api/v1/groups/"+group["id"].(string), nil)
	if fmt.Sprint(group["device_ids"]) != "[lobby-1 lobby-2]" || fmt.Sprint(read["device_ids"]) != fmt.Sprint(group["device_ids"]) {
		t.Fatalf("a group's members as created %v, as read %v", group["device_ids"], read["device_ids"])
	}
	s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "x", "function": "restart", "target": map[string]any{"type": "device", "id": " lobby-1 "}})

	for _, path := range []string{"/api/v1/devices/nope", "/api/v1/groups/nope", "/api/v1/actions/nope", "/api/v1/api-keys/nope"} {
		for _, body := range []string{`garbage`, `{"bogus":1}`, `{"name":""}`} {
			req, _ := http.NewRequest("PUT", s.base+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			status, ans := s.do(req)
			wantError(t, "PUT "+path+" "+body, status, ans, http.StatusNotFound, "not_found")
		}
	}

	for _, tc := range []struct{ path, param string }{
		{"/api/v1/dispatches?status=failed", "status"},
		{"/api/v1/dispatches?limit=5&actionid=x", "actionid"},
		{"/api/v1/actions?function=restart", "function"},
		{"/api/v1/requests?status=500", "status"},
		{"/api/v1/devices/lobby-1?verbose=1", "verbose"},
		{"/api/v1/devices?Limit=5", "Limit"},
		{"/api/v1/dispatches?failed=true;x=1", ""},
	} {
		for _, method := range []string{"GET", "HEAD"} {
			status, ans := s.call(method, tc.path, nil)
			if method == "HEAD" {
				if status != http.StatusBadRequest {
					t.Errorf("HEAD %s: %d", tc.path, status)
				}
				continue
			}
			wantError(t, tc.path, status, ans, http.StatusBadRequest, "bad_request")
			if d := ans["error"].(map[string]any)["detail"].(string); tc.param == "" && !strings.HasPrefix(d, "the query cannot be read") ||
				tc.param != "" && !strings.HasPrefix(d, fmt.Sprintf("%q is not a query parameter of GET /api/v1/", tc.param)) {
				t.Errorf("%s: %q", tc.path, d)
			}
		}
	}
	status, ans := s.call("POST", "/api/v1/devices?id=lobby-3", map[string]any{"id": "lobby-3"})
	wantError(t, "a create with a query", status, ans, http.StatusBadRequest, "bad_request")
	if d := ans["error"].(map[string]any)["detail"].(string); !strings.HasSuffix(d, "which takes none") {
		t.Errorf("a create with a query: %q", d)
	}
	for _, path := range []string{"/api/v1/dispatches?limit=5&offset=0&action_id=x&api_key_id=y&failed=true&since=2026-01-01T00:00:00Z&until=2030-01-01T00:00:00Z",
		"/api/v1/requests?code=success&key_id=x&source=y&method=POST&since=2026-01-01T00:00:00Z", "/api/v1/requests/sources?since=2026-01-01T00:00:00Z",
		"/api/v1/devices/lobby-1/commands?state=failed&before=&limit=5", "/api/v1/groups?limit=1&offset=1"} {
		s.mustCall(http.StatusOK, "GET", path, nil)
	}

	for _, body := range []string{`{"name":"x","function":"load_url","target":{"type":"all"},"params":{"url":"https://example.com","duration_s":1e400}}`,
		`{"name":"k","rate":{"per_second":1e400,"burst":1}}`} {
		path := map[bool]string{true: "/api/v1/api-keys", false: "/api/v1/actions"}[strings.Contains(body, "rate")]
		status, ans := s.call("POST", path, json.RawMessage(body))
		wantError(t, body, status, ans, http.StatusUnprocessableEntity, "invalid_params")
		if d := ans["error"].(map[string]any)["detail"].(string); !strings.HasSuffix(d, "holds a number out of range: 1e400") {
			t.Errorf("%s: %q", body, d)
		}
	}

	// PowerShell 5: Out-File -Encoding utf8 writes a byte-order mark.
	req, _ := http.NewRequest("POST", s.base+"/api/v1/devices", strings.NewReader("\xef\xbb\xbf"+`{"id":"lobby-3"}`))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if status, ans := s.do(req); status != http.StatusCreated {
		t.Fatalf("a body with a byte-order mark: %d %v", status, ans)
	}
	req, _ = http.NewRequest("POST", s.base+"/api/v1/devices", strings.NewReader("\x1f\x8b\x08"))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Encoding", "gzip")
	status, ans = s.do(req)
	wantError(t, "a compressed body", status, ans, http.StatusBadRequest, "bad_request")
	if d := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(d, "send it uncompressed") {
		t.Errorf("a compressed body: %q", d)
	}

	// A key that would be dead on saving is refused, as the UI's form
	// refuses it; one whose expiry has passed since, sent back as read, is
	// not.
	status, ans = s.call("POST", "/api/v1/api-keys", map[string]any{"name": "k", "expires_at": "2020-01-01T00:00:00Z"})
	wantError(t, "a key that expired before it was made", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if f := ans["error"].(map[string]any)["field"]; f != "expires_at" {
		t.Errorf("a key that expired before it was made: field %v", f)
	}
	soon := time.Now().Add(time.Second).UTC()
	short := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "short", "expires_at": soon.Format(time.RFC3339Nano)})
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	shortPath := "/api/v1/api-keys/" + short["id"].(string)
	s.mustCall(http.StatusNoContent, "PUT", shortPath, s.mustCall(http.StatusOK, "GET", shortPath, nil))
	s.mustCall(http.StatusNoContent, "PUT", shortPath, map[string]any{"name": "short, renamed"})
	status, ans = s.call("PUT", shortPath, map[string]any{"expires_at": "2020-01-01T00:00:00Z"})
	wantError(t, "an expiry moved into the past", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	// The year 10000 in UTC: SQLite read it back as the year 1, and on
	// PostgreSQL the list of keys answered 200 with an empty body.
	status, ans = s.call("POST", "/api/v1/api-keys", map[string]any{"name": "k", "expires_at": "9999-12-31T23:59:59-12:00"})
	wantError(t, "an expiry past the year 9999", status, ans, http.StatusUnprocessableEntity, "invalid_params")

	key := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "k", "expires_at": "2027-01-01T00:00:00+02:00"})
	read = s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys/"+key["id"].(string), nil)
	if key["expires_at"] != "2026-12-31T22:00:00Z" || read["expires_at"] != key["expires_at"] {
		t.Fatalf("an expiry given with an offset: created %v, read %v", key["expires_at"], read["expires_at"])
	}

	empty := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Empty"})
	ev := s.createAction("restart", map[string]any{"type": "group", "id": empty["id"]}, nil)
	_, ans = s.post(key["key"].(string), `{"event_id":"`+ev+`"}`)
	d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ans["dispatch_id"].(string), nil)
	if cmds, ok := d["commands"].([]any); !ok || len(cmds) != 0 {
		t.Fatalf("a dispatch to no device: commands %v", d["commands"])
	}
	list := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches", nil)
	if _, ok := list["items"].([]any)[0].(map[string]any)["commands"]; ok {
		t.Fatalf("a dispatch in the list has its commands: %v", list)
	}
}

// TestConcurrentEditsAreBothKept: two PUTs at once that name different fields
// both take effect, each made over the other's result, on SQLite and on
// PostgreSQL. A rename racing a disable must not leave the key enabled, nor a
// change of ttl_s racing one of enabled leave the action enabled.
func TestConcurrentEditsAreBothKept(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			cfg := Config{}
			if db == "postgres" {
				cfg.DB = testenv.Postgres(t)
			}
			s := startServer(t, cfg)
			keyID, _ := s.createKey("race")
			keyPath := "/api/v1/api-keys/" + keyID
			action := map[string]any{"name": "race", "function": "restart", "target": map[string]any{"type": "all"}}
			actionPath := "/api/v1/actions/" + s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", action)["id"].(string)
			with := func(k string, v any) map[string]any {
				m := maps.Clone(action)
				m[k] = v
				return m
			}
			for i := range 15 {
				s.mustCall(http.StatusNoContent, "PUT", keyPath, map[string]any{"name": "race", "disabled": false, "methods": nil})
				s.mustCall(http.StatusNoContent, "PUT", actionPath, with("enabled", true))
				s.mustCall(http.StatusNoContent, "PUT", actionPath, with("ttl_s", 900))
				puts := []struct {
					path string
					body any
				}{
					{keyPath, map[string]any{"disabled": true}},
					{keyPath, map[string]any{"name": fmt.Sprintf("race %d", i)}},
					{keyPath, map[string]any{"methods": []string{"POST"}}},
					{actionPath, with("enabled", false)},
					{actionPath, with("ttl_s", 60)},
				}
				status := make([]int, len(puts))
				var wg sync.WaitGroup
				for j, p := range puts {
					wg.Go(func() { status[j], _ = s.call("PUT", p.path, p.body) })
				}
				wg.Wait()
				for j, st := range status {
					if st != http.StatusNoContent {
						t.Fatalf("round %d, PUT %v: %d", i, puts[j].body, st)
					}
				}
				k := s.mustCall(http.StatusOK, "GET", keyPath, nil)
				if k["disabled"] != true || k["name"] != fmt.Sprintf("race %d", i) || fmt.Sprint(k["methods"]) != "[POST]" {
					t.Fatalf("round %d: an edit of the key was lost: %v", i, k)
				}
				a := s.mustCall(http.StatusOK, "GET", actionPath, nil)
				if a["enabled"] != false || a["ttl_s"] != float64(60) {
					t.Fatalf("round %d: an edit of the action was lost: %v", i, a)
				}
			}
		})
	}
}

// TestGroupUpdates: a PUT that leaves device_ids out renames a group and keeps
// its members (an emergency action aimed at the group must not lose its
// screens to a rename); an unknown device is named with its place in the list.
func TestGroupUpdates(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("lobby-1")
	s.createDevice("lobby-2")
	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Lobby", "device_ids": []string{"lobby-1", "lobby-2"}})
	path := "/api/v1/groups/" + group["id"].(string)
	members := func(what string, want ...string) map[string]any {
		t.Helper()
		got := s.mustCall(http.StatusOK, "GET", path, nil)
		var ids []string
		for _, id := range got["device_ids"].([]any) {
			ids = append(ids, id.(string))
		}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: members %v, want %v", what, ids, want)
		}
		return got
	}

	s.mustCall(http.StatusNoContent, "PUT", path, map[string]any{"name": "Lobby (ground floor)"})
	if got := members("after a rename", "lobby-1", "lobby-2"); got["name"] != "Lobby (ground floor)" {
		t.Fatalf("after a rename: %v", got)
	}
	s.mustCall(http.StatusNoContent, "PUT", path, map[string]any{"name": "Lobby", "device_ids": nil})
	got := members("after device_ids null", "lobby-1", "lobby-2")

	got["device_ids"] = []string{"lobby-2"} // what a GET answered, sent back changed
	s.mustCall(http.StatusNoContent, "PUT", path, got)
	members("after a round trip", "lobby-2")
	s.mustCall(http.StatusNoContent, "PUT", path, map[string]any{"name": "Lobby", "device_ids": []string{}})
	members("after device_ids []")

	status, ans := s.call("POST", "/api/v1/groups", map[string]any{"name": "Other", "device_ids": []string{"lobby-1", "lobby-1", "nope"}})
	wantError(t, "an unknown device", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if e := ans["error"].(map[string]any); e["field"] != "device_ids[2]" || !strings.Contains(e["detail"].(string), `"nope"`) {
		t.Errorf("an unknown device: %v", e)
	}
	s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Other"})
	status, ans = s.call("PUT", path, map[string]any{"name": "Other"})
	wantError(t, "a rename to a taken name", status, ans, http.StatusConflict, "conflict")
	for _, body := range []map[string]any{{"name": "x"}, {"name": "x", "device_ids": []string{"lobby-1"}}} {
		status, ans = s.call("PUT", "/api/v1/groups/nope", body)
		wantError(t, "an unknown group", status, ans, http.StatusNotFound, "not_found")
	}
}

// TestNotYetKnownIsNull: what is not known yet reads as null, never as a
// field left out (docs/api.md, Dispatches).
func TestNotYetKnownIsNull(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("lobby-1")
	id, key := s.createKey("k")
	unused := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys/"+id, nil)
	for _, field := range []string{"last_used_at", "last_used_from"} {
		if v, ok := unused[field]; !ok || v != nil {
			t.Errorf("an unused key's %s: %v (present %v), want null", field, v, ok)
		}
	}
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "lobby-1"}, nil)
	_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ans["dispatch_id"].(string), nil)
	cmd := d["commands"].([]any)[0].(map[string]any) // queued: its device is offline
	for _, field := range []string{"published_at", "acked_at", "detail"} {
		if v, ok := cmd[field]; !ok || v != nil {
			t.Errorf("a queued command's %s: %v (present %v), want null", field, v, ok)
		}
	}
}

// TestDispatchCommandsPaged: a dispatch's commands page by page, and only
// those in some states: what an integrator follows up after a fan-out.
func TestDispatchCommandsPaged(t *testing.T) {
	s := startServer(t, Config{})
	tokens := map[string]string{}
	for _, id := range []string{"a", "b", "c"} {
		tokens[id] = s.createDevice(id)
	}
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "all"}, nil)
	_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	id := ans["dispatch_id"].(string)
	p := connectPlayer(t, s.mqttURL(), "devicehooks", "b", tokens["b"])
	p.ack("devicehooks", p.next(10 * time.Second)["id"].(string), "succeeded")
	waitDispatch(t, s, id, map[string]float64{"queued": 2, "succeeded": 1})

	path := "/api/v1/dispatches/" + id + "/commands"
	devices := func(got map[string]any) string {
		var ids []string
		for _, c := range got["items"].([]any) {
			ids = append(ids, c.(map[string]any)["device_id"].(string))
		}
		return strings.Join(ids, ",")
	}
	for _, c := range []struct {
		query, want string
		total       float64
	}{
		{"", "a,b,c", 3},
		{"?limit=2", "a,b", 3},
		{"?limit=2&offset=2", "c", 3},
		{"?state=queued", "a,c", 2},
		{"?state=queued&limit=1&offset=1", "c", 2},
		{"?state=queued,", "a,c", 2},
		{"?state=succeeded,%20failed", "b", 1},
		{"?state=expired", "", 0},
	} {
		got := s.mustCall(http.StatusOK, "GET", path+c.query, nil)
		if devices(got) != c.want || got["total"] != c.total {
			t.Errorf("%s: %v, want devices %s of %v", c.query, got, c.want, c.total)
		}
	}
	status, body := s.call("GET", path+"?state=done", nil)
	wantError(t, "an unknown state", status, body, http.StatusBadRequest, "bad_request")
	if d := body["error"].(map[string]any)["detail"].(string); !strings.Contains(d, `"done"`) || !strings.Contains(d, "succeeded") {
		t.Errorf("an unknown state: %s", d)
	}
	status, body = s.call("GET", "/api/v1/dispatches/nope/commands", nil)
	wantError(t, "an unknown dispatch", status, body, http.StatusNotFound, "not_found")
}

// The dispatch list narrows to an action, a key, a time window and the
// dispatches that need attention, each filter named as the field it
// matches; a filter it cannot read is 400, not ignored.
func TestDispatchListFilters(t *testing.T) {
	s := startServer(t, Config{})
	token := s.createDevice("a")
	p := connectPlayer(t, s.mqttURL(), "devicehooks", "a", token)
	s.waitOnline("a")
	key1, secret1 := s.createKey("k1")
	_, secret2 := s.createKey("k2")
	action := func(name string) (id, event string) {
		out := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
			"name": name, "function": "refresh_content", "target": map[string]any{"type": "device", "id": "a"}})
		return out["id"].(string), out["event_id"].(string)
	}
	actionA, evA := action("A")
	actionB, evB := action("B")
	trigger := func(secret, event, ack string) string {
		_, ans := s.post(secret, `{"event_id":"`+event+`"}`)
		id := ans["dispatch_id"].(string)
		p.ack("devicehooks", p.next(10 * time.Second)["id"].(string), ack)
		waitDispatch(t, s, id, map[string]float64{ack: 1})
		return id
	}
	failedA := trigger(secret1, evA, "failed")
	time.Sleep(10 * time.Millisecond)
	between := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	okA := trigger(secret2, evA, "succeeded")
	okB := trigger(secret1, evB, "succeeded")

	ids := func(got map[string]any) string {
		var ids []string
		for _, d := range got["items"].([]any) {
			ids = append(ids, d.(map[string]any)["id"].(string))
		}
		return strings.Join(ids, ",")
	}
	at := url.QueryEscape(between.Format(time.RFC3339Nano))
	// The same instant typed by hand: at +01:00 with its + unescaped (a
	// space once decoded), and in lower case.
	typed := strings.ToLower(between.In(time.FixedZone("", 3600)).Format(time.RFC3339Nano))
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{okB, okA, failedA}},
		{"?action_id=" + actionA, []string{okA, failedA}},
		{"?action_id=%20" + actionB + "%20", []string{okB}},
		{"?api_key_id=" + key1, []string{okB, failedA}},
		{"?failed=true", []string{failedA}},
		{"?failed=1&action_id=" + actionB, nil},
		{"?failed=false", []string{okB, okA, failedA}},
		{"?since=" + at, []string{okB, okA}},
		{"?until=" + at, []string{failedA}},
		{"?since=" + typed, []string{okB, okA}},
		{"?action_id=" + actionA + "&since=" + at + "&limit=1", []string{okA}},
	} {
		got := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches"+c.query, nil)
		if ids(got) != strings.Join(c.want[:min(len(c.want), int(got["limit"].(float64)))], ",") || got["total"] != float64(len(c.want)) {
			t.Errorf("%s: %s of %v, want %v", c.query, ids(got), got["total"], c.want)
		}
	}
	for _, query := range []string{"?failed=maybe", "?since=yesterday", "?until=2026-11-24", "?since=9999-12-31T23:59:59-12:00"} {
		status, body := s.call("GET", "/api/v1/dispatches"+query, nil)
		wantError(t, query, status, body, http.StatusBadRequest, "bad_request")
	}
}

// TestWrongMethod: a method an endpoint does not take is a 405 with the
// methods it does take, in the usual error shape.
func TestWrongMethod(t *testing.T) {
	s := startServer(t, Config{})
	req, _ := http.NewRequest("DELETE", s.base+"/public-api/integration/webhooks", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
		t.Errorf("Allow: %q", allow)
	}
	status, ans := s.do(req)
	wantError(t, "DELETE on the webhook", status, ans, http.StatusMethodNotAllowed, "method_not_allowed")
	// Recorded as every webhook call is.
	testenv.WaitFor(t, 5*time.Second, "both calls in the request log", func() bool {
		return s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=method_not_allowed&method=DELETE", nil)["total"] == float64(2)
	})
	// The filters are read in any case, as the UI's are.
	if n := s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=Method_Not_Allowed&method=delete", nil)["total"]; n != float64(2) {
		t.Fatalf("filters in another case found %v", n)
	}
	// Elsewhere, a wrong method is still a 405 with the usual body.
	req, _ = http.NewRequest("DELETE", s.base+"/healthz", nil)
	status, ans = s.do(req)
	wantError(t, "DELETE on /healthz", status, ans, http.StatusMethodNotAllowed, "method_not_allowed")
	// A health checker asking with HEAD hears the same as with GET.
	req, _ = http.NewRequest("HEAD", s.base+"/healthz", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD /healthz: %v %v", resp, err)
	}
	// So do the management API's reads and /metrics: the GET's status and
	// headers, without the body; and without the token, 401.
	for _, path := range []string{"/api/v1/devices", "/api/v1/requests/sources", "/metrics"} {
		for _, token := range []string{testAdminToken, ""} {
			req, _ = http.NewRequest("HEAD", s.base+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := map[string]int{testAdminToken: http.StatusOK, "": http.StatusUnauthorized}[token]
			if resp.StatusCode != want || len(body) != 0 || resp.Header.Get("Content-Type") == "" {
				t.Errorf("HEAD %s (token %t): %d, %q, %d bytes", path, token != "", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
			}
		}
	}
	// The management API's and the webhook's answers stay out of caches, and
	// are not sniffed: their 404s, 405s and redirects of a trailing slash too.
	for _, r := range []struct {
		method, path string
		status       int
	}{
		{"PATCH", "/api/v1/devices/x", 405}, {"GET", "/api/v1/nonexistent", 404},
		{"OPTIONS", "/public-api/integration/webhooks", 405}, {"PUT", "/public-api/integration/webhooks", 405},
		{"GET", "/public-api/integration/webhooks/nonexistent", 404},
		{"GET", "/public-api/integration/webhooks/?x=1", 301}, {"POST", "/public-api/integration/webhooks/", 307},
		{"GET", "/metrics", 200}, {"POST", "/api/v1/api-keys/nope/reveal", 404},
	} {
		req, _ = http.NewRequest(r.method, s.base+r.path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.status || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: %d, Cache-Control %q, X-Content-Type-Options %q", r.method, r.path, resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("X-Content-Type-Options"))
		}
	}
}

// TestDeletingADeviceEndsAWait: a call waiting for a device's ack is answered
// once the device is deleted: its command is final then.
func TestDeletingADeviceEndsAWait(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("gone")
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "all"}, nil)
	waited := s.postWaiting(key, ev, 20)
	testenv.WaitFor(t, 10*time.Second, "the waiting call's dispatch", func() bool {
		return s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches", nil)["total"] == float64(1)
	})
	start := time.Now()
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/devices/gone", nil)
	select {
	case a := <-waited:
		cmds, _ := a.body["commands"].([]any)
		if a.status != http.StatusOK || a.body["settled"] != true || len(cmds) != 1 || cmds[0].(map[string]any)["detail"] != "device deleted" {
			t.Fatalf("the wait: %d %v", a.status, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the call still waits %v after its device was deleted", time.Since(start))
	}
}
