package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/internal/testenv"
	"devicehooks/secrets"
	"devicehooks/store"
)

func newTestKeys(t *testing.T) *Keys {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := secrets.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return NewKeys(st, kr, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestRevokeIsImmediateUnderLoad authenticates a key from several goroutines while
// it is revoked: once Revoke returns, no call may succeed, even though lookups
// running during the revoke read the row before it changed.
func TestRevokeIsImmediateUnderLoad(t *testing.T) {
	k := newTestKeys(t)
	ctx := context.Background()
	for round := 0; round < 30; round++ {
		key, plain, err := k.Create(ctx, "k", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var (
			stop    atomic.Bool
			wg      sync.WaitGroup
			revoked atomic.Bool
			late    atomic.Int64
		)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					after := revoked.Load()
					if _, err := k.Authenticate(ctx, plain); err == nil && after {
						late.Add(1)
					}
				}
			}()
		}
		if err := k.Revoke(ctx, key.ID); err != nil {
			t.Fatal(err)
		}
		revoked.Store(true)
		for i := 0; i < 200; i++ {
			if _, err := k.Authenticate(ctx, plain); err == nil {
				late.Add(1)
			}
		}
		stop.Store(true)
		wg.Wait()
		if n := late.Load(); n > 0 {
			t.Fatalf("round %d: a revoked key authenticated %d times after Revoke returned", round, n)
		}
	}
}

