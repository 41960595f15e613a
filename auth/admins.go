package auth

import (
	"context"
	"errors"
	"time"

	"devicehooks/actions"
	"devicehooks/secrets"
	"devicehooks/store"
)

// MinBootstrapTokenLen is the shortest --admin-token accepted.
const MinBootstrapTokenLen = 32

// Admins authenticates callers of the management API.
type Admins struct {
	st        *store.Store
	kr        *secrets.Keyring
	bootstrap string
}

// NewAdmins returns the admin-token service. bootstrap is the --admin-token value
// (may be empty).
func NewAdmins(st *store.Store, kr *secrets.Keyring, bootstrap string) *Admins {
	return &Admins{st: st, kr: kr, bootstrap: bootstrap}
}

// HasBootstrap tells whether a --admin-token is set: it works beside the
// stored tokens, but is in no list.
func (a *Admins) HasBootstrap() bool { return a.bootstrap != "" }

var errAdminUnauthorized = &actions.Error{Code: actions.CodeUnauthorized, Detail: "missing or invalid admin token"}

// Authenticate checks an admin token and returns a name for it.
func (a *Admins) Authenticate(ctx context.Context, token string) (string, error) {
	if token == "" || len(token) > 200 {
		return "", errAdminUnauthorized
	}
	if a.bootstrap != "" && secrets.Equal(token, a.bootstrap) {
		return "bootstrap", nil
	}
	t, err := a.st.AdminTokenByHash(ctx, a.kr.LookupHash(token))
	if errors.Is(err, store.ErrNotFound) {
		return "", errAdminUnauthorized
	}
	if err != nil {
		return "", err
	}
	// When it was last used, to the minute: a script calling the API in a loop
	// does not write on every call. Failing to record it does not fail the call.
	if now := time.Now().UTC(); t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= time.Minute {
		_ = a.st.TouchAdminToken(context.WithoutCancel(ctx), t.ID, now)
	}
	return t.Name, nil
}

// CreateToken makes an admin token and returns its plaintext once.
func (a *Admins) CreateToken(ctx context.Context, name string) (*store.AdminToken, string, error) {
	name, err := actions.RequiredName("name", name)
	if err != nil {
		return nil, "", err
	}
	plain := secrets.NewToken(secrets.AdminTokenPrefix)
	t := &store.AdminToken{
		ID: actions.NewID(), Name: name, Prefix: secrets.DisplayPrefix(plain),
		Hash: a.kr.LookupHash(plain), CreatedAt: time.Now().UTC(),
	}
	if err := a.st.CreateAdminToken(ctx, t); err != nil {
		return nil, "", err
	}
	return t, plain, nil
}

// EnsureFirstToken creates an admin token at first start when there is neither a
// bootstrap token nor any stored one, and returns its plaintext to print once.
func (a *Admins) EnsureFirstToken(ctx context.Context) (string, error) {
	if a.bootstrap != "" {
		return "", nil
	}
	n, err := a.st.CountAdminTokens(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	_, plain, err := a.CreateToken(ctx, "first start")
	return plain, err
}
