package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"devicehooks/internal/wallclock"
)

// CreateDevice inserts a device; an existing id is ErrConflict.
func (s *Store) CreateDevice(ctx context.Context, d *Device) error {
	return wrap("create device", s.db.WithContext(ctx).Create(d).Error)
}

// Devices lists devices ordered by id.
func (s *Store) Devices(ctx context.Context, p Page) ([]Device, int64, error) {
	return listPage[Device](s.db.WithContext(ctx).Model(&Device{}), p, "id", "devices")
}

// Device returns one device.
func (s *Store) Device(ctx context.Context, id string) (*Device, error) {
	var d Device
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	return &d, wrap("get device", err)
}

// DevicesByID returns the devices among ids that exist, in no particular order.
func (s *Store) DevicesByID(ctx context.Context, ids []string) ([]Device, error) {
	return findByIDs[Device](ctx, s.db, ids, "get devices")
}

// DeviceIDs returns every device id, ordered.
func (s *Store) DeviceIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&Device{}).Order("id").Pluck("id", &ids).Error
	return ids, wrap("list device ids", err)
}

// DeviceCredential is what the broker needs to admit a device.
type DeviceCredential struct {
	ID        string
	TokenHash string
}

// DeviceCredentials returns every device's token hash, for the broker's cache.
func (s *Store) DeviceCredentials(ctx context.Context) ([]DeviceCredential, error) {
	var cs []DeviceCredential
	err := s.db.WithContext(ctx).Model(&Device{}).Select("id", "token_hash").Find(&cs).Error
	return cs, wrap("list device credentials", err)
}

// MosquittoCredentials returns every device's Mosquitto password hash by id.
func (s *Store) MosquittoCredentials(ctx context.Context) ([]Device, error) {
	var ds []Device
	err := s.db.WithContext(ctx).Select("id", "mosquitto_hash").Order("id").Find(&ds).Error
	return ds, wrap("list mosquitto credentials", err)
}

// RenameDevice changes a device's name.
func (s *Store) RenameDevice(ctx context.Context, id, name string) error {
	res := s.db.WithContext(ctx).Model(&Device{}).Where("id = ?", id).
		Updates(map[string]any{"name": name, "updated_at": wallclock.Now()})
	return rowsOrNotFound("rename device", res)
}

// SetDeviceToken replaces a device's credentials (token rotation).
func (s *Store) SetDeviceToken(ctx context.Context, id, tokenHash, mosquittoHash string) error {
	res := s.db.WithContext(ctx).Model(&Device{}).Where("id = ?", id).
		Updates(map[string]any{"token_hash": tokenHash, "mosquitto_hash": mosquittoHash, "updated_at": wallclock.Now()})
	return rowsOrNotFound("set device token", res)
}

// DeleteDevice removes a device and its group memberships, and expires its
// open commands ("device deleted"), whose ids it returns. A device that an
// action targets cannot be deleted (ErrConflict): the action would point at
// nothing.
func (s *Store) DeleteDevice(ctx context.Context, id string) (expired []string, err error) {
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The device's row first: before the actions are counted, so that an
		// action being saved to target it (targetExists) is either seen or
		// refused; and before the device's commands, as a trigger takes them
		// (supersede), which in the other order could deadlock on PostgreSQL.
		if err := lockDevices(tx, []string{id}); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&Action{}).Where("target_type = ? AND target_id = ?", TargetDevice, id).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		if err := tx.Where("device_id = ?", id).Delete(&GroupMember{}).Error; err != nil {
			return err
		}
		// A device created again later with the same id must not get these.
		err := tx.Raw(`UPDATE commands SET state = ?, detail = ? WHERE device_id = ? AND `+openStates+` RETURNING id`,
			StateExpired, "device deleted", id).Scan(&expired).Error
		if err != nil {
			return err
		}
		res := tx.Where("id = ?", id).Delete(&Device{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, wrap("delete device", err)
	}
	return expired, nil
}

