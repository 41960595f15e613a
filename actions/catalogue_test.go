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

// A repeat with an idempotency key is told from another request by what its
// command would carry: the forms of one sensor reading are one request.
func TestFingerprintOfSensorDataAsTheCommandCarriesIt(t *testing.T) {
	fp := func(sd map[string]any) string { return actions.Fingerprint("evt_a", sd) }
	same := fp(map[string]any{"id": "12", "event": "opened", "value": ""})
	for _, sd := range []map[string]any{
		{"id": json.Number("12"), "event": "opened"},
		{"id": float64(12), "event": "opened", "value": nil},
	} {
		if got := fp(sd); got != same {
			t.Errorf("%v: another fingerprint than the same reading's", sd)
		}
	}
	for _, sd := range []map[string]any{
		{"id": "13", "event": "opened"},
		{"id": "12", "event": "opened", "value": "1"},
		{"id": "12", "event": "opened", "value": json.Number("1")}, // a number is not its text in the command
		nil,
	} {
		if fp(sd) == same {
			t.Errorf("%v: the same fingerprint as another reading", sd)
		}
	}
}