// TestDisabledAndExpiredKeysLookUnknown: both answer exactly like an unknown key.
func TestDisabledAndExpiredKeysLookUnknown(t *testing.T) {
	k := newTestKeys(t)
	ctx := context.Background()
	_, unknownErr := k.Authenticate(ctx, "dhk_unknown")
	key, plain, err := k.Create(ctx, "k", Limits{Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	_, disabledErr := k.Authenticate(ctx, plain)
	if disabledErr == nil || disabledErr.Error() != unknownErr.Error() || actions.ErrorCode(disabledErr) != actions.CodeUnauthorized {
		t.Fatalf("disabled: %v, unknown: %v", disabledErr, unknownErr)
	}
	if err := k.Edit(ctx, key.ID, func(string, Limits) (string, Limits, error) { return "k", Limits{}, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Authenticate(ctx, plain); err != nil {
		t.Fatalf("enabled again: %v", err)
	}
	var ae *actions.Error
	if err := k.Edit(ctx, key.ID, func(string, Limits) (string, Limits, error) { return "k", Limits{CIDRs: []string{"x"}}, nil }); !errors.As(err, &ae) || ae.Field != "cidrs[0]" {
		t.Fatalf("bad cidr: %v", err)
	}
	// Every bad range is named at once, at the first one's place: a form's
	// text area shows them all, not one per save.
	l := Limits{CIDRs: []string{"10.0.0.0/8", "10.0.0.0/33", "foo"}}
	if err := l.Validate(Limits{}); !errors.As(err, &ae) || ae.Field != "cidrs[1]" ||
		ae.Detail != `"10.0.0.0/33" and "foo" are not addresses or CIDR ranges` {
		t.Fatalf("two bad ranges: %v", err)
	}
}

// A key whose stored limits do not read (a row edited by hand) is refused,
// not used as if it had none: a scope or ranges that read as empty would
// restrict nothing. An edit, which would keep what it read, is refused too.
func TestUnreadableLimitsRefuseTheKey(t *testing.T) {
	for name, broken := range map[string]func(*store.APIKey){
		"a scope that is not JSON":    func(k *store.APIKey) { k.ScopeActions = `["a1"` },
		"a range that does not parse": func(k *store.APIKey) { k.CIDRs = `["10.0.0.0/8x"]` },
	} {
		t.Run(name, func(t *testing.T) {
			k := newTestKeys(t)
			ctx := context.Background()
			key, plain, err := k.Create(ctx, "k", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := k.st.EditAPIKey(ctx, key.ID, func(key *store.APIKey) error { broken(key); return nil }); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Authenticate(ctx, plain); actions.ErrorCode(err) != actions.CodeUnauthorized {
				t.Fatalf("authenticated with unreadable limits: %v", err)
			}
			rename := func(_ string, l Limits) (string, Limits, error) { return "renamed", l, nil }
			if err := k.Edit(ctx, key.ID, rename); actions.ErrorCode(err) != actions.CodeConflict {
				t.Fatalf("an edit of unreadable limits: %v", err)
			}
		})
	}
}

// A key's last use whose write fails is written at a later flush, not lost.
func TestKeyUseRetriesAFailedWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "uses.db")
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exec := testenv.SQLiteSide(t, path)
	kr, err := secrets.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	var log testenv.Buffer
	k := NewKeys(st, kr, slog.New(slog.NewTextHandler(&log, nil)))
	key, _, err := k.Create(ctx, "k", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	exec(`CREATE TRIGGER down BEFORE UPDATE ON api_keys BEGIN SELECT RAISE(ABORT, 'injected'); END`)
	k.Used(key.ID, "10.0.0.7")
	k.flush(ctx, false)
	if got, _ := st.APIKey(ctx, key.ID); got.LastUsedAt != nil {
		t.Fatal("the use was written through the failing trigger")
	}
	if !strings.Contains(log.String(), "record api key use; will retry") {
		t.Errorf("the failed write's log: %s", log.String())
	}
	exec(`DROP TRIGGER down`)
	k.flush(ctx, false)
	got, err := st.APIKey(ctx, key.ID)
	if err != nil || got.LastUsedAt == nil || got.LastUsedFrom != "10.0.0.7" {
		t.Fatalf("after writes work again: %+v %v", got, err)
	}

	// At shutdown no retry follows: the log says what is not written.
	exec(`CREATE TRIGGER down BEFORE UPDATE ON api_keys BEGIN SELECT RAISE(ABORT, 'injected'); END`)
	k.Used(key.ID, "10.0.0.8")
	stopped, stop := context.WithCancel(ctx)
	stop()
	before := len(log.String())
	k.Run(stopped, time.Hour)
	if last := log.String()[before:]; !strings.Contains(last, "record api key use: not written at stop") || strings.Contains(last, "will retry") {
		t.Errorf("the log of the flush at shutdown: %s", last)
	}
}

// A key's bucket fills at its rate up to its burst, and a token given back
// (a repeat that cost nothing) can be taken again at once.
func TestRateBucketGivesBack(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := newBucket(1, 2, now)
	for i := range 2 {
		if w := b.take(now); w != 0 {
			t.Fatalf("take %d within the burst: wait %v", i, w)
		}
	}
	if w := b.take(now); w != time.Second {
		t.Fatalf("take past the burst: wait %v, want 1s", w)
	}
	b.give(now)
	if w := b.take(now); w != 0 {
		t.Fatalf("take after a give: wait %v", w)
	}
	if w := b.take(now.Add(500 * time.Millisecond)); w != 500*time.Millisecond {
		t.Fatalf("half a token in: wait %v, want 500ms", w)
	}
	// A rate stored before the lowest was checked waits long, not never.
	slow := newBucket(1e-12, 1, now)
	if w := slow.take(now); w != 0 {
		t.Fatalf("a slow bucket's first take: wait %v", w)
	}
	if w := slow.take(now); w <= 0 {
		t.Fatalf("a slow bucket's second take: wait %v, want a long one", w)
	}
	later := now.Add(time.Hour)
	b.give(later)
	b.give(later)
	for i := range 2 {
		if w := b.take(later); w != 0 {
			t.Fatalf("take %d after an hour: wait %v", i, w)
		}
	}
	if w := b.take(later); w == 0 {
		t.Fatal("gives filled the bucket past its burst")
	}
}

// A key's methods are kept once each, in upper case, whatever was sent.
func TestLimitsMethodsOnceEach(t *testing.T) {
	l := Limits{Methods: []string{"post", "POST", " get"}}
	if err := l.Validate(Limits{}); err != nil || fmt.Sprint(l.Methods) != "[GET POST]" {
		t.Fatalf("methods %v, %v; want [GET POST]", l.Methods, err)
	}
}

// A key saved with a rate below MinRate, before there was one, can still be
// renamed (the rate it had stays valid, unchanged), but not given another.
func TestEditKeepsARateFromBeforeMinRate(t *testing.T) {
	k := newTestKeys(t)
	ctx := context.Background()
	key, _, err := k.Create(ctx, "slow", Limits{Rate: &Rate{PerSecond: 1, Burst: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.st.EditAPIKey(ctx, key.ID, func(key *store.APIKey) error { key.RatePerSec = 1e-12; return nil }); err != nil {
		t.Fatal(err)
	}
	keep := func(name string, l Limits) (string, Limits, error) { return "renamed", l, nil }
	if err := k.Edit(ctx, key.ID, keep); err != nil {
		t.Fatalf("a rename of a key with a rate from before MinRate: %v", err)
	}
	lower := func(name string, l Limits) (string, Limits, error) {
		return name, Limits{Rate: &Rate{PerSecond: 1e-11, Burst: 1}}, nil
	}
	var ae *actions.Error
	if err := k.Edit(ctx, key.ID, lower); !errors.As(err, &ae) || ae.Field != "rate.per_second" {
		t.Fatalf("another rate below MinRate: %v", err)
	}
}

// A name an older build let in (a tab) does not refuse a change that keeps
// it, such as disabling a leaked key; a new name is checked.
func TestEditKeepsANameFromAnOlderBuild(t *testing.T) {
	k := newTestKeys(t)
	ctx := context.Background()
	key, _, err := k.Create(ctx, "ok", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	const old = "CRM\tprod"
	if err := k.st.EditAPIKey(ctx, key.ID, func(key *store.APIKey) error { key.Name = old; return nil }); err != nil {
		t.Fatal(err)
	}
	disable := Limits{Disabled: true}
	if err := k.Check(ctx, old, old, &disable, Limits{}); err != nil {
		t.Fatalf("checking a change that keeps the name: %v", err)
	}
	if err := k.Edit(ctx, key.ID, func(name string, l Limits) (string, Limits, error) { return name, disable, nil }); err != nil {
		t.Fatalf("disabling a key whose name has a tab: %v", err)
	}
	var ae *actions.Error
	if err := k.Edit(ctx, key.ID, func(string, Limits) (string, Limits, error) { return "a\tb", disable, nil }); !errors.As(err, &ae) || ae.Field != "name" {
		t.Fatalf("a new name with a tab: %v", err)
	}
}
