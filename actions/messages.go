package actions

import (
	"strings"
	"time"
)

// Topics builds and parses the MQTT topics of the player contract (CONTRACT §3).
type Topics struct{ Prefix string }

// The per-device topic kinds.
const (
	KindCommands = "commands"
	KindAcks     = "acks"
	KindStatus   = "status"
	KindDesired  = "desired"
)

// Device returns the topic of one kind for a device.
func (t Topics) Device(deviceID, kind string) string {
	return t.Prefix + "/devices/" + deviceID + "/" + kind
}

// All returns the filter matching one kind for every device.
func (t Topics) All(kind string) string { return t.Prefix + "/devices/+/" + kind }

// Parse splits a per-device topic into device id and kind.
func (t Topics) Parse(topic string) (deviceID, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, t.Prefix+"/devices/")
	if !ok {
		return "", "", false
	}
	deviceID, kind, ok = strings.Cut(rest, "/")
	if !ok || deviceID == "" || strings.Contains(kind, "/") {
		return "", "", false
	}
	return deviceID, kind, true
}

// Allowed is the device ACL: a device may read its own commands and desired
// topics and write its own acks and status topics, nothing else.
func (t Topics) Allowed(deviceID, topic string, write bool) bool {
	id, kind, ok := t.Parse(topic)
	if !ok || id != deviceID {
		return false
	}
	if write {
		return kind == KindAcks || kind == KindStatus
	}
	return kind == KindCommands || kind == KindDesired
}

// WhyRefused says why Allowed refuses a device a topic, for the embedded
// broker's log line: what the player's developer has to change. access is
// "subscribe", "publish" or "will".
func (t Topics) WhyRefused(deviceID, topic, access string) string {
	id, kind, ok := t.Parse(topic)
	switch {
	case strings.ContainsAny(topic, "+#"):
		return "a wildcard: subscribe to the device's commands and desired topics by name"
	case !ok:
		return "not a device's topic under the server's prefix (" + t.Prefix + "/devices/<id>/…): another topic prefix?"
	case deviceID != "" && id != deviceID:
		return "another device's topic (device ids are case-sensitive)"
	case access == "will":
		return "a will goes on the device's own status topic"
	case access == "publish":
		return "a device publishes on its acks and status topics only"
	case kind == KindAcks || kind == KindStatus:
		return "only the server reads acks and status"
	default:
		return "not a topic of the player contract (commands, desired, acks, status)"
	}
}

// The rest of the embedded broker's policy for the player contract
// (docs/players.md): a client's username is its device id, or, for an
// anonymous client (--mqtt-allow-anonymous, development only), the device
// whose topic it uses.

// anonymous returns the device an anonymous client acts as on topic: the one
// it names, never a wildcard.
func (t Topics) anonymous(topic string) string {
	id, _, ok := t.Parse(topic)
	if !ok || !DeviceIDPattern.MatchString(id) {
		return ""
	}
	return id
}

// ClientAllowed is Allowed for a client of the embedded broker, anonymous
// ones included.
func (t Topics) ClientAllowed(user, topic string, write bool) bool {
	if user == "" {
		user = t.anonymous(topic)
	}
	return user != "" && t.Allowed(user, topic, write)
}

// WillAllowed tells whether a client may leave a will on topic: a will says
// that the player is gone, so only on its own status topic.
func (t Topics) WillAllowed(user, topic string) bool {
	_, kind, ok := t.Parse(topic)
	return ok && kind == KindStatus && t.ClientAllowed(user, topic, true)
}

// PresenceOf tells whether a subscription to filter makes a client present,
// and as which device: a player is online once it reads its own commands.
func (t Topics) PresenceOf(user, filter string) (deviceID string, ok bool) {
	if user == "" {
		user = t.anonymous(filter)
	}
	return user, user != "" && filter == t.Device(user, KindCommands)
}

// Unretained tells whether a retained message on topic is kept unretained:
// only the server reads status, and connections tell it who is there.
func (t Topics) Unretained(topic string) bool {
	_, kind, ok := t.Parse(topic)
	return ok && kind == KindStatus
}

// ServerOnly tells whether what is published on topic goes to the server
// alone: the ACL lets no client read acks or status, so they go straight to
// the tracker, without the broker's routing.
func (t Topics) ServerOnly(topic string) bool {
	_, kind, ok := t.Parse(topic)
	return ok && (kind == KindAcks || kind == KindStatus)
}

// CommandMessage is the payload on a device's commands topic.
type CommandMessage struct {
	ID         string         `json:"id"`
	DispatchID string         `json:"dispatch_id"`
	Function   string         `json:"function"`
	Params     map[string]any `json:"params"`
	IssuedAt   time.Time      `json:"issued_at"`
	ExpiresAt  *time.Time     `json:"expires_at,omitempty"`
}

// AckMessage is the payload a device sends on its acks topic.
type AckMessage struct {
	ID     string    `json:"id"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// StatusMessage is the retained payload on a device's status topic (and its will).
type StatusMessage struct {
	State string     `json:"state"`
	At    *time.Time `json:"at,omitempty"`
}

// DesiredMessage is the retained payload on a device's desired topic.
type DesiredMessage struct {
	Version    int64            `json:"version"`
	Emergency  EmergencyDesired `json:"emergency"`
	LoopPaused bool             `json:"loop_paused"`
	UpdatedAt  time.Time        `json:"updated_at"`
}

// EmergencyDesired is the emergency part of the desired state.
type EmergencyDesired struct {
	Enabled bool   `json:"enabled"`
	Message string `json:"message,omitempty"`
	URL     string `json:"url,omitempty"`
}
