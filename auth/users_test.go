package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/secrets"
	"devicehooks/store"
)

func TestMain(m *testing.M) {
	// Hashing is several times slower under -race, and the parallel tests share
	// hashSlots: do not let them fail as "busy" on a loaded machine.
	hashWait = time.Minute
	os.Exit(m.Run())
}

// newTestUsers returns the account service over a fresh SQLite database, with a
// clock the test moves.
func newTestUsers(t *testing.T) (*Users, *time.Time) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "users.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kr, err := secrets.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	u := NewUsers(st, kr)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u.clock = func() time.Time { return now }
	u.elapsed = u.clock
	u.FailDelay = time.Millisecond
	return u, &now
}

func TestEnsureFirstAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, _ := newTestUsers(t)
	pw, err := u.EnsureFirstAdmin(ctx, "", "")
	if err != nil || len(pw) != 20 {
		t.Fatalf("generated %q, %v", pw, err)
	}
	if _, _, err := u.SignIn(ctx, "admin", pw, "10.0.0.1", ""); err != nil {
		t.Fatalf("sign in with the generated password: %v", err)
	}
	again, err := u.EnsureFirstAdmin(ctx, "other", "another password")
	if err != nil || again != "" {
		t.Fatalf("second start: %q, %v", again, err)
	}
	if _, _, err := u.SignIn(ctx, "other", "another password", "10.0.0.1", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a second account was created: %v", err)
	}

	u2, _ := newTestUsers(t)
	if _, err := u2.EnsureFirstAdmin(ctx, "ops", "short"); err == nil {
		t.Fatal("a too-short --admin-password was accepted")
	}
	if _, err := u2.EnsureFirstAdmin(ctx, "bad name!", "long enough password"); err == nil {
		t.Fatal("a username with spaces was accepted")
	}
	if pw, err := u2.EnsureFirstAdmin(ctx, "ops", "long enough password"); err != nil || pw != "" {
		t.Fatalf("given password: %q, %v", pw, err)
	}
	if _, _, err := u2.SignIn(ctx, "ops", "long enough password", "10.0.0.1", ""); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := hashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !verifyPassword(h, "correct horse") || verifyPassword(h, "correct horsE") || needsRehash(h) {
		t.Fatal("verify")
	}
	h2, _ := hashPassword("correct horse")
	if h == h2 {
		t.Fatal("no salt")
	}
	for _, bad := range []string{
		"", "plain", strings.Replace(h, "m=19456", "m=99999999", 1), strings.Replace(h, "argon2id", "argon2i", 1),
		h[:len(h)-10],
	} {
		if verifyPassword(bad, "correct horse") {
			t.Errorf("accepted %q", bad)
		}
	}
	if !needsRehash(strings.Replace(h, "t=2", "t=1", 1)) {
		t.Error("old parameters do not need a rehash")
	}
}

// A lockout lasts lockoutFor as it passes, whatever the wall clock does
// meanwhile: through a step back of an hour, it lasted an hour longer.
func TestLockoutEndsThroughAClockStepBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	elapsed := *now
	u.elapsed = func() time.Time { return elapsed }
	for range maxUserFailures {
		_, _, _ = u.SignIn(ctx, "admin", "wrong", "10.0.0.1", "")
	}
	var locked *LockedOutError
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", ""); !errors.As(err, &locked) {
		t.Fatalf("after %d failures: %v", maxUserFailures, err)
	}
	*now = now.Add(-time.Hour) // NTP steps the wall clock back
	elapsed = elapsed.Add(lockoutFor)
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", ""); err != nil {
		t.Fatalf("%v after the lockout began, with the wall clock stepped back an hour: %v", lockoutFor, err)
	}
}

func TestSignInLockout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	for i := range maxUserFailures {
		if _, _, err := u.SignIn(ctx, "admin", "wrong", "10.0.0.1", ""); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	// Locked: even the right password is refused from that address.
	_, _, err := u.SignIn(ctx, "ADMIN", "right password", "10.0.0.1", "")
	var locked *LockedOutError
	if !errors.As(err, &locked) || !locked.Until.Equal(now.Add(lockoutFor)) || locked.Busy {
		t.Fatalf("after %d failures: %v", maxUserFailures, err)
	}
	*now = now.Add(lockoutFor)
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", ""); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// A success resets the count.
	for range maxUserFailures - 1 {
		_, _, _ = u.SignIn(ctx, "admin", "wrong", "10.0.0.2", "")
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.2", ""); err != nil {
		t.Fatalf("4 failures locked out: %v", err)
	}
	// Failures spread over more than the window do not add up.
	for range maxUserFailures - 1 {
		_, _, _ = u.SignIn(ctx, "admin", "wrong", "10.0.0.3", "")
	}
	*now = now.Add(failureWindow + time.Second)
	_, _, _ = u.SignIn(ctx, "admin", "wrong", "10.0.0.3", "")
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.3", ""); err != nil {
		t.Fatalf("old failures counted: %v", err)
	}
}

func TestSignInLockoutByAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, _ := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	// One address guessing many usernames.
	for i := range maxIPFailures {
		_, _, _ = u.SignIn(ctx, "user"+string(rune('a'+i)), "guess", "192.0.2.7", "")
	}
	var locked *LockedOutError
	if _, _, err := u.SignIn(ctx, "admin", "right password", "192.0.2.7", ""); !errors.As(err, &locked) {
		t.Fatalf("the address is not locked out: %v", err)
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "192.0.2.8", ""); err != nil {
		t.Fatalf("another address is locked out: %v", err)
	}
}

// Concurrent wrong passwords for one username from one address are all counted
// against the limit before any is checked: at most maxUserFailures are checked.
func TestSignInConcurrentAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	u.FailDelay = 0
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var bad, locked, other atomic.Int32
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			_, _, err := u.SignIn(ctx, "admin", "wrong", "10.0.0.1", "")
			var lo *LockedOutError
			switch {
			case errors.Is(err, ErrBadCredentials):
				bad.Add(1)
			case errors.As(err, &lo):
				locked.Add(1)
			default:
				other.Add(1)
				t.Errorf("SignIn: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if bad.Load() > maxUserFailures || bad.Load()+locked.Load() != 50 {
		t.Fatalf("%d checked, %d refused, %d other; want at most %d checked", bad.Load(), locked.Load(), other.Load(), maxUserFailures)
	}
	// The checked failures locked the username out from this address.
	_, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", "")
	var lo *LockedOutError
	if !errors.As(err, &lo) || lo.Busy || !lo.Until.Equal(now.Add(lockoutFor)) {
		t.Fatalf("after %d failures: %v", bad.Load(), err)
	}
}

