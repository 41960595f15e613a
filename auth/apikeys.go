// Package auth authenticates the three kinds of callers: webhook callers by API
// key, admins and scripts by admin token, and players by device token. No secret
// is kept in plaintext: each is found by an HMAC under the server secret, and API
// keys are also sealed (AES-GCM) so an admin can reveal them again.
package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"devicehooks/actions"
	"devicehooks/secrets"
	"devicehooks/store"
)

// errUnauthorized is the one answer for every bad credential, so callers learn
// nothing about why.
var errUnauthorized = &actions.Error{Code: actions.CodeUnauthorized, Detail: "missing, unknown or revoked API key"}

// Keys manages webhook API keys.
type Keys struct {
	st  *store.Store
	kr  *secrets.Keyring
	log *slog.Logger

	mu    sync.RWMutex
	cache map[string]cachedKey // by lookup hash; live keys only

	usesMu sync.Mutex
	uses   map[string]store.KeyUse
}

type cachedKey struct {
	key *store.APIKey
	at  time.Time
}

// keyCacheTTL bounds how long another instance sharing the database may accept a
// key revoked elsewhere; the instance that revokes forgets it at once.
const keyCacheTTL = 10 * time.Second

// NewKeys returns the API key service.
func NewKeys(st *store.Store, kr *secrets.Keyring, log *slog.Logger) *Keys {
	return &Keys{st: st, kr: kr, log: log, cache: map[string]cachedKey{}, uses: map[string]store.KeyUse{}}
}

// Create makes a new API key and returns it with its plaintext, which the caller
// shows once (it can be revealed again later).
func (k *Keys) Create(ctx context.Context, name string) (*store.APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return nil, "", actions.Invalid("name", "is required (at most 200 characters)")
	}
	plain := secrets.NewToken(secrets.APIKeyPrefix)
	sealed, err := k.kr.Seal(plain)
	if err != nil {
		return nil, "", err
	}
	key := &store.APIKey{
		ID: actions.NewID(), Name: name, Prefix: secrets.DisplayPrefix(plain),
		LookupHash: k.kr.LookupHash(plain), Sealed: sealed, CreatedAt: time.Now().UTC(),
	}
	if err := k.st.CreateAPIKey(ctx, key); err != nil {
		return nil, "", err
	}
	return key, plain, nil
}

// Authenticate returns the live key for plaintext, or an unauthorized error. An
// unknown key and a revoked key take the same path and get the same error.
func (k *Keys) Authenticate(ctx context.Context, plain string) (*store.APIKey, error) {
	if plain == "" || len(plain) > 200 {
		return nil, errUnauthorized
	}
	hash := k.kr.LookupHash(plain)
	now := time.Now()
	k.mu.RLock()
	c, ok := k.cache[hash]
	k.mu.RUnlock()
	if ok && now.Sub(c.at) < keyCacheTTL && secrets.Equal(c.key.LookupHash, hash) {
		return c.key, nil
	}
	key, err := k.st.APIKeyByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if !secrets.Equal(key.LookupHash, hash) {
		return nil, errUnauthorized
	}
	k.mu.Lock()
	if len(k.cache) > 10000 {
		k.cache = map[string]cachedKey{}
	}
	k.cache[hash] = cachedKey{key: key, at: now}
	k.mu.Unlock()
	return key, nil
}

// Reveal returns a live key's plaintext, for an admin who needs to copy it again.
func (k *Keys) Reveal(ctx context.Context, id string) (string, error) {
	key, err := k.st.APIKey(ctx, id)
	if err != nil {
		return "", err
	}
	return k.kr.Open(key.Sealed)
}

// Revoke makes a key stop working at once.
func (k *Keys) Revoke(ctx context.Context, id string) error {
	key, err := k.st.APIKey(ctx, id)
	if err != nil {
		return err
	}
	k.mu.Lock()
	delete(k.cache, key.LookupHash)
	k.mu.Unlock()
	return k.st.RevokeAPIKey(ctx, id, time.Now().UTC())
}

// Used records a use of a key; Run writes uses to the database in batches.
func (k *Keys) Used(id, from string) {
	k.usesMu.Lock()
	k.uses[id] = store.KeyUse{At: time.Now().UTC(), From: from}
	k.usesMu.Unlock()
}

// Run flushes key uses every interval until ctx ends.
func (k *Keys) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			k.flush(ctx)
		case <-ctx.Done():
			k.flush(context.WithoutCancel(ctx))
			return
		}
	}
}

func (k *Keys) flush(ctx context.Context) {
	k.usesMu.Lock()
	uses := k.uses
	k.uses = map[string]store.KeyUse{}
	k.usesMu.Unlock()
	if err := k.st.TouchAPIKeys(ctx, uses); err != nil {
		k.log.Error("record api key use", "err", err)
	}
}
