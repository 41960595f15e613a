package auth

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Sign-in lockout: within failureWindow, after maxUserFailures failed sign-ins
// for one username from one address, maxIPFailures from one address (any
// usernames), or maxUserFailuresAll for one username from all addresses
// together, further attempts for that username and address, from that address,
// or for that username are refused for lockoutFor.
//
// The per-address-and-username count is the one a person mistyping meets; keying
// it on the address too means nobody can lock the admin out from elsewhere with a
// few wrong passwords. The per-username count across addresses is far higher, so
// it only stops a guesser spread over many addresses.
//
// The counts live in memory: each instance counts on its own, and a restart
// forgets them.
const (
	maxUserFailures    = 5
	maxIPFailures      = 20 // an office behind one NAT address has several admins
	maxUserFailuresAll = 10 * maxUserFailures
	failureWindow      = 15 * time.Minute
	lockoutFor         = 15 * time.Minute
	maxTracked         = 100_000 // entries kept before a sweep drops old ones
)

type loginLimiter struct {
	mu      sync.Mutex
	entries map[string]*failures
	sweepAt int // sweep once entries reach this many
}

type failures struct {
	n           int // failures in the window that started at first
	inFlight    int // attempts begun and not yet finished
	first       time.Time
	lockedUntil time.Time
}

// loginAttempt is a sign-in that holds a reservation on each of its counters.
type loginAttempt struct {
	keys    [3]string
	entries [3]*failures
}

// outcome is how a sign-in attempt ended, for finish.
type outcome int

const (
	unchecked outcome = iota // the password was not checked (busy, store error)
	failed
	succeeded
)

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{entries: map[string]*failures{}, sweepAt: maxTracked}
}

// limiterKeys returns the counters' keys: the username from this address, the
// address, and the username from anywhere.
func limiterKeys(username, ip string) [3]string {
	user := strings.ToLower(username)
	return [3]string{"ua:" + user + "\x00" + ip, "ip:" + ip, "u:" + user}
}

var limiterLimits = [3]int{maxUserFailures, maxIPFailures, maxUserFailuresAll}

// begin starts a sign-in attempt, or refuses it with *LockedOutError while a
// counter is locked out. It also refuses (as Busy) when the failures plus the
// attempts still in flight reach a limit: the password is checked only after
// begin, so without counting those a burst of concurrent requests would all be
// checked before the first failure is counted. The caller must finish the
// attempt.
func (l *loginLimiter) begin(username, ip string, now time.Time) (*loginAttempt, error) {
	keys := limiterKeys(username, ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries)+len(keys) > l.sweepAt {
		l.sweep(now)
	}
	a := &loginAttempt{keys: keys}
	var until time.Time
	full := false
	for i, k := range keys {
		f := l.entry(k, now)
		a.entries[i] = f
		if now.Before(f.lockedUntil) && f.lockedUntil.After(until) {
			until = f.lockedUntil
		}
		full = full || f.n+f.inFlight >= limiterLimits[i]
	}
	if !until.IsZero() {
		return nil, &LockedOutError{Until: until}
	}
	if full {
		return nil, &LockedOutError{Until: now.Add(retryBusy), Busy: true}
	}
	for _, f := range a.entries {
		f.inFlight++
	}
	return a, nil
}

// entry returns the counter of key, starting it or its next window as needed.
func (l *loginLimiter) entry(key string, now time.Time) *failures {
	f := l.entries[key]
	if f == nil {
		f = &failures{first: now}
		l.entries[key] = f
	} else {
		f.newWindow(now)
	}
	return f
}

// newWindow starts a new counting window once the current one has passed; a
// running lockout and the attempts in flight stay.
func (f *failures) newWindow(now time.Time) {
	if now.Sub(f.first) > failureWindow {
		f.n, f.first = 0, now
	}
}

// finish ends an attempt, releasing its reservations: a failure is counted on
// every counter; a success forgets the failures of the username from this
// address and of the address, but not the username's count from all addresses,
// so that the admin signing in does not give a distributed guesser a fresh
// allowance.
func (l *loginLimiter) finish(a *loginAttempt, o outcome, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range a.entries {
		f.inFlight--
		switch {
		case o == failed:
			f.newWindow(now)
			f.n++
			if f.n >= limiterLimits[i] {
				f.lockedUntil = now.Add(lockoutFor)
				f.n, f.first = 0, now // a new window starts with the lockout
			}
		case o == succeeded && i < 2: // keys[2] is the username from all addresses
			f.n, f.lockedUntil = 0, time.Time{}
			if f.inFlight == 0 {
				delete(l.entries, a.keys[i])
			}
		}
	}
}

// sweep keeps the number of entries bounded without ever dropping one that is
// locked out or has attempts in flight, so that an attacker spraying usernames or
// addresses cannot clear a lockout: it drops entries whose window and lockout
// have passed, then, if still too many, the oldest of the rest down to 90% of
// maxTracked. Locked entries are not capped, but each costs several failed
// sign-ins, and one address can fail only maxIPFailures times per lockout.
func (l *loginLimiter) sweep(now time.Time) {
	type aged struct {
		key   string
		first time.Time
	}
	var droppable []aged
	for k, f := range l.entries {
		switch {
		case f.inFlight > 0 || now.Before(f.lockedUntil):
		case now.Sub(f.first) > failureWindow:
			delete(l.entries, k)
		default:
			droppable = append(droppable, aged{k, f.first})
		}
	}
	if excess := len(l.entries) - maxTracked*9/10; excess > 0 {
		slices.SortFunc(droppable, func(a, b aged) int { return a.first.Compare(b.first) })
		for _, e := range droppable[:min(excess, len(droppable))] {
			delete(l.entries, e.key)
		}
	}
	// If what is left is mostly lockouts, do not sweep again on every attempt.
	l.sweepAt = max(maxTracked, len(l.entries)+maxTracked/10)
}