// At most cap(hashSlots) argon2id hashes run at once, whatever the number of
// concurrent sign-ins and password changes; a request that gets no slot in time
// is refused as busy, and that refusal counts as no failure.
// Not parallel: it replaces argonIDKey and fills hashSlots.
func TestHashingIsBounded(t *testing.T) {
	ctx := context.Background()
	u, _ := newTestUsers(t)
	u.FailDelay = 0
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	n := 4*cap(hashSlots) + 8
	accs := make([]*Account, n) // a session each: a session's wrong guesses are limited
	for i := range accs {
		token, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", "")
		if err != nil {
			t.Fatal(err)
		}
		if accs[i], err = u.Authenticate(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	acc := accs[0]
	dummyHash() // made once, outside the watch

	var running, most atomic.Int32
	orig := argonIDKey
	t.Cleanup(func() { argonIDKey = orig })
	argonIDKey = func(_, _ []byte, _, _ uint32, _ uint8, keyLen uint32) []byte {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(10 * time.Millisecond) // long enough for the goroutines to overlap
		return make([]byte, keyLen)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() { // distinct names and addresses, so the lockout lets all through
			<-start
			if _, _, err := u.SignIn(ctx, fmt.Sprint("user", i), "guess", fmt.Sprint("10.1.0.", i), ""); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("SignIn: %v", err)
			}
		})
		wg.Go(func() {
			<-start
			if err := u.ChangePassword(ctx, accs[i], "wrong current", "new password!!", "new password!!"); actions.ErrorCode(err) != actions.CodeInvalidParams {
				t.Errorf("ChangePassword: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if m := most.Load(); m < 1 || int(m) > cap(hashSlots) {
		t.Fatalf("%d hashes ran at once; want 1 to %d", m, cap(hashSlots))
	}

	// Every slot taken: refused as busy after hashWait, or when ctx ends.
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	drain := sync.OnceFunc(func() {
		for range cap(hashSlots) {
			<-hashSlots
		}
	})
	t.Cleanup(drain)
	argonIDKey = orig
	wait := hashWait
	t.Cleanup(func() { hashWait = wait })
	hashWait = 20 * time.Millisecond
	for i := range maxUserFailures + 1 {
		_, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.2", "")
		var lo *LockedOutError
		if !errors.As(err, &lo) || !lo.Busy {
			t.Fatalf("SignIn %d without a free slot: %v", i+1, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := u.ChangePassword(short, acc, "right password", "new password!!", "new password!!"); actions.ErrorCode(err) != actions.CodeUnavailable {
		t.Fatalf("ChangePassword without a free slot: %v", err)
	}
	drain()
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.2", ""); err != nil {
		t.Fatalf("busy refusals were counted as failures: %v", err)
	}
}

// A flood of other entries must not sweep away an active lockout.
func TestSweepKeepsLockouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	for range maxUserFailures {
		_, _, _ = u.SignIn(ctx, "admin", "wrong", "10.0.0.1", "")
	}
	*now = now.Add(time.Minute)
	l := u.limiter
	l.mu.Lock()
	// Counters whose window has passed, newer ones with failures in theirs,
	// and the oldest of all: one near its limit, still in its window.
	const expired, recent = maxTracked / 10, maxTracked * 95 / 100
	for i := range expired {
		l.entries[fmt.Sprint("ip:old-", i)] = &failures{n: 3, first: now.Add(-2 * failureWindow)}
	}
	for i := range recent {
		l.entries[fmt.Sprint("ip:new-", i)] = &failures{n: 1, first: *now}
	}
	l.entries["u:target"] = &failures{n: maxUserFailuresAll - 1, first: now.Add(-10 * time.Minute)}
	l.mu.Unlock()
	_, _, _ = u.SignIn(ctx, "nobody", "guess", "10.0.0.9", "") // sweeps
	l.mu.Lock()
	n, target := len(l.entries), l.entries["u:target"]
	l.mu.Unlock()
	if n > recent+10 {
		t.Fatalf("%d entries after a sweep, want the expired ones gone", n)
	}
	if target == nil || target.n != maxUserFailuresAll-1 {
		t.Fatalf("the sweep dropped a counter with failures in its window: %+v", target)
	}
	var locked *LockedOutError
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", ""); !errors.As(err, &locked) {
		t.Fatalf("the sweep ended a lockout: %v", err)
	}
}

// A refused sign-in costs the caller nothing (no hash, no delay), so it must
// leave nothing behind either: no entry, however long its username.
func TestRefusedSignInsLeaveNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, _ := newTestUsers(t)
	wrong := strings.Repeat("x", MaxPasswordLen*4+1) // a failure that skips hashing, for speed
	for i := range maxIPFailures {
		_, _, _ = u.SignIn(ctx, fmt.Sprint("user", i), wrong, "10.0.0.1", "")
	}
	count := func() int {
		u.limiter.mu.Lock()
		defer u.limiter.mu.Unlock()
		return len(u.limiter.entries)
	}
	before := count()
	for i := range 1000 {
		name := fmt.Sprint(i, strings.Repeat("u", 60<<10))
		var locked *LockedOutError
		if _, _, err := u.SignIn(ctx, name, "guess", "10.0.0.1", ""); !errors.As(err, &locked) {
			t.Fatalf("attempt %d from a locked address: %v", i, err)
		}
	}
	if after := count(); after != before {
		t.Fatalf("refused sign-ins made %d entries", after-before)
	}
	u.limiter.mu.Lock()
	defer u.limiter.mu.Unlock()
	for k := range u.limiter.entries {
		if len(k) > 200 {
			t.Fatalf("an entry's key is %d bytes", len(k))
		}
	}
}

// One IPv6 host has a whole /64: its addresses count as one.
func TestSignInLockoutPerIPv6Prefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, _ := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("x", MaxPasswordLen*4+1)
	for i := range maxUserFailures {
		_, _, _ = u.SignIn(ctx, "admin", wrong, fmt.Sprintf("2001:db8:1:2::%x", i+1), "")
	}
	var locked *LockedOutError
	if _, _, err := u.SignIn(ctx, "admin", "right password", "2001:db8:1:2:ffff::9", ""); !errors.As(err, &locked) {
		t.Fatalf("another address of the same /64: %v", err)
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "2001:db8:1:3::1", ""); err != nil {
		t.Fatalf("another /64: %v", err)
	}
}

// Failures from one address do not lock the username out from another, until
// the username's failures from all addresses reach maxUserFailuresAll.
func TestSignInLockoutPerAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("x", MaxPasswordLen*4+1) // a failure that skips hashing, for speed
	for range maxUserFailures {
		_, _, _ = u.SignIn(ctx, "admin", wrong, "198.51.100.1", "")
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", ""); err != nil {
		t.Fatalf("failures from another address locked the admin out: %v", err)
	}
	// A guesser spread over many addresses, each below its own limits.
	for i := 1; i < maxUserFailuresAll/maxUserFailures; i++ {
		for range maxUserFailures {
			_, _, _ = u.SignIn(ctx, "admin", wrong, fmt.Sprint("198.51.100.", 1+i), "")
		}
	}
	var locked *LockedOutError
	_, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", "")
	if !errors.As(err, &locked) || locked.Busy || !locked.Until.Equal(now.Add(lockoutFor)) {
		t.Fatalf("after %d failures from many addresses: %v", maxUserFailuresAll, err)
	}
}

// A guesser spread over many addresses does not lock the admin out of a
// browser that signed in as admin before, from any address; nor does such a
// browser's cookie help another username, once changed, or once too old.
func TestKnownBrowserIsNotLockedOutByAGuesserElsewhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	known := u.KnownBrowser("admin") // given at a sign-in before the attack
	wrong := strings.Repeat("x", MaxPasswordLen*4+1)
	for i := range maxUserFailuresAll / maxUserFailures {
		for range maxUserFailures {
			_, _, _ = u.SignIn(ctx, "admin", wrong, fmt.Sprint("198.51.100.", 1+i), "")
		}
	}
	changed := known[:len(known)-1] + "A"
	if changed == known {
		changed = known[:len(known)-1] + "B"
	}
	var locked *LockedOutError
	for name, cookie := range map[string]string{
		"none": "", "another username's": u.KnownBrowser("ops"), "changed": changed,
		"respelled": "0" + known,
	} {
		if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", cookie); !errors.As(err, &locked) {
			t.Errorf("with %s cookie: %v, want locked out", name, err)
		}
	}
	for _, ip := range []string{"10.0.0.1", "203.0.113.9"} {
		if _, _, err := u.SignIn(ctx, "admin", "right password", ip, known); err != nil {
			t.Fatalf("a known browser at %s: %v", ip, err)
		}
	}
	// A known browser still meets its own address's limits.
	for range maxUserFailures {
		_, _, _ = u.SignIn(ctx, "admin", wrong, "10.0.0.7", known)
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.7", known); !errors.As(err, &locked) {
		t.Fatalf("a known browser past its address's limit: %v", err)
	}
	// A stolen cookie is worth maxKnownBrowserFailures guesses, from however
	// many addresses; then it is locked out too (and another browser of the
	// admin's is not).
	other := u.KnownBrowser("admin")
	for i := range maxKnownBrowserFailures {
		_, _, _ = u.SignIn(ctx, "admin", wrong, fmt.Sprint("192.0.2.", 1+i), known)
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "192.0.2.200", known); !errors.As(err, &locked) {
		t.Fatalf("a known browser past its own limit: %v", err)
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "192.0.2.200", other); err != nil {
		t.Fatalf("another known browser: %v", err)
	}
	// Locked out of its own count (by a thief), the owner's browser signs in
	// as any browser would, once the username's count lets it.
	*now = now.Add(lockoutFor + time.Second) // the username's lockout ends; not the cookie's window
	for i := range maxKnownBrowserFailures {
		_, _, _ = u.SignIn(ctx, "admin", wrong, fmt.Sprint("192.0.2.", 100+i), other)
	}
	if _, _, err := u.SignIn(ctx, "admin", "right password", "198.18.0.1", other); err != nil {
		t.Fatalf("the owner's browser after a thief locked its cookie: %v", err)
	}
	*now = now.Add(KnownBrowserFor + time.Minute)
	if u.knownBrowserSig(known, "admin", *now) != "" {
		t.Fatal("a known browser's cookie outlives KnownBrowserFor")
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "right password"); err != nil {
		t.Fatal(err)
	}
	token, _, err := u.SignIn(ctx, "admin", "right password", "10.0.0.1", "")
	if err != nil || !strings.HasPrefix(token, secrets.SessionPrefix) {
		t.Fatalf("token %q, %v", token, err)
	}
	acc, err := u.Authenticate(ctx, token)
	if err != nil || acc.User.Username != "admin" || acc.SessionID == token {
		t.Fatalf("authenticate: %+v, %v", acc, err)
	}
	for _, bad := range []string{"", "dhs_nope", token + "x", "dha_" + token[4:]} {
		if _, err := u.Authenticate(ctx, bad); actions.ErrorCode(err) != actions.CodeUnauthorized {
			t.Errorf("token %q: %v", bad, err)
		}
	}

	// Use keeps a session alive past its idle limit ...
	*now = now.Add(SessionIdle - time.Minute)
	if _, err := u.Authenticate(ctx, token); err != nil {
		t.Fatalf("before the idle limit: %v", err)
	}
	*now = now.Add(SessionIdle - time.Minute)
	if _, err := u.Authenticate(ctx, token); err != nil {
		t.Fatalf("used within the idle limit: %v", err)
	}
	// ... but not when idle ...
	*now = now.Add(SessionIdle + time.Second)
	if _, err := u.Authenticate(ctx, token); err == nil {
		t.Fatal("an idle session still works")
	}
	// ... and never past its maximum age.
	token, _, _ = u.SignIn(ctx, "admin", "right password", "10.0.0.1", "")
	start := *now
	for now.Sub(start) < SessionMaxAge-SessionIdle {
		*now = now.Add(SessionIdle / 2)
		if _, err := u.Authenticate(ctx, token); err != nil {
			t.Fatalf("at %v: %v", now.Sub(start), err)
		}
	}
	*now = start.Add(SessionMaxAge)
	if _, err := u.Authenticate(ctx, token); err == nil {
		t.Fatal("a session outlived its maximum age")
	}

	// Sign-out ends the session.
	token, _, _ = u.SignIn(ctx, "admin", "right password", "10.0.0.1", "")
	if err := u.SignOut(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(ctx, token); err == nil {
		t.Fatal("a signed-out session still works")
	}
}

