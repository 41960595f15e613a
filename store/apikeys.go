package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// CreateAPIKey inserts a new API key.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey) error {
	return wrap("create api key", s.db.WithContext(ctx).Create(k).Error)
}

// APIKeys lists the keys that are not revoked, newest first.
func (s *Store) APIKeys(ctx context.Context, p Page) ([]APIKey, int64, error) {
	q := s.db.WithContext(ctx).Model(&APIKey{}).Where("revoked_at IS NULL")
	return listPage[APIKey](q, p, "created_at DESC, id DESC", "api keys")
}

// APIKey returns a key that is not revoked.
func (s *Store) APIKey(ctx context.Context, id string) (*APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Where("id = ? AND revoked_at IS NULL", id).Take(&k).Error
	return &k, wrap("get api key", err)
}

// RevokedAPIKey returns a key that was revoked: its name and prefix stay,
// to name it where its calls and dispatches are listed.
func (s *Store) RevokedAPIKey(ctx context.Context, id string) (*APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Where("id = ? AND revoked_at IS NOT NULL", id).Take(&k).Error
	return &k, wrap("get revoked api key", err)
}

// APIKeyByHash finds a live key by its lookup hash. Unknown and revoked keys take the
// same path (one indexed query that finds nothing), so callers cannot tell them apart.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (*APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Where("lookup_hash = ? AND revoked_at IS NULL", hash).Take(&k).Error
	return &k, wrap("get api key by hash", err)
}

// EditAPIKey reads a live key, lets edit change its name and limits, and saves
// them, in one transaction that holds the key (SQLite's write lock, or the row's
// lock on PostgreSQL): two edits at once are made one after the other, each
// over the other's result, and neither is lost. An error from edit is returned
// as it is, with nothing saved. edit must not use the store: on SQLite it would
// wait for a connection that writers queued behind this transaction may hold.
func (s *Store) EditAPIKey(ctx context.Context, id string, edit func(*APIKey) error) error {
	var editErr error
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var k APIKey
		if err := forUpdate(tx).Where("id = ? AND revoked_at IS NULL", id).Take(&k).Error; err != nil {
			return err
		}
		if editErr = edit(&k); editErr != nil {
			return editErr
		}
		return tx.Model(&APIKey{}).Where("id = ?", id).Updates(map[string]any{
			"name": k.Name, "disabled": k.Disabled, "expires_at": k.ExpiresAt, "scope_actions": k.ScopeActions,
			"scope_groups": k.ScopeGroups, "methods": k.Methods, "cidrs": k.CIDRs, "rate_per_sec": k.RatePerSec, "rate_burst": k.RateBurst,
		}).Error
	})
	if editErr != nil {
		return editErr // not wrap's: its reading of a database's error must not recast the caller's
	}
	return wrap("update api key", err)
}

// RevokeAPIKey makes a key stop working and forgets its sealed value.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res := s.db.WithContext(ctx).Model(&APIKey{}).
		Where("id = ? AND revoked_at IS NULL", id).
		Updates(map[string]any{"revoked_at": at, "sealed": ""})
	if res.Error != nil {
		return wrap("revoke api key", res.Error)
	}
	if res.RowsAffected == 0 {
		return wrap("revoke api key", ErrNotFound)
	}
	return nil
}

// KeyUse is when and from where a key was last used.
type KeyUse struct {
	At   time.Time
	From string
}

// TouchAPIKeys records the last use of several keys at once; the webhook path
// collects uses in memory and flushes them here, off the request's hot path.
func (s *Store) TouchAPIKeys(ctx context.Context, uses map[string]KeyUse) error {
	if len(uses) == 0 {
		return nil
	}
	return wrap("touch api keys", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for id, u := range uses {
			err := tx.Model(&APIKey{}).Where("id = ?", id).
				Updates(map[string]any{"last_used_at": u.At, "last_used_from": u.From}).Error
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

// CreateAdminToken inserts an admin token.
func (s *Store) CreateAdminToken(ctx context.Context, t *AdminToken) error {
	return wrap("create admin token", s.db.WithContext(ctx).Create(t).Error)
}

// AdminTokenByHash finds an admin token by its hash.
func (s *Store) AdminTokenByHash(ctx context.Context, hash string) (*AdminToken, error) {
	var t AdminToken
	err := s.db.WithContext(ctx).Where("hash = ?", hash).Take(&t).Error
	return &t, wrap("get admin token", err)
}

// TouchAdminToken records when an admin token was last used.
func (s *Store) TouchAdminToken(ctx context.Context, id string, at time.Time) error {
	err := s.db.WithContext(ctx).Model(&AdminToken{}).Where("id = ?", id).Update("last_used_at", at).Error
	return wrap("touch admin token", err)
}

// AdminTokens lists admin tokens, newest first.
func (s *Store) AdminTokens(ctx context.Context) ([]AdminToken, error) {
	var ts []AdminToken
	err := s.db.WithContext(ctx).Order("created_at DESC").Find(&ts).Error
	return ts, wrap("list admin tokens", err)
}

// CountAdminTokens tells whether any admin token exists (first start creates one).
func (s *Store) CountAdminTokens(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&AdminToken{}).Count(&n).Error
	return n, wrap("count admin tokens", err)
}

// DeleteAdminToken removes an admin token.
func (s *Store) DeleteAdminToken(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&AdminToken{})
	if res.Error != nil {
		return wrap("delete admin token", res.Error)
	}
	if res.RowsAffected == 0 {
		return wrap("delete admin token", ErrNotFound)
	}
	return nil
}
