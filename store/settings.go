package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Setting returns a setting's value, or ErrNotFound.
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	var st Setting
	err := s.db.WithContext(ctx).Where("name = ?", name).Take(&st).Error
	return st.Value, wrap("read setting", err)
}

// SetSettingOnce stores a setting unless it is already set, and returns the
// value stored: value, or the one set before (by another instance, say).
func (s *Store) SetSettingOnce(ctx context.Context, name, value string) (string, error) {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Name: name, Value: value}).Error
	if err != nil {
		return "", wrap("set setting", err)
	}
	return s.Setting(ctx, name)
}

// SealedAPIKeys returns the sealed plaintexts of up to n API keys: enough to
// tell whether the server secret opens what was sealed.
func (s *Store) SealedAPIKeys(ctx context.Context, n int) ([]string, error) {
	var sealed []string
	err := s.db.WithContext(ctx).Model(&APIKey{}).Where("sealed <> ''").Limit(n).Pluck("sealed", &sealed).Error
	return sealed, wrap("read sealed api keys", err)
}

// HasCredentials tells whether the database holds any API key, admin token,
// admin user or device: anything made under a server secret.
func (s *Store) HasCredentials(ctx context.Context) (bool, error) {
	for _, model := range []any{&APIKey{}, &AdminToken{}, &AdminUser{}, &Device{}} {
		var ids []string
		if err := s.db.WithContext(ctx).Model(model).Limit(1).Pluck("id", &ids).Error; err != nil {
			return false, wrap("look for credentials", err)
		}
		if len(ids) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// probeSize is the size of ProbeWrite's row: as much new space as a trigger
// to a few hundred devices takes.
const probeSize = 64 << 10

// ProbeWrite writes a row of probeSize incompressible bytes and deletes it,
// each in a transaction of its own, to tell whether the database takes
// writes: ones that need new space, as a trigger's do. On a full disk a write
// that changes nothing, or only pages already written, still works
// (SQLite's write-ahead log keeps its slack) while every trigger fails.
//
// On SQLite the probe's row goes into pages a probe before freed, and its
// commit into the WAL's slack, even while the database file cannot grow:
// while the background checkpoints fail (the WAL can no longer be copied
// into the file), the probe fails too.
//
// On PostgreSQL the probe also takes the locks a trigger's writes take (its
// inserts, and the rows of devices and counters a change of desired state
// locks and updates), so that a table the trigger path writes held by
// another (an ALTER TABLE or a LOCK TABLE on commands, say) makes it wait,
// and fail at ctx's end, as the triggers do: PostgreSQL has no database-wide
// write lock that the probe's own table would share with them.
func (s *Store) ProbeWrite(ctx context.Context) error {
	if s.checkpointFailing.Load() {
		return errors.New("store: probe write: checkpoints fail: the WAL cannot be copied into the database (a full disk?)")
	}
	data := make([]byte, probeSize/2)
	rand.Read(data)
	probe := WriteProbe{ID: uuid.NewString(), Data: hex.EncodeToString(data)}
	db := s.db.WithContext(ctx)
	err := db.Transaction(func(tx *gorm.DB) error {
		if s.postgres {
			if err := tx.Exec(`LOCK TABLE dispatches, commands, idempotencies, devices, counters IN ROW EXCLUSIVE MODE`).Error; err != nil {
				return err
			}
		}
		return tx.Create(&probe).Error
	})
	if err != nil {
		return wrap("probe write", err)
	}
	// Any left by a probe whose delete failed go too.
	return wrap("probe write: delete", db.Where("id IS NOT NULL").Delete(&WriteProbe{}).Error)
}
