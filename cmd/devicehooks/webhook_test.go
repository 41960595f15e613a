package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// setupLoadURL creates a device with a connected player, an API key and a load_url
// action for the device.
func setupLoadURL(t *testing.T, s *server) (p *player, key, eventID string) {
	t.Helper()
	token := s.createDevice("lobby-1")
	_, key = s.createKey("integration")
	eventID = s.createAction("load_url", map[string]any{"type": "device", "id": "lobby-1"}, map[string]any{"url": "https://example.com/welcome"})
	p = connectPlayer(t, s.mqttURL(), "devicehooks", "lobby-1", token)
	s.waitOnline("lobby-1")
	return p, key, eventID
}

// checkLoadURL asserts cmd is exactly the contract's command for the webhook answer.
func checkLoadURL(t *testing.T, cmd, answer map[string]any) {
	t.Helper()
	if cmd["function"] != "load_url" || cmd["dispatch_id"] != answer["dispatch_id"] {
		t.Fatalf("command %v does not match answer %v", cmd, answer)
	}
	params, _ := cmd["params"].(map[string]any)
	if params["url"] != "https://example.com/welcome" || len(params) != 1 {
		t.Fatalf("params = %v", params)
	}
	id, _ := cmd["id"].(string)
	if len(id) < 32 {
		t.Fatalf("command id %q", id)
	}
	issued, err1 := time.Parse(time.RFC3339, cmd["issued_at"].(string))
	expires, err2 := time.Parse(time.RFC3339, cmd["expires_at"].(string))
	if err1 != nil || err2 != nil || !expires.After(issued) || issued.Location() != time.UTC {
		t.Fatalf("issued_at %v, expires_at %v", cmd["issued_at"], cmd["expires_at"])
	}
	for k := range cmd {
		switch k {
		case "id", "dispatch_id", "function", "params", "issued_at", "expires_at":
		default:
			t.Fatalf("unexpected command field %q", k)
		}
	}
}

func testTriggerPaths(t *testing.T, s *server) {
	p, key, eventID := setupLoadURL(t, s)

	status, ans := s.post(key, `{"event_id":"`+eventID+`"}`)
	if status != http.StatusOK || ans["message"] != "success" || ans["event_id"] != eventID ||
		ans["function"] != "load_url" || ans["targets"] != float64(1) || ans["dispatch_id"] == "" {
		t.Fatalf("POST: %d %v", status, ans)
	}
	checkLoadURL(t, p.next(5*time.Second), ans)

	// curl -d sends JSON with a form content type by default: still a JSON call.
	status, ans = s.post(key, `{"event_id":"`+eventID+`"}`, "Content-Type", "application/x-www-form-urlencoded")
	if status != http.StatusOK {
		t.Fatalf("POST with curl's default content type: %d %v", status, ans)
	}
	checkLoadURL(t, p.next(5*time.Second), ans)
	// ... even if a value in it reads like a link's parameter.
	status, ans = s.post(key, `{"event_id":"`+eventID+`","idempotency_key":"curl&sig=1&payload=2"}`, "Content-Type", "application/x-www-form-urlencoded")
	if status != http.StatusOK {
		t.Fatalf("POST with curl's default content type and \"&sig=\" in a value: %d %v", status, ans)
	}
	checkLoadURL(t, p.next(5*time.Second), ans)

	payload := []byte(`{"event_id":"` + eventID + `"}`)
	for name, enc := range map[string]*base64.Encoding{
		"std padded": base64.StdEncoding, "std raw": base64.RawStdEncoding,
		"url padded": base64.URLEncoding, "url raw": base64.RawURLEncoding,
	} {
		q := url.Values{"api_key": {key}, "payload": {enc.EncodeToString(payload)}}
		status, ans := s.get(q.Encode())
		if status != http.StatusOK || ans["message"] != "success" {
			t.Fatalf("GET %s: %d %v", name, status, ans)
		}
		checkLoadURL(t, p.next(5*time.Second), ans)
	}
	// The key may also come in the header on GET.
	status, ans = s.get("payload="+url.QueryEscape(base64.StdEncoding.EncodeToString(payload)), "x-webhook-apikey", key)
	if status != http.StatusOK {
		t.Fatalf("GET with header key: %d %v", status, ans)
	}
	checkLoadURL(t, p.next(5*time.Second), ans)
	p.none(200 * time.Millisecond)

	// The dispatch is on record with its command.
	d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ans["dispatch_id"].(string), nil)
	if d["method"] != "GET" || d["source"] != "127.0.0.1" || d["api_key_prefix"] == "" || len(d["commands"].([]any)) != 1 {
		t.Fatalf("dispatch record: %v", d)
	}
}

