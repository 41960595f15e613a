package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"devicehooks/internal/wallclock"
)

// userModels are the web UI's tables, migrated with the rest.
var userModels = []any{&AdminUser{}, &Session{}}

// AdminUser is a person who signs in to the web UI. PasswordHash is a modern
// password hash (argon2id, PHC string format), never the password.
type AdminUser struct {
	ID           string     `gorm:"primaryKey;size:36"`
	Username     string     `gorm:"size:100;not null;uniqueIndex"`
	PasswordHash string     `gorm:"size:200;not null"`
	CreatedAt    time.Time  `gorm:"not null"`
	UpdatedAt    time.Time  `gorm:"not null"`
	LastLoginAt  *time.Time `gorm:""`
}

// Session is a signed-in browser. ID is the lookup hash of the session cookie's
// value, so a copy of the database signs nobody in. A session ends at ExpiresAt,
// which use pushes forward (auth bounds it by CreatedAt plus a maximum age), or
// at sign-out.
type Session struct {
	ID        string    `gorm:"primaryKey;size:64"`
	UserID    string    `gorm:"size:36;not null;index"`
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// CountAdminUsers tells whether any admin account exists (first start creates one).
func (s *Store) CountAdminUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&AdminUser{}).Count(&n).Error
	return n, wrap("count admin users", err)
}

// CreateAdminUser inserts an admin account; a taken username is ErrConflict.
func (s *Store) CreateAdminUser(ctx context.Context, u *AdminUser) error {
	return wrap("create admin user", s.db.WithContext(ctx).Create(u).Error)
}

// AdminUser returns one admin account.
func (s *Store) AdminUser(ctx context.Context, id string) (*AdminUser, error) {
	var u AdminUser
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	return &u, wrap("get admin user", err)
}

// AdminUserByName returns the admin account with that username.
func (s *Store) AdminUserByName(ctx context.Context, username string) (*AdminUser, error) {
	var u AdminUser
	err := s.db.WithContext(ctx).Where("username = ?", username).Take(&u).Error
	return &u, wrap("get admin user by name", err)
}

// SetAdminPassword replaces an account's password hash and ends every
// session of it but keepSession ("" for none: a reset), in one transaction.
// An unknown account is ErrNotFound.
func (s *Store) SetAdminPassword(ctx context.Context, id, hash, keepSession string) error {
	return wrap("set admin password", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&AdminUser{}).Where("id = ?", id).
			Updates(map[string]any{"password_hash": hash, "updated_at": wallclock.Now()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		return tx.Where("user_id = ? AND id <> ?", id, keepSession).Delete(&Session{}).Error
	}))
}

// AdminUsernames lists the usernames of every admin account, in order.
func (s *Store) AdminUsernames(ctx context.Context) ([]string, error) {
	var names []string
	err := s.db.WithContext(ctx).Model(&AdminUser{}).Order("username").Pluck("username", &names).Error
	return names, wrap("list admin users", err)
}

// StartSession inserts a session and records the sign-in, in one
// transaction, if the account's password hash is still checked, the one the
// sign-in verified: a sign-in that raced a password change or reset gets
// ErrNotFound and no session. (The update locks the account's row on
// PostgreSQL, so a reset that comes after it also deletes this session.)
func (s *Store) StartSession(ctx context.Context, sess *Session, checked string) error {
	return wrap("start session", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&AdminUser{}).Where("id = ? AND password_hash = ?", sess.UserID, checked).
			Update("last_login_at", sess.CreatedAt)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		return tx.Create(sess).Error
	}))
}

// RehashAdminPassword replaces an account's password hash with a stronger one
// of the same password, unless the hash changed since it was read (a reset or
// a change in between is kept).
func (s *Store) RehashAdminPassword(ctx context.Context, id, old, hash string) error {
	err := s.db.WithContext(ctx).Model(&AdminUser{}).Where("id = ? AND password_hash = ?", id, old).
		Update("password_hash", hash).Error
	return wrap("rehash admin password", err)
}

// SessionByID returns a session that has not expired at now.
func (s *Store) SessionByID(ctx context.Context, id string, now time.Time) (*Session, error) {
	var sess Session
	err := s.db.WithContext(ctx).Where("id = ? AND expires_at > ?", id, now).Take(&sess).Error
	return &sess, wrap("get session", err)
}

// ExtendSession moves a session's expiry (it was used).
func (s *Store) ExtendSession(ctx context.Context, id string, expires time.Time) error {
	err := s.db.WithContext(ctx).Model(&Session{}).Where("id = ?", id).Update("expires_at", expires).Error
	return wrap("extend session", err)
}

// DeleteSession ends one session; ending one that is gone is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return wrap("delete session", s.db.WithContext(ctx).Where("id = ?", id).Delete(&Session{}).Error)
}

// PurgeSessions deletes sessions that expired before now and returns how many.
func (s *Store) PurgeSessions(ctx context.Context, now time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at <= ?", now).Delete(&Session{})
	return res.RowsAffected, wrap("purge sessions", res.Error)
}
