package store

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// needsAttention is the WHERE term of the commands that need an admin's
// attention: failed, rejected or expired, but not expired because a newer
// set_emergency or pause/resume replaced it (supersede), which is by design:
// the device got the newer one. The index idx_commands_attention holds these
// commands only, by dispatch; SQLite uses it for a query that repeats the term
// word for word.
const needsAttention = `(state IN ('` + StateFailed + `', '` + StateRejected + `') OR state = '` + StateExpired +
	`' AND detail NOT LIKE '` + supersededBy + `%')`

// attentionIndex finds a dispatch's commands that need attention without
// reading its others, nor every failed command ever kept: the dashboard asks
// it of each dispatch of the last 24 hours, so its time grows with the
// window's dispatches, not with the retention.
const attentionIndex = `CREATE INDEX IF NOT EXISTS idx_commands_attention ON commands (dispatch_id) WHERE ` + needsAttention

// withFailedCommand keeps the dispatches with at least one command that needs
// attention.
func withFailedCommand(q *gorm.DB) *gorm.DB {
	return q.Where(`EXISTS (SELECT 1 FROM commands WHERE commands.dispatch_id = dispatches.id AND ` + needsAttention + `)`)
}

// The device states the devices page can filter on: the desired state that
// set_emergency and pause_loop leave behind, and the presence last written
// (the presence tracker writes it every second or so).
const (
	DeviceStateEmergency = "emergency"
	DeviceStatePaused    = "paused"
	DeviceStateOnline    = "online"
	DeviceStateOffline   = "offline"
)

// DeviceFilter narrows a list of devices: State is one of the DeviceState
// values ("" for any), Search a text that the id or the name contains,
// whatever its case ("" for any).
type DeviceFilter struct{ State, Search string }

// FindDevices lists, ordered by id, the devices that f lets through, and counts
// them all.
func (s *Store) FindDevices(ctx context.Context, f DeviceFilter, p Page) ([]Device, int64, error) {
	q := s.db.WithContext(ctx).Model(&Device{})
	switch f.State {
	case "":
	case DeviceStateEmergency:
		q = q.Where("emergency_enabled = ?", true)
	case DeviceStatePaused:
		q = q.Where("loop_paused = ?", true)
	case DeviceStateOnline, DeviceStateOffline:
		q = q.Where("online = ?", f.State == DeviceStateOnline)
	default:
		return nil, 0, fmt.Errorf("store: unknown device state %q", f.State)
	}
	return listPage[Device](containing(q, f.Search), p, "id", "devices")
}

// likeEscaper makes a text match itself in a LIKE pattern with ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// FirstCommandPayload returns the payload of one command of a dispatch (they
// differ only in their id), or "" if it has none: what the trigger carried.
func (s *Store) FirstCommandPayload(ctx context.Context, dispatchID string) (string, error) {
	var payloads []string
	err := s.db.WithContext(ctx).Model(&Command{}).Where("dispatch_id = ?", dispatchID).
		Order("device_id").Limit(1).Pluck("payload", &payloads).Error
	if err != nil || len(payloads) == 0 {
		return "", wrap("get a command payload", err)
	}
	return payloads[0], nil
}
