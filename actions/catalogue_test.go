package actions_test

import (
	"testing"

	"devicehooks/actions"
)

// An emergency turned off carries no message or URL into the desired state,
// whatever the action's params hold: players.md says they are left out.
func TestDesiredChangeOfAnEmergencyTurnedOff(t *testing.T) {
	on := actions.DesiredChange(actions.SetEmergency, map[string]any{"enabled": true, "message": "Evacuate", "url": "https://example.com/e"})
	if e := on.Emergency; !e.Enabled || e.Message != "Evacuate" || e.URL != "https://example.com/e" {
		t.Fatalf("on: %+v", e)
	}
	off := actions.DesiredChange(actions.SetEmergency, map[string]any{"enabled": false, "message": "bye", "url": "https://example.com/x"})
	if e := off.Emergency; e.Enabled || e.Message != "" || e.URL != "" {
		t.Fatalf("off: %+v, want no message or URL", e)
	}
}
