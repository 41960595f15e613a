package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// NewDispatch is one accepted trigger to write: the dispatch, one command per
// target device, the devices' desired-state change if the function has one, and
// the idempotency record if the caller sent a key.
type NewDispatch struct {
	Dispatch    Dispatch
	Commands    []Command
	Desired     *DesiredChange
	Idempotency *Idempotency
}

// WriteDispatches writes a batch of triggers in one transaction, so that many
// concurrent webhook calls share one commit. A trigger whose idempotency key is
// already taken is left out and reported in dup; either every other trigger of the
// batch is written, or (on error) none is.
func (s *Store) WriteDispatches(ctx context.Context, batch []*NewDispatch) (dup []bool, err error) {
	dup = make([]bool, len(batch))
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var (
			ds   []Dispatch
			cmds []Command
		)
		for i, nd := range batch {
			if nd.Idempotency != nil {
				res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(nd.Idempotency)
				if res.Error != nil {
					return res.Error
				}
				if res.RowsAffected == 0 {
					dup[i] = true
					continue
				}
			}
			ds = append(ds, nd.Dispatch)
			cmds = append(cmds, nd.Commands...)
			if nd.Desired != nil && len(nd.Commands) > 0 {
				ids := make([]string, len(nd.Commands))
				for j, c := range nd.Commands {
					ids[j] = c.DeviceID
				}
				if err := applyDesired(tx, ids, nd.Desired, nd.Dispatch.CreatedAt); err != nil {
					return err
				}
			}
		}
		if len(ds) > 0 {
			if err := tx.CreateInBatches(ds, 200).Error; err != nil {
				return err
			}
		}
		if len(cmds) > 0 {
			if err := tx.CreateInBatches(cmds, 400).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return dup, wrap("write dispatches", err)
}

// IdempotentResponse returns the stored response for a key used by an API key since
// the given time, or ErrNotFound.
func (s *Store) IdempotentResponse(ctx context.Context, apiKeyID, key string, since time.Time) (*Idempotency, error) {
	var rec Idempotency
	err := s.db.WithContext(ctx).
		Where("api_key_id = ? AND idem_key = ? AND created_at >= ?", apiKeyID, key, since).
		Take(&rec).Error
	return &rec, wrap("get idempotency record", err)
}

// PurgeIdempotency deletes idempotency records older than before, so an expired key
// can be used again.
func (s *Store) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("created_at < ?", before).Delete(&Idempotency{})
	return res.RowsAffected, wrap("purge idempotency records", res.Error)
}

// Dispatches lists dispatches, newest first.
func (s *Store) Dispatches(ctx context.Context, p Page) ([]Dispatch, int64, error) {
	var (
		ds    []Dispatch
		total int64
	)
	q := s.db.WithContext(ctx).Model(&Dispatch{})
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, wrap("count dispatches", err)
	}
	err := p.apply(q).Order("created_at DESC, id DESC").Find(&ds).Error
	return ds, total, wrap("list dispatches", err)
}

// Dispatch returns one dispatch.
func (s *Store) Dispatch(ctx context.Context, id string) (*Dispatch, error) {
	var d Dispatch
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	return &d, wrap("get dispatch", err)
}

// DispatchCommands returns a dispatch's commands ordered by device.
func (s *Store) DispatchCommands(ctx context.Context, dispatchID string) ([]Command, error) {
	var cs []Command
	err := s.db.WithContext(ctx).Omit("payload").Where("dispatch_id = ?", dispatchID).Order("device_id").Find(&cs).Error
	return cs, wrap("list dispatch commands", err)
}

// StateCounts maps a command state to a number of commands.
type StateCounts map[string]int

// CommandCounts counts the commands of each dispatch by state.
func (s *Store) CommandCounts(ctx context.Context, dispatchIDs []string) (map[string]StateCounts, error) {
	out := make(map[string]StateCounts, len(dispatchIDs))
	if len(dispatchIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		DispatchID string
		State      string
		N          int
	}
	err := s.db.WithContext(ctx).Model(&Command{}).
		Select("dispatch_id, state, COUNT(*) AS n").
		Where("dispatch_id IN ?", dispatchIDs).
		Group("dispatch_id, state").Scan(&rows).Error
	if err != nil {
		return nil, wrap("count commands", err)
	}
	for _, r := range rows {
		if out[r.DispatchID] == nil {
			out[r.DispatchID] = StateCounts{}
		}
		out[r.DispatchID][r.State] = r.N
	}
	return out, nil
}

// PendingCommands returns the unexpired commands of the given devices in the given
// states (queued, and published-but-unacked when a device reconnects), oldest first.
func (s *Store) PendingCommands(ctx context.Context, deviceIDs, states []string, now time.Time, limit int) ([]Command, error) {
	var out []Command
	for _, chunk := range chunks(deviceIDs, 1000) {
		var cs []Command
		err := s.db.WithContext(ctx).
			Where("device_id IN ? AND state IN ? AND expires_at > ?", chunk, states, now).
			Order("created_at, id").Limit(limit).Find(&cs).Error
		if err != nil {
			return nil, wrap("list pending commands", err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// MarkPublished moves queued commands to published. A command that an ack already
// settled keeps its final state.
func (s *Store) MarkPublished(ctx context.Context, ids []string, at time.Time) error {
	for _, chunk := range chunks(ids, 1000) {
		err := s.db.WithContext(ctx).Model(&Command{}).
			Where("id IN ? AND state = ?", chunk, StateQueued).
			Updates(map[string]any{"state": StatePublished, "published_at": at}).Error
		if err != nil {
			return wrap("mark published", err)
		}
	}
	return nil
}

// Ack is a device's answer to a command.
type Ack struct {
	CommandID string
	DeviceID  string
	State     string // succeeded, failed or rejected
	Detail    string
	At        time.Time
}

// ApplyAcks settles commands from device acks in one transaction. An ack counts only
// for a command of the acking device that is not settled yet; applied[i] tells
// whether acks[i] changed anything.
func (s *Store) ApplyAcks(ctx context.Context, acks []Ack) (applied []bool, err error) {
	applied = make([]bool, len(acks))
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for i, a := range acks {
			res := tx.Model(&Command{}).
				Where("id = ? AND device_id = ? AND state IN ?", a.CommandID, a.DeviceID, []string{StateQueued, StatePublished}).
				Updates(map[string]any{
					"state": a.State, "acked_at": a.At, "detail": a.Detail,
					// an ack can overtake the batched published mark
					"published_at": gorm.Expr("COALESCE(published_at, ?)", a.At),
				})
			if res.Error != nil {
				return res.Error
			}
			applied[i] = res.RowsAffected > 0
		}
		return nil
	})
	return applied, wrap("apply acks", err)
}

// ExpireCommands marks unsettled commands whose time has passed as expired and
// returns how many it changed.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Model(&Command{}).
		Where("state IN ? AND expires_at <= ?", []string{StateQueued, StatePublished}, now).
		Updates(map[string]any{"state": StateExpired, "detail": "expired before an ack"})
	return res.RowsAffected, wrap("expire commands", res.Error)
}

// CountCommandsByState counts every command by state (for dashboards and metrics).
func (s *Store) CountCommandsByState(ctx context.Context) (StateCounts, error) {
	var rows []struct {
		State string
		N     int
	}
	err := s.db.WithContext(ctx).Model(&Command{}).Select("state, COUNT(*) AS n").Group("state").Scan(&rows).Error
	out := StateCounts{}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, wrap("count commands by state", err)
}
