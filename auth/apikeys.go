// Package auth authenticates the three kinds of callers: webhook callers by API
// key, admins and scripts by admin token, and players by device token. No secret
// is kept in plaintext: each is found by an HMAC under the server secret, and API
// keys are also sealed (AES-GCM) so an admin can reveal them again.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"devicehooks/actions"
	"devicehooks/internal/logevery"
	"devicehooks/secrets"
	"devicehooks/store"
)

// errUnauthorized is the one answer for every bad credential, so callers learn
// nothing about why.
var errUnauthorized = &actions.Error{Code: actions.CodeUnauthorized, Detail: "unknown API key, or one that is revoked, disabled or expired"}

// ErrBadLink refuses a signed link whose signature, key or fields do not
// hold, all alike (as errUnauthorized does for keys).
var ErrBadLink = &actions.Error{Code: actions.CodeUnauthorized,
	Detail: "invalid signed link: it was changed or cut short, or its API key was revoked, disabled or deleted; ask for a new link"}

// Keys manages webhook API keys.
type Keys struct {
	st  *store.Store
	kr  *secrets.Keyring
	log *slog.Logger

	mu      sync.RWMutex
	cache   map[string]cachedKey // by lookup hash; live keys only
	gen     atomic.Uint64        // bumped by every revoke and update
	lookups singleflight.Group   // reads of keys not cached, by generation and hash
	rates   limiters

	usesMu sync.Mutex
	uses   map[string]store.KeyUse

	unreadable *logevery.Limiter // logUnreadable's lines, per key
}

type cachedKey struct {
	caller *Caller
	at     time.Time
}

// keyCacheTTL bounds how long another instance sharing the database may accept a
// key revoked elsewhere; the instance that revokes forgets it at once.
const keyCacheTTL = 10 * time.Second

// NewKeys returns the API key service.
func NewKeys(st *store.Store, kr *secrets.Keyring, log *slog.Logger) *Keys {
	return &Keys{
		st: st, kr: kr, log: log, cache: map[string]cachedKey{}, uses: map[string]store.KeyUse{},
		rates: limiters{m: map[string]*bucket{}}, unreadable: logevery.New(10 * time.Second),
	}
}

// Create makes a new API key and returns it with its plaintext, which the caller
// shows once (it can be revealed again later).
func (k *Keys) Create(ctx context.Context, name string, limits Limits) (*store.APIKey, string, error) {
	if err := k.Check(ctx, name, "", &limits, Limits{}); err != nil {
		return nil, "", err
	}
	name, _ = actions.RequiredName("name", name) // trimmed
	plain := secrets.NewToken(secrets.APIKeyPrefix)
	sealed, err := k.kr.Seal(plain)
	if err != nil {
		return nil, "", err
	}
	key := &store.APIKey{
		ID: actions.NewID(), Name: name, Prefix: secrets.DisplayPrefix(plain),
		LookupHash: k.kr.LookupHash(plain), Sealed: sealed, CreatedAt: time.Now().UTC(),
	}
	limits.store(key)
	if err := k.st.CreateAPIKey(ctx, key); err != nil {
		return nil, "", err
	}
	return key, plain, nil
}

// Authenticate returns the caller for a key's plaintext, or an unauthorized
// error. An unknown and a revoked key take the same path and get the same error;
// a disabled or expired key gets the same error too.
func (k *Keys) Authenticate(ctx context.Context, plain string) (*Caller, error) {
	if plain == "" || len(plain) > 200 {
		return nil, errUnauthorized
	}
	hash := k.kr.LookupHash(plain)
	now := time.Now()
	k.mu.RLock()
	c, ok := k.cache[hash]
	k.mu.RUnlock()
	if !ok || now.Sub(c.at) >= keyCacheTTL {
		var err error
		if c, err = k.lookup(ctx, hash); err != nil {
			return nil, err
		}
	}
	if !secrets.Equal(c.caller.Key.LookupHash, hash) || !c.caller.usable(now) {
		return nil, errUnauthorized
	}
	return c.caller, nil
}

// keyLookupTimeout bounds a key's database read: a call whose key cannot be
// checked in that time is answered 503 (try again), rather than held while the
// database is stuck (a lock on api_keys, say).
const keyLookupTimeout = 5 * time.Second

