package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
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
// it only stops a guesser spread over many addresses. A browser that signed in as
// that username before (a known browser, Users.KnownBrowser) is not held by that
// count, nor adds to it: a guesser with a few dozen addresses could otherwise
// lock the admin out everywhere, again every lockoutFor. It has a count of its
// own instead (maxKnownBrowserFailures), from all addresses, so that a stolen
// cookie is worth maxKnownBrowserFailures guesses per failureWindow, not a
// guesser's whole allowance (OWASP's device cookies). A known browser locked
// out of its own count signs in as an unknown one.
//
// The counts live in memory: each instance counts on its own, and a restart
// forgets them.
const (
	maxUserFailures    = 5
	maxIPFailures      = 20 // an office behind one NAT address has several admins
	maxUserFailuresAll = 10 * maxUserFailures
	// maxKnownBrowserFailures bounds a known browser's failures from all
	// addresses (in place of maxUserFailuresAll), and maxSessionFailures a
	// session's wrong current passwords on the settings page.
	maxKnownBrowserFailures = 2 * maxUserFailures
	maxSessionFailures      = maxUserFailures
	failureWindow           = 15 * time.Minute
	lockoutFor              = 15 * time.Minute
	maxTracked              = 100_000 // entries kept before a sweep drops old ones
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
	window      time.Duration // how long failures count (0: failureWindow)
	lockedUntil time.Time
}

// counter names one failure count of an attempt, with its limit and the
// window its failures count in.
type counter struct {
	key    string
	limit  int
	window time.Duration
}

// loginAttempt is a sign-in that holds a reservation on each of its counters.
type loginAttempt struct {
	counters []counter
	entries  []*failures
	reset    int // a success forgets the failures of the first reset counters
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

// signInCounters returns a sign-in's counters: the username from this address,
// the address, and the username from anywhere, or, for a known browser, that
// browser (knownSig, its cookie's signature) in place of the last. A long
// username is keyed by its hash (a key's size must not be the caller's
// choice), and an address by its SourcePrefix.
func signInCounters(username, ip, knownSig string) []counter {
	user := strings.ToLower(username)
	if len(user) > 64 {
		sum := sha256.Sum256([]byte(user))
		user = "#" + hex.EncodeToString(sum[:16])
	}
	if p := SourcePrefix(ip); p.IsValid() {
		ip = p.String()
	}
	cs := []counter{
		{"ua:" + user + "\x00" + ip, maxUserFailures, failureWindow},
		{"ip:" + ip, maxIPFailures, failureWindow},
		{"u:" + user, maxUserFailuresAll, failureWindow},
	}
	if knownSig != "" {
		// A known browser's own count, wherever it signs in from: a stolen
		// cookie spares its thief the username's count from all addresses,
		// not a limit of its own.
		cs[2] = counter{"kb:" + knownSig, maxKnownBrowserFailures, failureWindow}
	}
	return cs
}

// begin starts a sign-in attempt, or refuses it with *LockedOutError while a
// counter is locked out. It also refuses (as Busy) when the failures plus the
// attempts still in flight reach a limit: the password is checked only after
// begin, so without counting those a burst of concurrent requests would all be
// checked before the first failure is counted. The caller must finish the
// attempt.
func (l *loginLimiter) begin(username, ip, knownSig string, now time.Time) (*loginAttempt, error) {
	// A known browser locked out of its own count (by a thief of its cookie)
	// signs in as any other browser: the thief must not be able to shut the
	// owner out of the one browser the username's count does not hold.
	if knownSig != "" && l.lockedOut("kb:"+knownSig, now) {
		knownSig = ""
	}
	// A success forgets the failures from this address (and a known
	// browser's), but not the username's from all addresses, so that the
	// admin signing in does not give a distributed guesser a fresh allowance.
	reset := 2
	if knownSig != "" {
		reset = 3
	}
	return l.reserve(signInCounters(username, ip, knownSig), reset, now)
}

// lockedOut tells whether the counter key is locked out now.
func (l *loginLimiter) lockedOut(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.entries[key]
	return f != nil && now.Before(f.lockedUntil)
}

// reserve starts an attempt on the counters cs, of which a success forgets
// the first reset; see begin.
func (l *loginLimiter) reserve(cs []counter, reset int, now time.Time) (*loginAttempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries)+len(cs) > l.sweepAt {
		l.sweep(now)
	}
	// Look first, without making entries: a refused attempt costs nothing
	// (no hash, no delay), so it must not be able to fill the map either.
	var until time.Time
	full := false
	for _, c := range cs {
		f := l.entries[c.key]
		if f == nil {
			continue
		}
		f.newWindow(now)
		if now.Before(f.lockedUntil) && f.lockedUntil.After(until) {
			until = f.lockedUntil
		}
		full = full || f.n+f.inFlight >= c.limit
	}
	if !until.IsZero() {
		return nil, &LockedOutError{Until: until}
	}
	if full {
		return nil, &LockedOutError{Until: now.Add(retryBusy), Busy: true}
	}
	a := &loginAttempt{counters: cs, entries: make([]*failures, len(cs)), reset: reset}
	for i, c := range cs {
		f := l.entries[c.key]
		if f == nil {
			f = &failures{first: now, window: c.window}
			l.entries[c.key] = f
		}
		f.inFlight++
		a.entries[i] = f
	}
	return a, nil
}

// newWindow starts a new counting window once the current one has passed; a
// running lockout and the attempts in flight stay.
func (f *failures) newWindow(now time.Time) {
	w := f.window
	if w == 0 {
		w = failureWindow
	}
	if now.Sub(f.first) > w {
		f.n, f.first = 0, now
	}
}

// finish ends an attempt, releasing its reservations: a failure is counted on
// every counter; a success forgets the failures of the attempt's first reset
// counters. It reports whether a failure locked a counter out.
func (l *loginLimiter) finish(a *loginAttempt, o outcome, now time.Time) (locked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range a.entries {
		f.inFlight--
		switch {
		case o == failed:
			f.newWindow(now)
			f.n++
			if f.n >= a.counters[i].limit {
				f.lockedUntil = now.Add(lockoutFor)
				f.n, f.first = 0, now // a new window starts with the lockout
				locked = true
			}
		case o == succeeded && i < a.reset:
			f.n, f.lockedUntil = 0, time.Time{}
		}
		if f.n == 0 && f.inFlight == 0 && !now.Before(f.lockedUntil) {
			delete(l.entries, a.counters[i].key) // nothing to remember
		}
	}
	return locked
}

// sweep drops the entries that hold nothing to remember: their window and
// lockout have passed, and no attempt is in flight. It never drops a counter
// with failures in its window, or a lockout, so that an attacker cannot clear
// one by making others: entries are made only by attempts that were checked
// (a password hash each, bounded by hashSlots, and a failure delay), and one
// address can fail only maxIPFailures times per lockout.
func (l *loginLimiter) sweep(now time.Time) {
	for k, f := range l.entries {
		f.newWindow(now)
		if f.inFlight == 0 && f.n == 0 && !now.Before(f.lockedUntil) {
			delete(l.entries, k)
		}
	}
	// If what is left must be kept, do not sweep again on every attempt.
	l.sweepAt = max(maxTracked, len(l.entries)+maxTracked/10)
}

// SourcePrefix is what counts as one client for a limit on addresses: an IPv4
// address, or an IPv6 /64 (one host usually has a whole /64 to pick addresses
// from). It is the zero Prefix for text that is not an address.
func SourcePrefix(ip string) netip.Prefix {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}