func TestTriggerEndToEndEmbedded(t *testing.T) {
	testTriggerPaths(t, startServer(t, Config{}))
}

func TestTriggerEndToEndMosquitto(t *testing.T) {
	s, _, _ := startMosquittoWithRecipe(t, Config{})
	testTriggerPaths(t, s)
}

func TestGroupAndAllFanOut(t *testing.T) {
	s := startServer(t, Config{})
	var players []*player
	var ids []string
	for _, id := range []string{"g-1", "g-2", "g-3"} {
		token := s.createDevice(id)
		players = append(players, connectPlayer(t, s.mqttURL(), "devicehooks", id, token))
		ids = append(ids, id)
	}
	s.createDevice("elsewhere") // in no group, offline
	s.waitOnline(ids...)
	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "lobby", "device_ids": ids})
	_, key := s.createKey("k")

	for _, target := range []map[string]any{
		{"type": "group", "id": group["id"]},
		{"type": "all"},
	} {
		ev := s.createAction("refresh_content", target, nil)
		status, ans := s.post(key, `{"event_id":"`+ev+`"}`)
		want := float64(3)
		if target["type"] == "all" {
			want = 4
		}
		if status != http.StatusOK || ans["targets"] != want {
			t.Fatalf("%v: %d %v", target, status, ans)
		}
		seen := map[string]bool{}
		for _, p := range players {
			cmd := p.next(5 * time.Second)
			if cmd["dispatch_id"] != ans["dispatch_id"] || cmd["function"] != "refresh_content" {
				t.Fatalf("%s got %v", p.id, cmd)
			}
			if seen[cmd["id"].(string)] {
				t.Fatalf("command id %v repeated across devices", cmd["id"])
			}
			seen[cmd["id"].(string)] = true
			p.none(50 * time.Millisecond)
		}
		d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ans["dispatch_id"].(string), nil)
		if len(d["commands"].([]any)) != int(want) {
			t.Fatalf("dispatch has %d commands, want %v", len(d["commands"].([]any)), want)
		}
	}
}

// TestLargeFanOutKeepsEachDevicesOrder: delivery spreads a large fan-out over
// several goroutines; every device must still get its commands once each, in the
// order they were triggered.
func TestLargeFanOutKeepsEachDevicesOrder(t *testing.T) {
	s := startServer(t, Config{})
	const devices, triggers = 300, 3 // more devices than one sender takes alone
	players := make([]*player, devices)
	for i := range players {
		id := fmt.Sprintf("fan-%03d", i)
		players[i] = connectPlayer(t, s.mqttURL(), "devicehooks", id, s.createDevice(id))
	}
	for _, p := range players {
		s.waitOnline(p.id)
	}
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "all"}, nil)
	var dispatches []any
	for range triggers {
		status, ans := s.post(key, `{"event_id":"`+ev+`"}`)
		if status != http.StatusOK || ans["targets"] != float64(devices) {
			t.Fatalf("trigger: %d %v", status, ans)
		}
		dispatches = append(dispatches, ans["dispatch_id"])
	}
	for _, p := range players {
		for _, want := range dispatches {
			if cmd := p.next(10 * time.Second); cmd["dispatch_id"] != want {
				t.Fatalf("%s got dispatch %v, want %v (the order they were triggered in)", p.id, cmd["dispatch_id"], want)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, p := range players {
		select {
		case cmd := <-p.cmds:
			t.Fatalf("%s got a command again: %v", p.id, cmd)
		default:
		}
	}
	// Nobody acks: the published marks, held while a fan-out goes out, are
	// written once it has.
	for _, id := range dispatches {
		testenv.WaitFor(t, 5*time.Second, "every command marked published", func() bool {
			d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+id.(string), nil)
			counts, _ := d["counts"].(map[string]any)
			return counts["published"] == float64(devices)
		})
	}
}

func TestTriggerEndToEndPostgres(t *testing.T) {
	testTriggerPaths(t, startServer(t, Config{DB: testenv.Postgres(t)}))
}

// Dispatches older than --dispatch-days go, with their commands, at the
// sweeper's hourly purge (the first one soon after start); --dispatch-days 0
// keeps them all.
func TestOldDispatchesArePurged(t *testing.T) {
	s := startServer(t, Config{}, func(c *Config) { c.DispatchDays = 0 })
	s.createDevice("p1")
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "device", "id": "p1"}, nil)
	var ids []string
	for range 2 {
		_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
		ids = append(ids, ans["dispatch_id"].(string))
	}
	// The first is made 40 days old, and settled.
	old := time.Now().UTC().Add(-40 * 24 * time.Hour).Format("2006-01-02 15:04:05")
	exec := testenv.SQLiteSide(t, s.cfg.DB)
	exec(`UPDATE dispatches SET created_at = '` + old + `' WHERE id = '` + ids[0] + `'`)
	exec(`UPDATE commands SET state = 'expired', created_at = '` + old + `', expires_at = '` + old + `' WHERE dispatch_id = '` + ids[0] + `'`)
	// The purge runs at the first sweep after start: three go by (one a
	// second), and with 0 days the old dispatch stays.
	s.restart()
	time.Sleep(3 * time.Second)
	s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ids[0], nil)

	s.cfg.DispatchDays = 30
	s.restart()
	testenv.WaitFor(t, 10*time.Second, "the old dispatch purged", func() bool {
		status, _ := s.call("GET", "/api/v1/dispatches/"+ids[0], nil)
		return status == http.StatusNotFound
	})
	s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ids[1], nil)
}

