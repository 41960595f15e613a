package actions_test

import (
	"strings"
	"testing"

	"devicehooks/actions"
)

// TestTopicPolicy: the embedded broker's rules of the player contract, as
// docs/players.md states them. The end-to-end tests (players_test.go) show a
// real client meeting them; this is the whole table.
func TestTopicPolicy(t *testing.T) {
	topics := actions.Topics{Prefix: "signage"}
	own := func(kind string) string { return topics.Device("lobby-1", kind) }
	other := topics.Device("lobby-2", actions.KindCommands)

	for _, tc := range []struct {
		user, topic string
		write, want bool
	}{
		{"lobby-1", own(actions.KindCommands), false, true},
		{"lobby-1", own(actions.KindDesired), false, true},
		{"lobby-1", own(actions.KindAcks), true, true},
		{"lobby-1", own(actions.KindStatus), true, true},
		{"lobby-1", own(actions.KindCommands), true, false}, // no forged commands
		{"lobby-1", own(actions.KindDesired), true, false},
		{"lobby-1", own(actions.KindAcks), false, false}, // acks and status: the server's only
		{"lobby-1", own(actions.KindStatus), false, false},
		{"lobby-1", other, false, false},
		{"lobby-1", topics.All(actions.KindCommands), false, false},
		{"lobby-1", "signage/devices/lobby-1/commands/x", false, false},
		{"lobby-1", "other/devices/lobby-1/commands", false, false},
		{"", own(actions.KindCommands), false, true}, // anonymous: as the device the topic names
		{"", topics.All(actions.KindCommands), false, false},
		{"", "signage/devices/#/commands", false, false},
	} {
		if got := topics.ClientAllowed(tc.user, tc.topic, tc.write); got != tc.want {
			t.Errorf("ClientAllowed(%q, %q, write %v) = %v, want %v", tc.user, tc.topic, tc.write, got, tc.want)
		}
	}

	if !topics.WillAllowed("lobby-1", own(actions.KindStatus)) || topics.WillAllowed("lobby-1", own(actions.KindAcks)) ||
		topics.WillAllowed("lobby-1", topics.Device("lobby-2", actions.KindStatus)) {
		t.Error("a will goes on the player's own status topic, nowhere else")
	}
	if id, ok := topics.PresenceOf("lobby-1", own(actions.KindCommands)); !ok || id != "lobby-1" {
		t.Errorf("subscribing to its commands: %q %v", id, ok)
	}
	if _, ok := topics.PresenceOf("lobby-1", own(actions.KindDesired)); ok {
		t.Error("subscribing to desired alone made a player present")
	}
	if id, ok := topics.PresenceOf("", own(actions.KindCommands)); !ok || id != "lobby-1" {
		t.Errorf("an anonymous player's presence: %q %v", id, ok)
	}
	if !topics.Unretained(own(actions.KindStatus)) || topics.Unretained(own(actions.KindDesired)) {
		t.Error("only status is kept unretained")
	}
	if !topics.ServerOnly(own(actions.KindAcks)) || !topics.ServerOnly(own(actions.KindStatus)) || topics.ServerOnly(own(actions.KindCommands)) {
		t.Error("acks and status go to the server alone")
	}
}

// The reason the broker's log gives for a refused topic points at what the
// player's developer has to change.
func TestWhyRefused(t *testing.T) {
	topics := actions.Topics{Prefix: "signage"}
	for _, tc := range []struct{ topic, access, want string }{
		{"signage/devices/lobby-1/#", "subscribe", "a wildcard"},
		{"signage/devices/+/commands", "subscribe", "a wildcard"},
		{"devicehooks/devices/lobby-1/commands", "subscribe", "another topic prefix?"},
		{"devicehooks/devices/lobby-1/status", "will", "another topic prefix?"},
		{"signage/devices/Lobby-1/commands", "subscribe", "another device's topic"},
		{"signage/devices/lobby-1/acks", "will", "a will goes on the device's own status topic"},
		{"signage/devices/lobby-1/commands", "publish", "publishes on its acks and status topics only"},
		{"signage/devices/lobby-1/acks", "subscribe", "only the server reads acks and status"},
		{"signage/devices/lobby-1/config", "subscribe", "not a topic of the player contract"},
	} {
		if got := topics.WhyRefused("lobby-1", tc.topic, tc.access); !strings.Contains(got, tc.want) {
			t.Errorf("WhyRefused(%s, %s) = %q, want it to say %q", tc.topic, tc.access, got, tc.want)
		}
	}
}
