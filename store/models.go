package store

import "time"

// APIKey authenticates webhook callers. The key itself is never stored: LookupHash
// (an HMAC under the server secret) finds it, Sealed (AES-GCM under the same secret)
// lets an admin reveal it again. A revoked key keeps its row for the history of the
// dispatches it made, but loses its seal.
type APIKey struct {
	ID           string     `gorm:"primaryKey;size:36"`
	Name         string     `gorm:"size:200;not null"`
	Prefix       string     `gorm:"size:16;not null"`
	LookupHash   string     `gorm:"size:64;not null;uniqueIndex"`
	Sealed       string     `gorm:"size:200"`
	CreatedAt    time.Time  `gorm:"not null"`
	LastUsedAt   *time.Time `gorm:""`
	LastUsedFrom string     `gorm:"size:64"`
	RevokedAt    *time.Time `gorm:"index"`

	// Optional limits (empty: no limit). Lists are JSON arrays.
	Disabled     bool       `gorm:"not null;default:false"`
	ExpiresAt    *time.Time `gorm:""`
	ScopeActions string     `gorm:"not null;default:'[]'"`              // action ids it may trigger
	ScopeGroups  string     `gorm:"not null;default:'[]'"`              // or actions that target these groups
	Methods      string     `gorm:"not null;default:'[]'"`              // "POST", "GET"
	CIDRs        string     `gorm:"column:cidrs;not null;default:'[]'"` // source address ranges
	RatePerSec   float64    `gorm:"not null;default:0"`
	RateBurst    int        `gorm:"not null;default:0"`
}

// AdminToken authenticates scripts and the web UI's API calls to the management API.
type AdminToken struct {
	ID         string     `gorm:"primaryKey;size:36"`
	Name       string     `gorm:"size:200;not null"`
	Prefix     string     `gorm:"size:16;not null"`
	Hash       string     `gorm:"size:64;not null;uniqueIndex"`
	CreatedAt  time.Time  `gorm:"not null"`
	LastUsedAt *time.Time `gorm:""`
}

// Device is one signage player. Its MQTT token is kept only as TokenHash (for the
// embedded broker) and MosquittoHash (for an exported Mosquitto password file).
// The desired-state columns are the lasting effect of set_emergency, pause_loop and
// resume_loop, published retained to the device's desired topic.
type Device struct {
	ID            string     `gorm:"primaryKey;size:64"`
	Name          string     `gorm:"size:200;not null"`
	TokenHash     string     `gorm:"size:64;not null;uniqueIndex"`
	MosquittoHash string     `gorm:"size:200;not null"`
	Online        bool       `gorm:"not null;default:false"`
	LastSeen      *time.Time `gorm:""`
	PresenceAt    *time.Time `gorm:""`
	StatusAt      *time.Time `gorm:""` // the at of the last status message applied, as the device wrote it
	CreatedAt     time.Time  `gorm:"not null"`
	UpdatedAt     time.Time  `gorm:"not null"`

	DesiredVersion   int64      `gorm:"not null;default:0"` // from the desired_version counter: see applyDesired
	EmergencyEnabled bool       `gorm:"not null;default:false"`
	EmergencyMessage string     `gorm:"size:2000"`
	EmergencyURL     string     `gorm:"size:2000"`
	LoopPaused       bool       `gorm:"not null;default:false"`
	DesiredUpdatedAt *time.Time `gorm:""`
}

// Counter is a named number that only grows, kept apart from the rows it
// numbers so that it survives their deletion.
type Counter struct {
	Name  string `gorm:"primaryKey;size:64"`
	Value int64  `gorm:"not null;default:0"`
}

// Setting is a named value the service keeps with its data (the server
// secret's fingerprint, say).
type Setting struct {
	Name  string `gorm:"primaryKey;size:64"`
	Value string `gorm:"size:200;not null"`
}

// WriteProbe is a scratch row: ProbeWrite writes one and deletes it.
type WriteProbe struct {
	ID   string `gorm:"primaryKey;size:36"`
	Data string `gorm:"not null"`
}

// Group is a named set of devices that an action can target.
type Group struct {
	ID        string    `gorm:"primaryKey;size:36"`
	Name      string    `gorm:"size:200;not null;uniqueIndex"`
	CreatedAt time.Time `gorm:"not null"`
	UpdatedAt time.Time `gorm:"not null"`
	DeviceIDs []string  `gorm:"-"`
	Members   int       `gorm:"-"` // how many, where DeviceIDs are not read (GroupSizes)
}

// GroupMember puts a device in a group; both sides cascade on delete.
type GroupMember struct {
	GroupID  string  `gorm:"primaryKey;size:36"`
	DeviceID string  `gorm:"primaryKey;size:64;index"`
	Group    *Group  `gorm:"foreignKey:GroupID;constraint:OnDelete:CASCADE"`
	Device   *Device `gorm:"foreignKey:DeviceID;constraint:OnDelete:CASCADE"`
}

// An action's target types (CONTRACT §2): one device, a group, or every device.
const (
	TargetDevice = "device"
	TargetGroup  = "group"
	TargetAll    = "all"
)

