package store

import (
	"context"

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

// AnySealedAPIKey returns the sealed plaintext of some API key, or "" if there
// is none: enough to tell whether the server secret opens what was sealed.
func (s *Store) AnySealedAPIKey(ctx context.Context) (string, error) {
	var sealed []string
	err := s.db.WithContext(ctx).Model(&APIKey{}).Where("sealed <> ''").Limit(1).Pluck("sealed", &sealed).Error
	if err != nil || len(sealed) == 0 {
		return "", wrap("read a sealed api key", err)
	}
	return sealed[0], nil
}

// ProbeWrite makes a write that changes nothing, to tell whether the database
// takes writes.
func (s *Store) ProbeWrite(ctx context.Context) error {
	return wrap("probe write", s.db.WithContext(ctx).Exec(`UPDATE counters SET value = value WHERE name = ?`, desiredCounter).Error)
}
