package actions

import (
	"encoding/json"
	"testing"
	"time"

	"devicehooks/store"
)

// The commands carry the action's params as stored, without decoding them: the
// payload must be what encoding a CommandMessage with the decoded params gives,
// byte for byte, whatever the field order of encodedCommand.
func TestCommandsCarryTheStoredParamsAsTheMessageEncodesThem(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	stored, err := json.Marshal(map[string]any{"url": "https://example.com/a?b=1&c=<2>", "duration_s": 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, params := range []string{string(stored), "", "null"} {
		a := &store.Action{ID: "a", Function: LoadURL, Params: params, TTLSeconds: 60}
		raw, err := commandParams(Trigger{Action: a})
		if err != nil {
			t.Fatal(err)
		}
		cmds, err := buildCommands("d", a, raw, []string{"dev1", "dev2"}, now)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := DecodeParams(params)
		if err != nil {
			t.Fatal(err)
		}
		if decoded == nil { // "null": a player gets an object, as players.md says
			decoded = map[string]any{}
		}
		expires := now.Add(time.Minute)
		for _, c := range cmds {
			want, _ := json.Marshal(CommandMessage{ID: c.ID, DispatchID: "d", Function: LoadURL, Params: decoded, IssuedAt: now, ExpiresAt: &expires})
			if c.Payload != string(want) {
				t.Errorf("params %q: payload\n%s\nwant\n%s", params, c.Payload, want)
			}
		}
	}
}
