package main

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	_ "github.com/mattn/go-sqlite3"

	"devicehooks/internal/testenv"
)

// wantError asserts the contract's error shape.
func wantError(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	e, _ := body["error"].(map[string]any)
	if status != wantStatus || body["message"] != "Error" || e["code"] != wantCode || e["detail"] == "" {
		t.Fatalf("%s: got %d %v, want %d with code %q", what, status, body, wantStatus, wantCode)
	}
}

func TestWebhookErrorTable(t *testing.T) {
	s := startServer(t, Config{MaxTargets: 2})
	p, key, eventID := setupLoadURL(t, s)
	sensorEv := s.createAction("sensor_event", map[string]any{"type": "device", "id": "lobby-1"}, nil)
	for _, id := range []string{"a", "b", "c"} {
		s.createDevice(id)
	}
	bigEv := s.createAction("restart", map[string]any{"type": "all"}, nil)
	disabled := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "off", "function": "refresh_content", "target": map[string]any{"type": "all"}, "enabled": false,
	})["event_id"].(string)
	revokedID, revoked := s.createKey("to revoke")
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/api-keys/"+revokedID, nil)
	ok := `{"event_id":"` + eventID + `"}`
	b64 := func(s string) string { return url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(s))) }

	cases := []struct {
		name   string
		call   func() (int, map[string]any)
		status int
		code   string
	}{
		{"no key", func() (int, map[string]any) { return s.post("", ok) }, 401, "unauthorized"},
		{"unknown key", func() (int, map[string]any) { return s.post("dhk_notarealkey", ok) }, 401, "unauthorized"},
		{"revoked key", func() (int, map[string]any) { return s.post(revoked, ok) }, 401, "unauthorized"},
		{"GET without key", func() (int, map[string]any) { return s.get("payload=" + b64(ok)) }, 401, "unauthorized"},
		{"missing event_id", func() (int, map[string]any) { return s.post(key, `{}`) }, 400, "bad_request"},
		{"empty body", func() (int, map[string]any) { return s.post(key, ``) }, 400, "bad_request"},
		{"not JSON", func() (int, map[string]any) { return s.post(key, `event_id=x`) }, 400, "bad_request"},
		{"JSON array", func() (int, map[string]any) { return s.post(key, `["x"]`) }, 400, "bad_request"},
		{"event_id not a string", func() (int, map[string]any) { return s.post(key, `{"event_id":42}`) }, 400, "bad_request"},
		{"event_id with a tab", func() (int, map[string]any) { return s.post(key, `{"event_id":"evt_a\tb"}`) }, 400, "bad_request"},
		{"event_id with a line break", func() (int, map[string]any) { return s.post(key, `{"event_id":"evt_a\nb"}`) }, 400, "bad_request"},
		{"idempotency key with a tab", func() (int, map[string]any) { return s.post(key, ok, "Idempotency-Key", "a\tb") }, 400, "bad_request"},
		{"sensor_data not an object", func() (int, map[string]any) {
			return s.post(key, `{"event_id":"`+sensorEv+`","sensor_data":"hot"}`)
		}, 400, "bad_request"},
		{"payload not base64", func() (int, map[string]any) { return s.get("api_key=" + key + "&payload=%25%25%25") }, 400, "bad_request"},
		{"payload not JSON", func() (int, map[string]any) { return s.get("api_key=" + key + "&payload=" + b64("hello")) }, 400, "bad_request"},
		{"payload missing", func() (int, map[string]any) { return s.get("api_key=" + key) }, 400, "bad_request"},
		{"unknown event", func() (int, map[string]any) { return s.post(key, `{"event_id":"evt_nope"}`) }, 404, "unknown_event"},
		{"disabled action", func() (int, map[string]any) { return s.post(key, `{"event_id":"`+disabled+`"}`) }, 404, "unknown_event"},
		{"sensor data missing", func() (int, map[string]any) { return s.post(key, `{"event_id":"`+sensorEv+`"}`) }, 422, "invalid_params"},
		{"sensor event missing", func() (int, map[string]any) {
			return s.post(key, `{"event_id":"`+sensorEv+`","sensor_data":{"id":"t1","value":"3"}}`)
		}, 422, "invalid_params"},
		{"body over the limit", func() (int, map[string]any) {
			return s.post(key, `{"event_id":"`+eventID+`","pad":"`+strings.Repeat("x", 70<<10)+`"}`)
		}, 413, "too_large"},
		{"chunked body over the limit", func() (int, map[string]any) {
			req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks",
				struct{ *strings.Reader }{strings.NewReader(`{"event_id":"` + eventID + `","pad":"` + strings.Repeat("x", 70<<10) + `"}`)})
			req.Header.Set("x-webhook-apikey", key)
			return s.do(req)
		}, 413, "too_large"},
		{"a link over the header limit", func() (int, map[string]any) {
			return s.get("api_key=" + key + "&payload=" + strings.Repeat("A", 17<<10))
		}, 413, "too_large"},
		{"over the target cap", func() (int, map[string]any) { return s.post(key, `{"event_id":"`+bigEv+`"}`) }, 503, "unavailable"},
	}
	for _, c := range cases {
		status, body := c.call()
		wantError(t, c.name, status, body, c.status, c.code)
	}
	p.none(200 * time.Millisecond) // nothing failed was sent
	// The oversized calls (with a usable key, in the header or the link) are
	// filed under their key.
	testenv.WaitFor(t, 5*time.Second, "the oversized calls in the request log, under their key", func() bool {
		n := 0
		for _, r := range s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=too_large", nil)["items"].([]any) {
			if prefix, _ := r.(map[string]any)["key_prefix"].(string); prefix != "" && strings.HasPrefix(key, prefix) {
				n++
			}
		}
		return n == 3
	})
	// Trying again soon does not help a trigger over --max-targets.
	if status, _, h := postHeader(t, s, key, `{"event_id":"`+bigEv+`"}`); status != 503 || h.Get("Retry-After") != "" {
		t.Errorf("over the target cap: %d, Retry-After %q, want none", status, h.Get("Retry-After"))
	}

	// The detail says what is wrong in the caller's terms.
	for _, c := range []struct {
		name       string
		call       func() (int, map[string]any)
		status     int
		code, want string
	}{
		{"payload badly URL-encoded", func() (int, map[string]any) { return s.get("api_key=" + key + "&payload=%%%%") },
			400, "bad_request", "payload parameter is not validly URL-encoded"},
		{"JSON array", func() (int, map[string]any) { return s.post(key, `["x"]`) },
			400, "bad_request", "must be a JSON object with an event_id, not a JSON array"},
		{"a compressed body", func() (int, map[string]any) { return s.post(key, "\x1f\x8b\x08\x00", "Content-Encoding", "gzip") },
			400, "bad_request", `Content-Encoding "gzip", which is not taken`},
		{"a long event_id", func() (int, map[string]any) { return s.post(key, `{"event_id":"evt_`+strings.Repeat("e", 61)+`"}`) },
			400, "bad_request", "event_id must be at most 64 characters"},
		{"an idempotency key over 255 characters", func() (int, map[string]any) { return s.post(key, ok, "Idempotency-Key", strings.Repeat("é", 256)) },
			400, "bad_request", "the idempotency key must be at most 255 characters"},
		{"no key", func() (int, map[string]any) { return s.post("", ok) },
			401, "unauthorized", "send it in the x-webhook-apikey header"},
		{"a POST's key in the query", func() (int, map[string]any) {
			req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks?api_key="+key, strings.NewReader(ok))
			req.Header.Set("Content-Type", "application/json")
			return s.do(req)
		}, 401, "unauthorized", "counts on a GET link only"},
		{"a payload of nothing but punctuation", func() (int, map[string]any) { return s.get("api_key=" + key + "&payload=!!!!") },
			400, "bad_request", "the payload is not base64: it has no base64 character in it"},
		{"a payload that decodes to bytes, not JSON", func() (int, map[string]any) { return s.get("api_key=" + key + "&payload=k5Q") },
			400, "bad_request", "base64, but not of a JSON object: check that the link was copied whole"},
		{"a link's payload that is the JSON itself", func() (int, map[string]any) { return s.get("api_key=" + key + "&payload=" + url.QueryEscape(ok)) },
			400, "bad_request", "the payload is JSON, not base64 of it"},
		{"a link URL-encoded twice", func() (int, map[string]any) {
			padded := ok // its base64 ends in '=', which is %3D once encoded
			if len(padded)%3 == 0 {
				padded += " "
			}
			return s.get("api_key=" + key + "&payload=" + url.QueryEscape(b64(padded)))
		}, 400, "bad_request", "as a link URL-encoded twice has"},
		{"a link over the header limit", func() (int, map[string]any) {
			return s.get("api_key=" + key + "&payload=" + strings.Repeat("A", 17<<10))
		}, 413, "too_large", "a long payload goes in a POST body"},
		{"a link with two different keys", func() (int, map[string]any) {
			return s.get("api_key=" + key + "&api_key=dhk_another&payload=" + b64(ok))
		}, 400, "bad_request", "the link has two different api_key parameters: send one"},
		{"a link with two different payloads", func() (int, map[string]any) {
			return s.get("api_key=" + key + "&payload=" + b64(ok) + "&payload=" + b64(`{"event_id":"evt_other"}`))
		}, 400, "bad_request", "the link has two different payload parameters: send one"},
		{"two different idempotency keys", func() (int, map[string]any) {
			req := s.webhookPost(key, ok)
			req.Header.Add("Idempotency-Key", "a")
			req.Header.Add("Idempotency-Key", "b")
			return s.do(req)
		}, 400, "bad_request", "the call has two different Idempotency-Key headers: send one"},
		{"a POST's payload in the query, its body empty", func() (int, map[string]any) {
			req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks?payload="+b64(ok), nil)
			req.Header.Set("x-webhook-apikey", key)
			return s.do(req)
		}, 400, "bad_request", "payload in the query string counts on a GET link only"},
	} {
		status, body := c.call()
		wantError(t, c.name, status, body, c.status, c.code)
		if d := body["error"].(map[string]any)["detail"].(string); !strings.Contains(d, c.want) {
			t.Errorf("%s: detail %q, want it to say %q", c.name, d, c.want)
		}
	}
	// The same parameter twice with one value is one.
	if status, body := s.get("api_key=" + key + "&api_key=" + key + "&payload=" + b64(ok)); status != http.StatusOK {
		t.Errorf("a link with its key twice: %d %v", status, body)
	}
	p.next(5 * time.Second)
	// A badly encoded pair the link does not need is dropped, as before.
	if status, body := s.get("api_key=" + key + "&payload=" + b64(ok) + "&utm_source=%zz"); status != http.StatusOK {
		t.Errorf("a link with a badly encoded extra parameter: %d %v", status, body)
	}
	// An idempotency key counts characters, not bytes (255 × "é" is 510).
	if status, body := s.post(key, ok, "Idempotency-Key", strings.Repeat("é", 255)); status != http.StatusOK {
		t.Errorf("an idempotency key of 255 two-byte characters: %d %v", status, body)
	}
	p.next(5 * time.Second)
	// A browser is shown which input is wrong, as the JSON's field says.
	req, _ := http.NewRequest("GET", s.base+"/public-api/integration/webhooks?api_key="+key+"&payload="+
		b64(`{"event_id":"`+sensorEv+`","sensor_data":{"id":"t1"}}`), nil)
	req.Header.Set("Accept", "text/html")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(page), `<code id="error-field">sensor_data.event</code> is required`) {
			t.Errorf("a browser's page for invalid sensor data: %d %s", resp.StatusCode, page)
		}
	}
	// A byte-order mark before the JSON (some Windows tools write one) is read past.
	if status, body := s.post(key, "\ufeff"+ok); status != http.StatusOK {
		t.Errorf("a body with a byte-order mark: %d %v", status, body)
	}
	// UTF-16, as PowerShell 5's Out-File writes it (little-endian, with its
	// mark), or big-endian without one, is read as UTF-16.
	utf16Of := func(s string, big, mark bool) string {
		var out []byte
		if mark {
			s = "\ufeff" + s
		}
		for _, u := range utf16.Encode([]rune(s)) {
			if big {
				out = append(out, byte(u>>8), byte(u))
			} else {
				out = append(out, byte(u), byte(u>>8))
			}
		}
		return string(out)
	}
	for _, c := range []struct {
		name      string
		big, mark bool
	}{{"UTF-16LE with its mark", false, true}, {"UTF-16BE without one", true, false}} {
		if status, body := s.post(key, utf16Of(ok, c.big, c.mark)); status != http.StatusOK {
			t.Errorf("a body in %s: %d %v", c.name, status, body)
		}
	}
	// As PowerShell 5 sends a file with -InFile and no -ContentType: labelled
	// a form, with a '%' and a ';' that are no form's.
	psBody := utf16Of(`{"event_id":"`+eventID+`","note":"50%; done"}`, false, true)
	if status, body := s.post(key, psBody, "Content-Type", "application/x-www-form-urlencoded"); status != http.StatusOK {
		t.Errorf("a UTF-16 body labelled a form: %d %v", status, body)
	}

	// A wrong key and a revoked key cannot be told apart by the body...
	_, b1 := s.post("dhk_"+strings.Repeat("a", 43), ok)
	_, b2 := s.post(revoked, ok)
	if !equalJSON(b1, b2) {
		t.Fatalf("wrong and revoked keys answer differently: %v vs %v", b1, b2)
	}
	// ...nor by timing: both take the same path (one indexed lookup that finds
	// nothing); interleaved medians stay close.
	wrong, rev := make([]time.Duration, 0, 150), make([]time.Duration, 0, 150)
	for i := 0; i < 150; i++ {
		for j, k := range []string{"dhk_" + strings.Repeat("b", 43), revoked} {
			start := time.Now()
			s.post(k, ok)
			if j == 0 {
				wrong = append(wrong, time.Since(start))
			} else {
				rev = append(rev, time.Since(start))
			}
		}
	}
	if r := float64(median(wrong)) / float64(median(rev)); r < 0.5 || r > 2 {
		t.Fatalf("median latency wrong key %v vs revoked key %v (ratio %.2f)", median(wrong), median(rev), r)
	}
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func equalJSON(a, b map[string]any) bool {
	ea, _ := a["error"].(map[string]any)
	eb, _ := b["error"].(map[string]any)
	return a["message"] == b["message"] && ea["code"] == eb["code"] && ea["detail"] == eb["detail"]
}