// lookup reads a key from the database into the cache. The calls that need
// the same key at once share one read (as many as arrive while its cache
// entry is renewed), though not one begun before a change of any key: a call
// that comes after a revoke must not be answered by a read from before it.
func (k *Keys) lookup(ctx context.Context, hash string) (cachedKey, error) {
	gen := k.gen.Load()
	ch := k.lookups.DoChan(strconv.FormatUint(gen, 10)+" "+hash, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyLookupTimeout)
		defer cancel()
		key, err := k.st.APIKeyByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errUnauthorized
		}
		if err != nil {
			return nil, unavailable(err)
		}
		c := cachedKey{caller: newCaller(key), at: time.Now()}
		if err := c.caller.badRead; err != nil {
			k.logUnreadable(key, err)
		}
		k.mu.Lock()
		if len(k.cache) > 10000 {
			k.cache = map[string]cachedKey{}
		}
		// A revoke or update that ran while we read may have read-before-written
		// this row: cache only what no change has overtaken.
		if k.gen.Load() == gen {
			k.cache[hash] = c
		}
		k.mu.Unlock()
		return c, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return cachedKey{}, r.Err
		}
		return r.Val.(cachedKey), nil
	case <-ctx.Done():
		return cachedKey{}, unavailable(ctx.Err())
	}
}

// logUnreadable says why a key is refused though its caller holds it
// (ReadLimits): once per key every 10 s, with how many were left out since
// (a signed link is checked at every call, not cached).
func (k *Keys) logUnreadable(key *store.APIKey, err error) {
	ok, skipped := k.unreadable.Allow(key.ID, time.Now())
	if !ok {
		return
	}
	attrs := []any{"key", key.ID, "prefix", key.Prefix, "err", err}
	if skipped > 0 {
		attrs = append(attrs, "more_since_last", skipped)
	}
	k.log.Error("an API key is refused: its stored limits cannot be read; revoke it and create another", attrs...)
}

// Limit takes one request from the caller's rate, or returns a rate-limited
// error (see RetryAfterSeconds). refund gives it back, for a call that turned
// out to cost nothing (a repeat answered from its idempotency record).
func (k *Keys) Limit(c *Caller) (refund func(), err error) { return k.rates.allow(c, time.Now()) }

// Edit changes a live key's name and limits, which apply at once: edit gets
// them as they are and returns them changed. They are checked and saved in one
// transaction that holds the key, so that two edits at once are made one after
// the other, each over the other's result. edit must not use the store
// (store.EditAPIKey says why).
func (k *Keys) Edit(ctx context.Context, id string, edit func(name string, l Limits) (string, Limits, error)) error {
	var hash string
	err := k.st.EditAPIKey(ctx, id, func(key *store.APIKey) error {
		had, err := ReadLimits(key)
		if err != nil { // what an edit keeps of them would restrict less than meant
			return actions.Errorf(actions.CodeConflict, "this key's stored limits cannot be read (%v): revoke it and create another", err)
		}
		name, limits, err := edit(key.Name, had)
		if err != nil {
			return err
		}
		if name, err = actions.KeptName("name", name, key.Name); err != nil {
			return err
		}
		if err := limits.Validate(LimitsOf(key)); err != nil { // a copy of had: edit may have changed its own
			return err
		}
		key.Name = name
		limits.store(key)
		hash = key.LookupHash
		return nil
	})
	if hash != "" {
		k.forget(hash)
	}
	return err
}

// forget drops a key from the cache after its row changed; the generation makes
// a lookup that read the old row before the change skip caching it.
func (k *Keys) forget(hash string) {
	k.mu.Lock()
	k.gen.Add(1)
	delete(k.cache, hash)
	k.mu.Unlock()
}

// unavailable reports a failure to check a key (the database is away): 503, so
// callers retry, rather than a 401 they would take as final.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", actions.Errorf(actions.CodeUnavailable, "could not check the API key; try again"), err)
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
	err = k.st.RevokeAPIKey(ctx, id, time.Now().UTC())
	k.forget(key.LookupHash)
	return err
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
			// Not cancelled by shutdown mid-write: the uses are already taken
			// from the map, and the final flush would not see them.
			k.flush(context.WithoutCancel(ctx), false)
		case <-ctx.Done():
			k.flush(context.WithoutCancel(ctx), true)
			return
		}
	}
}

// flush writes the uses; last is the flush at shutdown, which no retry follows.
func (k *Keys) flush(ctx context.Context, last bool) {
	k.usesMu.Lock()
	uses := k.uses
	k.uses = map[string]store.KeyUse{}
	k.usesMu.Unlock()
	err := k.st.TouchAPIKeys(ctx, uses)
	if err == nil {
		return
	}
	if last {
		k.log.Error("record api key use: not written at stop", "keys", len(uses), "err", err)
		return
	}
	k.log.Error("record api key use; will retry", "keys", len(uses), "err", err)
	// Keep them for the next flush, unless a key was used again meanwhile.
	k.usesMu.Lock()
	defer k.usesMu.Unlock()
	for id, u := range uses {
		if cur, ok := k.uses[id]; !ok || cur.At.Before(u.At) {
			k.uses[id] = u
		}
	}
}
