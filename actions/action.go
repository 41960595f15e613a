package actions

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"

	"devicehooks/secrets"
	"devicehooks/store"
)

// Target types (CONTRACT §2).
const (
	TargetDevice = store.TargetDevice
	TargetGroup  = store.TargetGroup
	TargetAll    = store.TargetAll
)

// Target is who an action's commands go to.
type Target struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// TTL bounds: a command that is not acked within its action's TTL expires and is
// never delivered afterwards.
const (
	DefaultTTL = 15 * time.Minute
	MaxTTL     = 7 * 24 * time.Hour
)

// ActionInput is what an admin sends to create or replace an action. It is
// separate from store.Action so read-only fields (id, event_id) cannot be set.
type ActionInput struct {
	Name     string         `json:"name"`
	Function string         `json:"function"`
	Target   Target         `json:"target"`
	Params   map[string]any `json:"params"`
	Enabled  *bool          `json:"enabled"`
	TTLS     *int           `json:"ttl_s"`
}

// DeviceIDPattern is what a device id may look like: it is an MQTT topic level and
// an MQTT username, so no '/', '+', '#' or spaces.
var DeviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Lookup is the part of the store that validating an action needs.
type Lookup interface {
	Device(ctx context.Context, id string) (*store.Device, error)
	Group(ctx context.Context, id string) (*store.Group, error)
}

// BuildAction validates in and fills a (new or existing) action with it. The
// target must exist (lk looks it up). Left out, enabled and ttl_s keep an
// existing action's values (a rename does not enable a disabled action) and
// take their defaults on a new one: enabled, DefaultTTL.
func BuildAction(ctx context.Context, lk Lookup, in ActionInput, a *store.Action) error {
	return buildAction(ctx, lk, in, a)
}

// ApplyAction fills an action with in as BuildAction does, without looking its
// target up: for an edit inside the store's transaction (store.EditAction),
// which must not read through the store, of input that BuildAction checked
// before. The store checks the target again as it saves.
func ApplyAction(in ActionInput, a *store.Action) error {
	return buildAction(context.Background(), nil, in, a)
}

// buildAction is BuildAction; with lk nil, the target is not looked up.
func buildAction(ctx context.Context, lk Lookup, in ActionInput, a *store.Action) error {
	isNew := a.EventID == ""
	in.Target.ID = strings.TrimSpace(in.Target.ID) // as a device's id is read when it is made
	// Every problem of the input at once (errors.Join, in the fields' order: a
	// form marks them all, the API names the first).
	name, nameErr := KeptName("name", in.Name, a.Name) // a new action has none
	params, paramsErr := ValidateParams(in.Function, in.Params)
	targetErr := checkTarget(ctx, lk, in.Target)
	var coded *Error
	if targetErr != nil && !errors.As(targetErr, &coded) {
		return targetErr // the lookup failed: nothing to say about the input
	}
	ttl := DefaultTTL
	if !isNew {
		ttl = time.Duration(a.TTLSeconds) * time.Second
	}
	var ttlErr error
	if in.TTLS != nil {
		// Checked before it is a Duration, which a huge number would overflow.
		if *in.TTLS < 1 || *in.TTLS > int(MaxTTL.Seconds()) {
			ttlErr = Invalid("ttl_s", "must be from 1 to %d seconds", int(MaxTTL.Seconds()))
		} else {
			ttl = time.Duration(*in.TTLS) * time.Second
		}
	}
	if err := errors.Join(nameErr, paramsErr, targetErr, ttlErr); err != nil {
		return err
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return err
	}
	a.Name = name
	a.Function = in.Function
	a.TargetType = in.Target.Type
	a.TargetID = in.Target.ID
	a.Params = string(raw)
	if in.Enabled != nil {
		a.Enabled = *in.Enabled
	} else if isNew {
		a.Enabled = true
	}
	a.TTLSeconds = int(ttl.Seconds())
	if isNew {
		a.EventID = NewEventID()
	}
	return nil
}

func checkTarget(ctx context.Context, lk Lookup, t Target) error {
	var err error
	switch t.Type {
	case TargetAll:
		if t.ID != "" {
			return Invalid("target.id", "must be empty for an all-devices target")
		}
		return nil
	case TargetDevice:
		if t.ID == "" {
			return Invalid("target.id", "is required: the device's id")
		}
		if lk != nil {
			_, err = lk.Device(ctx, t.ID)
		}
	case TargetGroup:
		if t.ID == "" {
			return Invalid("target.id", "is required: the group's id")
		}
		if lk != nil {
			_, err = lk.Group(ctx, t.ID)
		}
	case "": // no target at all, often
		return Invalid("target.type", "is required: \"device\", \"group\" or \"all\" (a target is {\"type\": \"device\", \"id\": \"…\"})")
	default:
		return Invalid("target.type", "must be \"device\", \"group\" or \"all\"")
	}
	if errors.Is(err, store.ErrNotFound) {
		return Invalid("target.id", "no %s with id %q", t.Type, t.ID)
	}
	return err
}

// NewEventID returns an unguessable event id: 26 base62 characters (about 154
// random bits) behind a recognisable prefix.
func NewEventID() string { return "evt_" + secrets.RandomString(26) }
