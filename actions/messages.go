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
