package auth

import (
	"context"

	"devicehooks/secrets"
	"devicehooks/store"
)

// Users manages the web UI's admin accounts and sessions.
type Users struct {
	st *store.Store
	kr *secrets.Keyring
}

// NewUsers returns the account service.
func NewUsers(st *store.Store, kr *secrets.Keyring) *Users {
	return &Users{st: st, kr: kr}
}

// EnsureFirstAdmin creates the first admin account at first start, with the given
// password or a generated one, and returns the generated password to print once
// ("" when none was generated or an account already exists).
func (u *Users) EnsureFirstAdmin(ctx context.Context, username, password string) (string, error) {
	return "", nil
}
