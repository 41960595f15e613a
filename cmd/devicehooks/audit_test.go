package main

import (
	"strings"
	"testing"
)

// Every change made through the management API is logged with who made it, as the
// UI's are; reads and refused changes are not.
func TestManagementAPIChangesAreLoggedWithWhoMadeThem(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("audit-1")
	out := s.mustCall(201, "POST", "/api/v1/actions", map[string]any{
		"name": "audit", "function": "restart", "target": map[string]any{"type": "device", "id": "audit-1"},
	})
	id := out["id"].(string)
	s.mustCall(200, "GET", "/api/v1/actions/"+id, nil)
	s.mustCall(422, "POST", "/api/v1/actions", map[string]any{"name": "bad", "function": "no_such_function"})
	s.mustCall(204, "DELETE", "/api/v1/actions/"+id, nil)

	var lines []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, `msg="api: change"`) {
			lines = append(lines, l)
		}
	}
	want := []string{
		`method=POST route=/api/v1/devices id=audit-1 status=201 by=bootstrap`,
		`method=POST route=/api/v1/actions id=` + id + ` status=201 by=bootstrap`,
		`method=DELETE route=/api/v1/actions/:id id=` + id + ` status=204 by=bootstrap`,
	}
	if len(lines) != len(want) {
		t.Fatalf("logged changes:\n%s\nwant %d", strings.Join(lines, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("change %d logged as\n%s\nwant it to contain %s", i, lines[i], w)
		}
	}
}