// Someone holding a session guesses the current password on the settings
// page a few times only, from however many addresses: the session's last
// guess ends it. A right current password starts the count again, and other
// people's failed sign-ins do not count.
func TestChangePasswordGuessesAreLimited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, now := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "old password!"); err != nil {
		t.Fatal(err)
	}
	stolen, _, _ := u.SignIn(ctx, "admin", "old password!", "10.0.0.9", "")
	acc, err := u.Authenticate(ctx, stolen)
	if err != nil {
		t.Fatal(err)
	}
	guess := func(i int) error {
		return u.ChangePassword(ctx, acc, fmt.Sprint("guess ", i), "new password!!", "new password!!")
	}
	for i := range maxSessionFailures - 1 {
		if err := guess(i); actions.ErrorCode(err) != actions.CodeInvalidParams {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// An empty current password is no guess: it is refused as missing, and
	// however often, it does not end the session.
	for range 2 * maxSessionFailures {
		err := u.ChangePassword(ctx, acc, "", "new password!!", "new password!!")
		if e := (*actions.Error)(nil); !errors.As(err, &e) || e.Field != "current_password" || !strings.HasPrefix(e.Detail, "is required") {
			t.Fatalf("an empty current password: %v", err)
		}
	}
	// A typo-prone admin: the right current password (with a mismatched
	// confirmation) starts the count again.
	if err := u.ChangePassword(ctx, acc, "old password!", "new password!!", "a typo"); actions.ErrorCode(err) != actions.CodeInvalidParams {
		t.Fatal(err)
	}
	for range maxUserFailures { // others fail to sign in from the same address
		_, _, _ = u.SignIn(ctx, "admin", "wrong", "10.0.0.9", "")
	}
	for i := range maxSessionFailures - 1 {
		if err := guess(i); actions.ErrorCode(err) != actions.CodeInvalidParams {
			t.Fatalf("guess %d after a right one: %v", i, err)
		}
		*now = now.Add(failureWindow) // waiting between guesses starts nothing again
	}
	if err := guess(99); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("the session's last guess: %v, want ErrSessionEnded", err)
	}
	if _, err := u.Authenticate(ctx, stolen); err == nil {
		t.Fatal("the guessing session still works")
	}
	if _, _, err := u.SignIn(ctx, "admin", "old password!", "10.0.0.1", ""); err != nil {
		t.Fatalf("the admin elsewhere: %v", err)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, _ := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "old password!"); err != nil {
		t.Fatal(err)
	}
	mine, _, _ := u.SignIn(ctx, "admin", "old password!", "10.0.0.1", "")
	other, _, _ := u.SignIn(ctx, "admin", "old password!", "10.0.0.2", "")
	acc, err := u.Authenticate(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	fields := func(err error) string {
		var names []string
		for _, e := range flattenErrors(err) {
			var ae *actions.Error
			if errors.As(e, &ae) {
				names = append(names, ae.Field)
			}
		}
		return strings.Join(names, " ")
	}
	for _, c := range []struct{ current, next, confirm, want string }{
		{"wrong", "new password!!", "new password!!", "current_password"},
		{"old password!", "short", "short", "new_password"},
		{"old password!", "old password!", "old password!", "new_password"},
		{"old password!", "new password!!", "a typo", "confirm_password"},
		{"wrong", "short", "a typo", "current_password new_password confirm_password"},
	} {
		if err := u.ChangePassword(ctx, acc, c.current, c.next, c.confirm); fields(err) != c.want {
			t.Fatalf("%q %q %q: %v, want the fields %s", c.current, c.next, c.confirm, err, c.want)
		}
	}
	if _, _, err := u.SignIn(ctx, "admin", "old password!", "10.0.0.1", ""); err != nil {
		t.Fatalf("a refused change changed the password: %v", err)
	}
	if err := u.ChangePassword(ctx, acc, "old password!", "new password!!", "new password!!"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Authenticate(ctx, mine); err != nil {
		t.Fatalf("own session ended: %v", err)
	}
	if _, err := u.Authenticate(ctx, other); err == nil {
		t.Fatal("another session survived the password change")
	}
	if _, _, err := u.SignIn(ctx, "admin", "old password!", "10.0.0.1", ""); err == nil {
		t.Fatal("the old password still works")
	}
	if _, _, err := u.SignIn(ctx, "admin", "new password!!", "10.0.0.1", ""); err != nil {
		t.Fatal(err)
	}
}

func TestCSRFToken(t *testing.T) {
	t.Parallel()
	u, _ := newTestUsers(t)
	a, b := secrets.NewToken(secrets.SessionPrefix), secrets.NewToken(secrets.SessionPrefix)
	tok := u.CSRFToken(a)
	if !u.ValidCSRF(a, tok) || u.ValidCSRF(b, tok) || u.ValidCSRF(a, "") || u.ValidCSRF("", u.CSRFToken("")) {
		t.Fatal("CSRF token check")
	}
	sig := u.Sign("flash", "hello")
	if !u.Verify("flash", "hello", sig) || u.Verify("flash", "hello!", sig) || u.Verify("other", "hello", sig) {
		t.Fatal("sign/verify")
	}
}

func TestSourcePrefix(t *testing.T) {
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"}, // one /64
		{"192.0.2.7", "::ffff:192.0.2.7"},           // IPv4, mapped or not
	}
	for _, p := range same {
		if SourcePrefix(p[0]) != SourcePrefix(p[1]) {
			t.Errorf("%s and %s are different sources", p[0], p[1])
		}
	}
	differ := [][2]string{{"2001:db8:1:2::1", "2001:db8:1:3::1"}, {"192.0.2.7", "192.0.2.8"}}
	for _, p := range differ {
		if SourcePrefix(p[0]) == SourcePrefix(p[1]) {
			t.Errorf("%s and %s are the same source", p[0], p[1])
		}
	}
}

// flattenErrors lists the errors errors.Join put together (or err alone).
func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// A reset that lands while a sign-in checks the old password wins: that
// sign-in starts no session, and the new password signs in. Not parallel: it
// replaces argonIDKey, and runs the reset inside the sign-in's check.
func TestSignInRacingAResetStartsNoSession(t *testing.T) {
	ctx := context.Background()
	u, _ := newTestUsers(t)
	if _, err := u.EnsureFirstAdmin(ctx, "admin", "old password!"); err != nil {
		t.Fatal(err)
	}
	orig := argonIDKey
	t.Cleanup(func() { argonIDKey = orig })
	var reset atomic.Bool
	argonIDKey = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		key := orig(pw, salt, time, memory, threads, keyLen)
		if reset.CompareAndSwap(false, true) { // the sign-in's check; the reset hashes too
			if err := ResetPassword(ctx, u.st, "admin", "new password!"); err != nil {
				t.Errorf("reset: %v", err)
			}
		}
		return key
	}
	if token, _, err := u.SignIn(ctx, "admin", "old password!", "10.0.0.1", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("the sign-in that raced the reset: %q, %v", token, err)
	}
	if _, _, err := u.SignIn(ctx, "admin", "new password!", "10.0.0.1", ""); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}
