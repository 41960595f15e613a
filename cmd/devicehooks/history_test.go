package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// A device's commands, as an admin follows one screen: every trigger that
// reached it, newest first, with what became of it, paged by ?before=.
func TestDeviceHistoryAPI(t *testing.T) {
	s := startServer(t, Config{})
	prefix := s.cfg.MQTTTopicPrefix
	lobby := connectPlayer(t, s.mqttURL(), prefix, "lobby-1", s.createDevice("lobby-1"))
	s.createDevice("lobby-2") // offline: its commands wait
	s.waitOnline("lobby-1")
	_, key := s.createKey("history")
	event := s.createAction("restart", map[string]any{"type": "all"}, nil)

	var dispatches []string
	for i, status := range []string{"succeeded", "failed", "succeeded"} {
		code, ans := s.post(key, `{"event_id":"`+event+`"}`)
		if code != http.StatusOK {
			t.Fatalf("trigger %d: %d %v", i, code, ans)
		}
		dispatches = append(dispatches, ans["dispatch_id"].(string))
		cmd := lobby.next(5 * time.Second)
		lobby.ack(prefix, cmd["id"].(string), status)
	}
	// The published mark and the ack are written in the writer's next rounds:
	// until then a command the player has may still read queued.
	testenv.WaitFor(t, 10*time.Second, "the acks recorded", func() bool {
		ans := s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-1/commands?state=queued,published", nil)
		return len(ans["items"].([]any)) == 0
	})

	ans := s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-1/commands", nil)
	items := ans["items"].([]any)
	if len(items) != 3 || ans["next"] != nil || ans["searched"] != float64(3) {
		t.Fatalf("history: %v", ans)
	}
	for i, want := range []string{"succeeded", "failed", "succeeded"} { // newest first
		item := items[2-i].(map[string]any)
		if item["dispatch_id"] != dispatches[i] || item["state"] != want || item["function"] != "restart" ||
			item["action_name"] != "test restart" || item["event_id"] != event || item["device_id"] != "lobby-1" || item["acked_at"] == nil {
			t.Errorf("command of trigger %d: %v", i, item)
		}
	}
	ans = s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-1/commands?state=failed,rejected,expired", nil)
	if items := ans["items"].([]any); len(items) != 1 || items[0].(map[string]any)["dispatch_id"] != dispatches[1] {
		t.Fatalf("failures: %v", ans)
	}
	// States given twice are both kept, as when separated by a comma.
	ans = s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-1/commands?state=failed&state=succeeded", nil)
	if items := ans["items"].([]any); len(items) != 3 {
		t.Fatalf("failed and succeeded: %v", ans)
	}
	// The offline screen has all three, waiting.
	ans = s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-2/commands?state=queued", nil)
	if items := ans["items"].([]any); len(items) != 3 {
		t.Fatalf("lobby-2's queued commands: %v", ans)
	}

	// Two at a time: next is the ?before= of the page after.
	ans = s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby-1/commands?limit=2", nil)
	if items := ans["items"].([]any); len(items) != 2 || ans["next"] != dispatches[1] || ans["limit"] != float64(2) {
		t.Fatalf("first page: %v", ans)
	}
	ans = s.mustCall(http.StatusOK, "GET", fmt.Sprintf("/api/v1/devices/lobby-1/commands?limit=2&before=%s", ans["next"]), nil)
	if items := ans["items"].([]any); len(items) != 1 || items[0].(map[string]any)["dispatch_id"] != dispatches[0] || ans["next"] != nil {
		t.Fatalf("second page: %v", ans)
	}

	for _, c := range []struct {
		path       string
		status     int
		code, text string
	}{
		{"/api/v1/devices/nobody/commands", http.StatusNotFound, "not_found", ""},
		{"/api/v1/devices/lobby-1/commands?offset=2", http.StatusBadRequest, "bad_request", "?before="},
		{"/api/v1/devices/lobby-1/commands?offset=", http.StatusBadRequest, "bad_request", "?before="},
		{"/api/v1/devices/lobby-1/commands?state=done", http.StatusBadRequest, "bad_request", "not a command state"},
		{"/api/v1/devices/lobby-1/commands?limit=-1", http.StatusBadRequest, "bad_request", "limit"},
		// A damaged cursor does not start again from the newest unsaid.
		{"/api/v1/devices/lobby-1/commands?before=garbage", http.StatusBadRequest, "bad_request", "dispatch id"},
	} {
		status, ans := s.call("GET", c.path, nil)
		wantError(t, c.path, status, ans, c.status, c.code)
		if detail, _ := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(detail, c.text) {
			t.Errorf("%s: detail %q, want it to say %q", c.path, detail, c.text)
		}
	}
	// Nor does one written otherwise than the ids are (compared as text).
	for _, other := range []string{strings.ToUpper(dispatches[1]), "urn:uuid:" + dispatches[1], strings.ReplaceAll(dispatches[1], "-", "")} {
		status, ans := s.call("GET", "/api/v1/devices/lobby-1/commands?before="+other, nil)
		wantError(t, "before="+other, status, ans, http.StatusBadRequest, "bad_request")
	}
	req, _ := http.NewRequest("GET", s.base+"/api/v1/devices/lobby-1/commands", nil)
	if status, _ := s.do(req); status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", status)
	}
}