// TestFailedWriteLeavesNothing makes the database refuse the command rows: the
// caller gets 503 and no dispatch is left behind.
func TestFailedWriteLeavesNothing(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	db, err := sql.Open("sqlite3", "file:"+s.cfg.DB+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON commands BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	status, body, h := postHeader(t, s, key, `{"event_id":"`+eventID+`"}`)
	wantError(t, "refused write", status, body, 503, "unavailable")
	if h.Get("Retry-After") != "1" {
		t.Fatalf("refused write: Retry-After %q, want 1", h.Get("Retry-After"))
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM dispatches`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("dispatches after a failed write: %d (%v)", n, err)
	}
	p.none(200 * time.Millisecond)
	// The database answers, but refuses writes (a full disk refuses those
	// that need new space: health's probe writes such a row): health and
	// metrics say so.
	if _, err := db.Exec(`CREATE TRIGGER refuse_probe BEFORE INSERT ON write_probes BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	health := func() (int, string) {
		status, body := s.call("GET", "/healthz", nil)
		db, _ := body["database"].(string)
		return status, db
	}
	if status, db := health(); status != http.StatusServiceUnavailable || db != "refusing writes" {
		t.Fatalf("healthz while writes fail: %d %q", status, db)
	}
	if m := s.metricsText(); !strings.Contains(m, "devicehooks_database_write_failures_total 1\n") || !strings.Contains(m, `devicehooks_build_info{version="dev`) {
		t.Fatalf("metrics while writes fail:\n%s", m)
	}
	if status, db := health(); status != http.StatusServiceUnavailable || db != "refusing writes" {
		t.Fatalf("healthz again while writes fail: %d %q", status, db)
	}
	// Once the database takes writes again, health says so within a second
	// (it probes once a second at most), without waiting for a trigger (a
	// load balancer would send none).
	if _, err := db.Exec(`DROP TRIGGER refuse; DROP TRIGGER refuse_probe`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "healthz ok after the database recovered", func() bool {
		status, db := health()
		return status == http.StatusOK && db == "ok"
	})
	if status, body := s.post(key, `{"event_id":"`+eventID+`"}`); status != http.StatusOK {
		t.Fatalf("after the database recovered: %d %v", status, body)
	}
	p.next(5 * time.Second)
}

func TestIdempotency(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	_, otherKey := s.createKey("other")
	body := `{"event_id":"` + eventID + `"}`

	st1, a1 := s.post(key, body, "Idempotency-Key", "order-1")
	st2, a2 := s.post(key, body, "Idempotency-Key", "order-1")
	if st1 != 200 || st2 != 200 || a1["dispatch_id"] != a2["dispatch_id"] {
		t.Fatalf("repeat answered differently: %v / %v", a1, a2)
	}
	p.next(5 * time.Second)
	p.none(300 * time.Millisecond)

	// The same key in the GET payload field is the same idempotency key.
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"event_id":"` + eventID + `","idempotency_key":"order-1"}`))
	if st, a3 := s.get("api_key=" + key + "&payload=" + payload); st != 200 || a3["dispatch_id"] != a1["dispatch_id"] {
		t.Fatalf("GET repeat: %d %v", st, a3)
	}
	// Another API key with the same idempotency key is another call.
	if _, a4 := s.post(otherKey, body, "Idempotency-Key", "order-1"); a4["dispatch_id"] == a1["dispatch_id"] {
		t.Fatal("idempotency keys leak across API keys")
	}
	p.next(5 * time.Second)
	// Concurrent repeats: one dispatch, one command.
	ids := make(chan any, 8)
	for i := 0; i < 8; i++ {
		go func() { _, a := s.post(key, body, "Idempotency-Key", "order-2"); ids <- a["dispatch_id"] }()
	}
	first := <-ids
	for i := 1; i < 8; i++ {
		if id := <-ids; id != first {
			t.Fatalf("concurrent repeats got dispatches %v and %v", first, id)
		}
	}
	p.next(5 * time.Second)
	p.none(300 * time.Millisecond)
	out := s.mustCall(200, "GET", "/api/v1/dispatches", nil)
	if out["total"] != float64(3) {
		t.Fatalf("dispatches: %v, want 3", out["total"])
	}

	// The same key with another request is refused, not silently replayed.
	other := s.createAction("restart", map[string]any{"type": "device", "id": "lobby-1"}, nil)
	status, ans := s.post(key, `{"event_id":"`+other+`"}`, "Idempotency-Key", "order-1")
	wantError(t, "reused key, other event", status, ans, 422, "invalid_params")
	if ans["error"].(map[string]any)["field"] != "idempotency_key" {
		t.Fatalf("field: %v", ans)
	}
	p.none(200 * time.Millisecond)

	// Past the 24-hour window the key is free again.
	db, err := sql.Open("sqlite3", "file:"+s.cfg.DB+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE idempotencies SET created_at = ?`, time.Now().Add(-25*time.Hour).UTC()); err != nil {
		t.Fatal(err)
	}
	status, again := s.post(key, body, "Idempotency-Key", "order-1")
	if status != 200 || again["dispatch_id"] == a1["dispatch_id"] {
		t.Fatalf("after the window: %d %v (first %v)", status, again, a1["dispatch_id"])
	}
	p.next(5 * time.Second)
}

// postHeader calls the webhook by POST and returns the status, the JSON body
// and the headers.
func postHeader(t *testing.T, s *server, key, body string, headers ...string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(s.webhookPost(key, body, headers...))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans, resp.Header
}
