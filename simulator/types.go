// Package simulator runs simulated signage players against an MQTT broker: it keeps
// their presence, applies commands and desired state, and acks commands the way a
// real player does (CONTRACT §3). End-to-end tests, the benchmark and
// `devicehooks simulate` use it.
package simulator

import "time"

// Credentials identify one player to the broker: MQTT username = DeviceID, password = Token.
type Credentials struct {
	DeviceID string
	Token    string
}

// Command is a command as received (CONTRACT §3).
type Command struct {
	ID         string         `json:"id"`
	DispatchID string         `json:"dispatch_id"`
	Function   string         `json:"function"`
	Params     map[string]any `json:"params"`
	IssuedAt   time.Time      `json:"issued_at"`
	ExpiresAt  *time.Time     `json:"expires_at,omitempty"`
}

// Emergency is the emergency part of the desired state (and of set_emergency).
type Emergency struct {
	Enabled bool   `json:"enabled"`
	Message string `json:"message,omitempty"`
	URL     string `json:"url,omitempty"`
}

// Desired is the retained desired-state document (CONTRACT §3).
type Desired struct {
	Version    int64     `json:"version"`
	Emergency  Emergency `json:"emergency"`
	LoopPaused bool      `json:"loop_paused"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Event kinds reported through Config.OnEvent.
const (
	KindCommand        = "command"         // a new command was applied (or chosen to fail)
	KindDuplicate      = "duplicate"       // a command id seen before: acked again (unless NoAck), not re-applied
	KindExpired        = "expired"         // a command past its expires_at: rejected, not applied
	KindDesired        = "desired"         // a newer desired state was applied
	KindDesiredIgnored = "desired_ignored" // a desired state not newer than the applied one
	KindAck            = "ack"             // an ack was published (AckStatus says which)
	KindConnected      = "connected"       // the player (re)connected and subscribed
	KindDisconnected   = "disconnected"    // the connection was lost, dropped or closed
	KindInvalid        = "invalid"         // a payload that is not valid JSON for its topic
	KindError          = "error"           // something the player could not do (Detail says what)
)

// Ack statuses (CONTRACT §3).
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusRejected  = "rejected"
)

// Event is something a player saw or did, for printing and for tests.
type Event struct {
	DeviceID  string
	Kind      string   // one of the Kind constants
	Command   *Command // for command, duplicate, expired and ack events
	Desired   *Desired // for desired and desired_ignored events
	AckStatus string   // for ack events
	Detail    string   // ack detail, disconnect reason or error text
	At        time.Time
}

// Config describes the players to simulate and how they behave.
type Config struct {
	BrokerURL   string // tcp://127.0.0.1:1883 or ws://127.0.0.1:8083/mqtt
	TopicPrefix string // default "devicehooks"
	Players     []Credentials
	AckDelay    time.Duration // delay before acking each command
	FailureRate float64       // 0..1: share of commands acked "failed" (deterministic given Seed)
	Seed        int64
	NoAck       bool // receive but never ack
	// ConnectConcurrency is how many players connect at once (default 64), so 10k
	// players don't stampede the broker.
	ConnectConcurrency int
	// OnEvent is called for every event, from paho's goroutines: it must be safe for
	// concurrent use and should return quickly. May be nil.
	OnEvent func(Event)
}

// Stats are totals over all players since Start.
type Stats struct {
	Players    int   // players started
	Connected  int   // players whose connection is open right now
	Commands   int64 // command messages received (including duplicates and expired ones)
	Duplicates int64 // commands whose id was already handled
	Expired    int64 // commands rejected because expires_at had passed
	Acked      int64 // acks published, whatever their status
	Failed     int64 // acks published with status "failed"
	Desired    int64 // desired states applied (newer than the one before)
}

// PlayerState is what one player has applied so far.
type PlayerState struct {
	Desired    *Desired  // last applied desired state, nil if none yet
	Emergency  Emergency // current emergency state (from set_emergency or desired)
	LoopPaused bool      // current loop state (from pause_loop/resume_loop or desired)
	Handled    []string  // ids of handled commands, oldest first (the last 1024)
	LastURL    string    // last URL loaded by load_url
	Connected  bool      // whether its connection is open right now
}