// Action is what a webhook call with its EventID makes the target devices do.
// Params holds the function's fixed parameters as a JSON object.
type Action struct {
	ID         string    `gorm:"primaryKey;size:36"`
	Name       string    `gorm:"size:200;not null"`
	EventID    string    `gorm:"size:64;not null;uniqueIndex"`
	Function   string    `gorm:"size:32;not null"`
	TargetType string    `gorm:"size:16;not null"` // TargetDevice, TargetGroup or TargetAll
	TargetID   string    `gorm:"size:64;not null;default:'';index"`
	Params     string    `gorm:"not null;default:'{}'"`
	Enabled    bool      `gorm:"not null"`
	TTLSeconds int       `gorm:"not null"`
	CreatedAt  time.Time `gorm:"not null"`
	UpdatedAt  time.Time `gorm:"not null"`
}

// Dispatch records one accepted trigger: which action, by which key, how and from
// where. Its commands say what happened on each device.
type Dispatch struct {
	ID           string    `gorm:"primaryKey;size:36"`
	ActionID     string    `gorm:"size:36;not null"` // indexed by dispatchIndexes
	ActionName   string    `gorm:"size:200;not null"`
	EventID      string    `gorm:"size:64;not null"`
	Function     string    `gorm:"size:32;not null"`
	APIKeyID     string    `gorm:"size:36;not null;default:''"` // indexed by dispatchIndexes
	APIKeyPrefix string    `gorm:"size:16;not null;default:''"`
	Method       string    `gorm:"size:8;not null"`
	Source       string    `gorm:"size:64;not null;default:''"`
	Targets      int       `gorm:"not null"`
	CreatedAt    time.Time `gorm:"not null;index"`
}

// Command states. A command goes queued -> published -> succeeded | failed |
// rejected, or to expired when its ExpiresAt passes without an ack.
const (
	StateQueued    = "queued"
	StatePublished = "published"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateRejected  = "rejected"
	StateExpired   = "expired"
)

// States lists every command state in lifecycle order.
var States = []string{StateQueued, StatePublished, StateSucceeded, StateFailed, StateRejected, StateExpired}

// OpenStates are the states of a command on its way, not settled yet; the
// others are final (but for an ack, written late, that came before an expired
// or superseded command's expiry: ApplyAcks).
// The SQL terms openStates and finalStates list them too.
var OpenStates = []string{StateQueued, StatePublished}

// IsOpen tells a command on its way (OpenStates) from a settled one.
func IsOpen(state string) bool { return state == StateQueued || state == StatePublished }

// Command is the message for one device of a dispatch. Payload is the exact JSON
// published on the device's commands topic, so a retry sends the same bytes.
type Command struct {
	ID          string     `gorm:"primaryKey;size:36"`
	DispatchID  string     `gorm:"size:36;not null;index:idx_commands_dispatch_device,priority:1"`
	DeviceID    string     `gorm:"size:64;not null;index:idx_commands_dispatch_device,priority:2"` // and for open commands: see openCommandIndexes
	State       string     `gorm:"size:16;not null;index:idx_commands_state_expires,priority:1"`
	Function    string     `gorm:"size:32;not null"`
	Payload     string     `gorm:"not null"`
	CreatedAt   time.Time  `gorm:"not null"`
	ExpiresAt   time.Time  `gorm:"not null;index:idx_commands_state_expires,priority:2"`
	PublishedAt *time.Time `gorm:""`
	AckedAt     *time.Time `gorm:""`
	Detail      string     `gorm:"size:500;not null;default:''"`
}

// RequestLog records one webhook call, accepted or not, without any secret.
type RequestLog struct {
	ID         string    `gorm:"primaryKey;size:36"`
	At         time.Time `gorm:"not null;index"`
	Method     string    `gorm:"size:8;not null"`
	KeyID      string    `gorm:"size:36;not null;default:''"` // indexed by requestLogIndexes
	KeyPrefix  string    `gorm:"size:16;not null;default:''"`
	Source     string    `gorm:"size:64;not null;default:''"`
	UserAgent  string    `gorm:"size:200;not null;default:''"`
	EventID    string    `gorm:"size:64;not null;default:''"`
	Status     int       `gorm:"not null"`
	Code       string    `gorm:"size:32;not null"` // "success" or the error code
	DispatchID string    `gorm:"size:36;not null;default:''"`
	LatencyUS  int64     `gorm:"not null"`
}

// Idempotency remembers the response to a trigger sent with an idempotency key, so a
// repeat by the same API key within the retention window gets the same answer.
type Idempotency struct {
	APIKeyID    string    `gorm:"primaryKey;size:36"`
	Key         string    `gorm:"column:idem_key;primaryKey;size:255"`
	DispatchID  string    `gorm:"size:36;not null"`
	Response    string    `gorm:"not null"`
	Fingerprint string    `gorm:"size:64;not null;default:''"` // what the first call asked for
	CreatedAt   time.Time `gorm:"not null;index"`
}
