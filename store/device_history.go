package store

import (
	"context"
	"time"
)

// replacedCommandIndexes drop what idx_commands_dispatch_device (from
// Command's tags) replaces: the index on dispatch_id alone, which it covers.
// Indexed by dispatch and device, a dispatch's commands give one device's
// command in a dispatch for its history (DeviceHistory), and a dispatch's
// page reads them in the order it shows them.
//
// A device's history is not indexed by device: such an index puts each of a
// fan-out's commands on another page (one per device), so that an "all
// devices" commit to 10,000 would write 10,000 of its pages. The history is
// found through the dispatches instead, newest first.
var replacedCommandIndexes = []string{
	`DROP INDEX IF EXISTS idx_commands_dispatch_id`,
}

// DeviceCommand is a command in a device's history, with what its dispatch
// says of the trigger.
type DeviceCommand struct {
	Command
	ActionID   string
	ActionName string
	EventID    string
}

// DeviceHistory is a page of a device's commands, newest first.
type DeviceHistory struct {
	Commands []DeviceCommand
	// Next is the dispatch id to read on from (as before), "" once every
	// dispatch kept has been looked at.
	Next string
	// Searched is how many dispatches the page covers, back to the one made
	// at Reached: a full page's, back to its oldest command's (to the oldest
	// kept when Next is ""); one that stopped at historyScan before it found
	// limit commands, how far back it looked.
	Searched int
	Reached  time.Time
}

const (
	// historyChunk is how many dispatches DeviceHistory looks at per query.
	historyChunk = 1000
	// historyScan bounds the dispatches one page of a device's history looks
	// at: a device that few triggers reach would otherwise have every kept
	// dispatch read for one page. 10-20 ms on SQLite, 35 ms on PostgreSQL
	// (BenchmarkDeviceHistory).
	historyScan = 20 * historyChunk
)

// DeviceHistory returns up to limit of a device's commands in the given
// states (all, if none), newest first, from the dispatches made before the
// dispatch id before ("": from the newest). It looks at historyScan
// dispatches at most; Next says where to go on.
func (s *Store) DeviceHistory(ctx context.Context, deviceID string, states []string, before string, limit int) (DeviceHistory, error) {
	var h DeviceHistory
	limit = max(limit, 1)
	start := before
	for h.Searched < historyScan {
		// The chunk is the dispatches from its oldest, bound, up to before.
		var bound []Dispatch
		q := s.db.WithContext(ctx).Select("id", "created_at").Order("id DESC").Offset(historyChunk - 1).Limit(1)
		if before != "" {
			q = q.Where("id < ?", before)
		}
		if err := q.Find(&bound).Error; err != nil {
			return h, wrap("device history: dispatches", err)
		}
		last := len(bound) == 0 // fewer than a chunk are left: the last one
		found, err := s.deviceCommandsIn(ctx, deviceID, states, before, bound, limit-len(h.Commands)+1)
		if err != nil {
			return h, err
		}
		// A full page goes on after its oldest command, unless nothing older
		// is left. It looked back to that command's dispatch.
		if room := limit - len(h.Commands); len(found) > room || len(found) == room && !last {
			h.Commands = append(h.Commands, found[:room]...)
			h.Next = h.Commands[limit-1].DispatchID
			h.Searched, h.Reached, err = s.dispatchesIn(ctx, h.Next, start)
			return h, err
		}
		h.Commands = append(h.Commands, found...)
		if last {
			n, reached, err := s.dispatchesIn(ctx, "", before)
			if n > 0 {
				h.Searched, h.Reached = h.Searched+n, reached
			}
			h.Next = ""
			return h, err
		}
		h.Searched, h.Reached = h.Searched+historyChunk, bound[0].CreatedAt
		before, h.Next = bound[0].ID, bound[0].ID
	}
	return h, nil
}

// deviceCommandsIn returns the device's commands in the dispatches before
// the dispatch id before ("": any) and from bound's on (none: every one),
// newest first, n at most. Each dispatch's command for the device is looked
// up by the index on (dispatch_id, device_id): a dispatch has one per device
// at most.
func (s *Store) deviceCommandsIn(ctx context.Context, deviceID string, states []string, before string, bound []Dispatch, n int) ([]DeviceCommand, error) {
	q := s.db.WithContext(ctx).Select("c.*, d.action_id, d.action_name, d.event_id")
	if s.postgres {
		// LATERAL: a lookup per dispatch. A plain join may be planned as a
		// hash join over every command of the device (0.2 s a chunk, for
		// a device with a few per cent of 400,000 commands).
		q = q.Table("dispatches AS d").
			Joins("CROSS JOIN LATERAL (SELECT * FROM commands WHERE commands.dispatch_id = d.id AND commands.device_id = ? LIMIT 1) AS c", deviceID)
	} else {
		// CROSS JOIN: SQLite keeps the dispatches as the outer loop, in
		// order, whatever it guesses of the tables' sizes.
		q = q.Table("dispatches AS d CROSS JOIN commands AS c").Where("c.dispatch_id = d.id AND c.device_id = ?", deviceID)
	}
	if before != "" {
		q = q.Where("d.id < ?", before)
	}
	if len(bound) > 0 {
		q = q.Where("d.id >= ?", bound[0].ID)
	}
	if len(states) > 0 {
		q = q.Where("c.state IN ?", states)
	}
	var cmds []DeviceCommand
	return cmds, wrap("device history: commands", q.Order("d.id DESC").Limit(n).Scan(&cmds).Error)
}

// dispatchesIn counts the dispatches from the dispatch id from ("": the
// oldest) to before the dispatch id before ("": the newest), and tells when
// the oldest of them was made.
func (s *Store) dispatchesIn(ctx context.Context, from, before string) (int, time.Time, error) {
	var r struct {
		N      int
		Oldest string
	}
	q := s.db.WithContext(ctx).Model(&Dispatch{}).Select("COUNT(*) AS n, MIN(id) AS oldest")
	if from != "" {
		q = q.Where("id >= ?", from)
	}
	if before != "" {
		q = q.Where("id < ?", before)
	}
	if err := q.Scan(&r).Error; err != nil || r.N == 0 {
		return 0, time.Time{}, wrap("device history: dispatches", err)
	}
	// The oldest by id is the oldest made: ids are time-ordered (UUIDv7).
	var d Dispatch
	err := s.db.WithContext(ctx).Select("created_at").Where("id = ?", r.Oldest).Take(&d).Error
	return r.N, d.CreatedAt, wrap("device history: dispatches", err)
}