// Presence is a device's connection state as last observed.
type Presence struct {
	DeviceID string
	Online   bool
	At       time.Time // when the state was observed, used to reject stale updates
	LastSeen time.Time
	// StatusAt is the time the last status message applied carried, by the
	// device's clock (zero: it carried none, as a will may not), so that the
	// broker's replay of that message can be told from an older one.
	StatusAt time.Time
}

// SavePresence writes several presence changes in one transaction. A change older
// than what is stored (PresenceAt) is skipped, so a late message never wins.
// It sorts ps by device: rows are updated in id order, as lockDevices takes
// them.
func (s *Store) SavePresence(ctx context.Context, ps []Presence) error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortFunc(ps, func(a, b Presence) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return wrap("save presence", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return s.stmts.execEach(tx, presenceStmt, len(ps), func(i int) []any {
			p := ps[i]
			var statusAt any // NULL
			if !p.StatusAt.IsZero() {
				statusAt = p.StatusAt
			}
			return []any{p.Online, p.At, p.LastSeen, statusAt, p.DeviceID, p.At}
		})
	}))
}

// presenceSQL saves one device's presence unless a newer one is already stored.
const presenceSQL = `UPDATE devices SET online = ?, presence_at = ?, last_seen = ?, status_at = ?
 WHERE id = ? AND (presence_at IS NULL OR presence_at <= ?)`

// ResetPresence marks every device offline at start, keeping when each state was
// observed (so a stale retained status cannot win later). The rows are locked
// in id order first, as every other write of several devices does: another
// instance's presence flush must not deadlock with it (a rolling deploy).
func (s *Store) ResetPresence(ctx context.Context) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var ids []string
		if err := tx.Model(&Device{}).Where("online = ?", true).Pluck("id", &ids).Error; err != nil {
			return err
		}
		if err := lockDevices(tx, ids); err != nil {
			return err
		}
		for _, chunk := range chunks(ids, 1000) {
			// A device that came online since the read is left as it is.
			if err := tx.Model(&Device{}).Where("id IN ? AND online = ?", chunk, true).Update("online", false).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("reset presence", err)
}

// PresenceStates returns every device's stored presence.
func (s *Store) PresenceStates(ctx context.Context) ([]Presence, error) {
	var ds []Device
	err := s.db.WithContext(ctx).Select("id", "online", "presence_at", "last_seen", "status_at").Find(&ds).Error
	out := make([]Presence, len(ds))
	for i, d := range ds {
		out[i] = Presence{DeviceID: d.ID, Online: d.Online}
		if d.PresenceAt != nil {
			out[i].At = *d.PresenceAt
		}
		if d.StatusAt != nil {
			out[i].StatusAt = *d.StatusAt
		}
		if d.LastSeen != nil {
			out[i].LastSeen = *d.LastSeen
		}
	}
	return out, wrap("list presence", err)
}

// DevicesWithDesired returns the devices that have a desired state to publish.
func (s *Store) DevicesWithDesired(ctx context.Context, ids []string) ([]Device, error) {
	q := s.db.WithContext(ctx).Where("desired_version > 0")
	if ids == nil {
		var ds []Device
		err := q.Find(&ds).Error
		return ds, wrap("list desired states", err)
	}
	var out []Device
	for _, chunk := range chunks(ids, 1000) {
		var ds []Device
		if err := q.Session(&gorm.Session{}).Where("id IN ?", chunk).Find(&ds).Error; err != nil {
			return nil, wrap("list desired states", err)
		}
		out = append(out, ds...)
	}
	return out, nil
}

// DesiredChange is the lasting effect of a command on the devices' desired state;
// nil fields are left as they are.
type DesiredChange struct {
	Emergency  *Emergency
	LoopPaused *bool
	// Supersedes names the functions whose open commands to the same devices
	// the change makes obsolete: they are marked expired when it is written, so
	// that a player that gets them later (from its queue, on reconnect) cannot
	// undo the newer state.
	Supersedes []string
}

// Emergency is the emergency part of a device's desired state.
type Emergency struct {
	Enabled bool
	Message string
	URL     string
}