// The caller of a webhook follows its dispatch up with the API key that made
// it; another key, or none, learns nothing of it.
func TestCallerFollowsUpItsDispatch(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	_, other := s.createKey("other")
	status, ans := s.post(key, `{"event_id":"`+eventID+`"}`)
	if status != http.StatusOK {
		t.Fatalf("trigger: %d %v", status, ans)
	}
	id := ans["dispatch_id"].(string)
	cmd := p.next(5 * time.Second)
	p.ack("devicehooks", cmd["id"].(string), "succeeded")

	follow := func(id, key string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", s.base+"/public-api/integration/webhooks/dispatches/"+id, nil)
		if key != "" {
			req.Header.Set("x-webhook-apikey", key)
		}
		return s.do(req)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, got := follow(id, key)
		if status != http.StatusOK {
			t.Fatalf("following up: %d %v", status, got)
		}
		cmds, _ := got["commands"].([]any)
		if got["id"] == id && got["status"] == "succeeded" && len(cmds) == 1 && cmds[0].(map[string]any)["state"] == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dispatch did not show the ack: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		name, id, key string
		status        int
		code          string
	}{
		{"another key", id, other, http.StatusNotFound, "not_found"},
		{"no key", id, "", http.StatusUnauthorized, "unauthorized"},
		{"an unknown key", id, "dhk_unknown", http.StatusUnauthorized, "unauthorized"},
		{"an unknown dispatch", "01a2aaaa-0000-7000-8000-000000000000", key, http.StatusNotFound, "not_found"},
	} {
		status, got := follow(c.id, c.key)
		wantError(t, c.name, status, got, c.status, c.code)
	}
	// A HEAD (curl -I) is answered as the GET is.
	head, _ := http.NewRequest("HEAD", s.base+"/public-api/integration/webhooks/dispatches/"+id, nil)
	head.Header.Set("x-webhook-apikey", key)
	if resp, err := http.DefaultClient.Do(head); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("HEAD of the follow-up: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// A follow-up counts against the key's rate, as a call does.
	var keyID string
	for _, k := range s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil)["items"].([]any) {
		if k := k.(map[string]any); k["name"] == "integration" {
			keyID = k["id"].(string)
		}
	}
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+keyID, map[string]any{"rate": map[string]any{"per_second": 0.01, "burst": 1}})
	if status, got := follow(id, key); status != http.StatusOK {
		t.Fatalf("a follow-up within the rate: %d %v", status, got)
	}
	status, got := follow(id, key)
	wantError(t, "a follow-up over the key's rate", status, got, http.StatusTooManyRequests, "rate_limited")
	// A key's source ranges hold here too.
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+keyID, map[string]any{"rate": nil, "cidrs": []string{"10.0.0.0/8"}})
	status, got = follow(id, key)
	wantError(t, "a key used outside its ranges", status, got, http.StatusForbidden, "forbidden")

	// The request log has the follow-ups as the key's calls, so that they
	// add up to what its rate counted: answered ones as follow_up, with
	// their dispatch, and the refused one as rate_limited.
	testenv.WaitFor(t, 5*time.Second, "the follow-ups in the request log", func() bool {
		return s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=rate_limited&key_id="+keyID, nil)["total"] == float64(1)
	})
	logged := s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=follow_up&key_id="+keyID, nil)
	items, _ := logged["items"].([]any)
	if len(items) < 2 {
		t.Fatalf("follow-ups logged: %v", logged)
	}
	if r := items[0].(map[string]any); r["method"] != "GET" || r["dispatch_id"] != id || r["status"] != float64(http.StatusOK) || r["event_id"] != nil {
		t.Fatalf("a follow-up's record: %v", r)
	}
	if n := s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=success&key_id="+keyID, nil)["total"]; n != float64(1) {
		t.Fatalf("%v calls logged as success, want the one trigger", n)
	}
}
