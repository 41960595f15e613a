package actions_test

import (
	"encoding/json"
	"testing"

	"devicehooks/actions"
)

// An emergency turned off carries no message or URL into the desired state,
// whatever the action's params hold: players.md says they are left out.
func TestDesiredChangeOfAnEmergencyTurnedOff(t *testing.T) {
	on, err := actions.DesiredChange(actions.SetEmergency, json.RawMessage(`{"enabled":true,"message":"Evacuate","url":"https://example.com/e"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e := on.Emergency; !e.Enabled || e.Message != "Evacuate" || e.URL != "https://example.com/e" {
		t.Fatalf("on: %+v", e)
	}
	off, err := actions.DesiredChange(actions.SetEmergency, json.RawMessage(`{"enabled":false,"message":"bye","url":"https://example.com/x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e := off.Emergency; e.Enabled || e.Message != "" || e.URL != "" {
		t.Fatalf("off: %+v, want no message or URL", e)
	}
}