// lockDevices takes the row locks of these devices in id order, on
// PostgreSQL, before a transaction updates several of them in another order:
// two transactions that update several devices (a trigger's desired state,
// presence) then never wait for each other in a circle, which PostgreSQL
// breaks by failing one (a deadlock). SQLite has one writer at a time.
func lockDevices(tx *gorm.DB, ids []string) error {
	return lockRows(tx, &Device{}, ids, "NO KEY UPDATE")
}

// lockRows takes the row locks of these ids in model's table, in id order,
// with strength (UPDATE, NO KEY UPDATE, SHARE), on PostgreSQL; SQLite has one
// writer at a time.
func lockRows(tx *gorm.DB, model any, ids []string, strength string) error {
	if tx.Dialector.Name() != "postgres" || len(ids) == 0 {
		return nil
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(ids)))
	for _, chunk := range chunks(sorted, 1000) {
		var locked []string
		// In byte order, as SavePresence sorts: the database's own collation
		// may order "Dev-2" and "b" otherwise.
		err := tx.Model(model).Where("id IN ?", chunk).Order(inByteOrder(tx, "id")).
			Clauses(clause.Locking{Strength: strength}).Pluck("id", &locked).Error
		if err != nil {
			return err
		}
	}
	return nil
}

// takeVersions reserves n desired-state versions and returns the one before
// the first: the batch's changes are numbered last+1 … last+n. Versions come
// from one counter for all devices, not from each device's own count: a device
// deleted and created again under the same id then still gets versions higher
// than the old device's, which a player that kept running would otherwise
// ignore (docs/players.md: apply only a higher version).
func takeVersions(tx *gorm.DB, n int) (last int64, err error) {
	if n == 0 {
		return 0, nil
	}
	var top int64
	err = tx.Raw(`UPDATE counters SET value = value + ? WHERE name = ? RETURNING value`, n, desiredCounter).Scan(&top).Error
	if err == nil && top == 0 {
		err = errors.New("the desired_version counter is missing")
	}
	return top - int64(n), err
}

// applyDesired changes these devices' desired state to version.
func applyDesired(tx *gorm.DB, ids []string, ch *DesiredChange, version int64, at time.Time) error {
	set := map[string]any{
		"desired_version":    version,
		"desired_updated_at": at,
	}
	if ch.Emergency != nil {
		set["emergency_enabled"] = ch.Emergency.Enabled
		set["emergency_message"] = ch.Emergency.Message
		set["emergency_url"] = ch.Emergency.URL
	}
	if ch.LoopPaused != nil {
		set["loop_paused"] = *ch.LoopPaused
	}
	for _, chunk := range chunks(ids, 1000) {
		if err := tx.Model(&Device{}).Where("id IN ?", chunk).Updates(set).Error; err != nil {
			return err
		}
	}
	return nil
}

// supersededBy is the detail of a command a later desired change replaced.
const supersededBy = "superseded by dispatch "

// supersede marks the devices' open commands of ch.Supersedes expired, as
// replaced by dispatch by, and returns their ids. Call it before the batch's
// own commands are written (writeDispatches supersedes those in memory).
func supersede(tx *gorm.DB, ids []string, ch *DesiredChange, by string) ([]string, error) {
	if len(ch.Supersedes) == 0 {
		return nil, nil
	}
	var done []string
	for _, chunk := range chunks(ids, 1000) {
		var got []string
		err := tx.Raw(`UPDATE commands SET state = ?, detail = ? WHERE device_id IN ? AND function IN ? AND `+openStates+` RETURNING id`,
			StateExpired, supersededBy+by, chunk, ch.Supersedes).Scan(&got).Error
		if err != nil {
			return nil, err
		}
		done = append(done, got...)
	}
	return done, nil
}

// findByIDs reads the rows of T among ids that exist, in no particular order,
// a thousand ids per query.
func findByIDs[T any](ctx context.Context, db *gorm.DB, ids []string, op string) ([]T, error) {
	var out []T
	for _, chunk := range chunks(ids, 1000) {
		var got []T
		if err := db.WithContext(ctx).Where("id IN ?", chunk).Find(&got).Error; err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

func rowsOrNotFound(op string, res *gorm.DB) error {
	if res.Error != nil {
		return wrap(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return wrap(op, ErrNotFound)
	}
	return nil
}

func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}
