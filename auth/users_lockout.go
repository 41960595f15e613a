package auth

import (
	"strings"
	"sync"
	"time"
)

// Sign-in lockout: after maxUserFailures failed sign-ins for one username, or
// maxIPFailures from one address, within failureWindow, further attempts for that
// username or from that address are refused for lockoutFor. The counts live in
// memory: each instance counts on its own, and a restart forgets them.
const (
	maxUserFailures = 5
	maxIPFailures   = 20 // an office behind one NAT address has several admins
	failureWindow   = 15 * time.Minute
	lockoutFor      = 15 * time.Minute
	maxTracked      = 100_000 // entries kept before the oldest state is dropped
)

type loginLimiter struct {
	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	n           int
	first       time.Time
	lockedUntil time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{entries: map[string]*failures{}}
}

func limiterKeys(username, ip string) (user, addr string) {
	return "u:" + strings.ToLower(username), "ip:" + ip
}

// lockedUntil returns when the lockout of the username or the address ends, or
// the zero time if neither is locked out.
func (l *loginLimiter) lockedUntil(username, ip string, now time.Time) time.Time {
	uk, ik := limiterKeys(username, ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	var until time.Time
	for _, k := range []string{uk, ik} {
		if f := l.entries[k]; f != nil && now.Before(f.lockedUntil) && f.lockedUntil.After(until) {
			until = f.lockedUntil
		}
	}
	return until
}

// fail counts a failed sign-in.
func (l *loginLimiter) fail(username, ip string, now time.Time) {
	uk, ik := limiterKeys(username, ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= maxTracked {
		l.sweep(now)
	}
	l.count(uk, maxUserFailures, now)
	l.count(ik, maxIPFailures, now)
}

func (l *loginLimiter) count(key string, limit int, now time.Time) {
	f := l.entries[key]
	if f == nil || now.Sub(f.first) > failureWindow {
		f = &failures{first: now, lockedUntil: timeOrZero(f)}
		l.entries[key] = f
	}
	f.n++
	if f.n >= limit {
		f.lockedUntil = now.Add(lockoutFor)
		f.n, f.first = 0, now // a new window starts with the lockout
	}
}

// timeOrZero keeps a running lockout when a counting window restarts.
func timeOrZero(f *failures) time.Time {
	if f == nil {
		return time.Time{}
	}
	return f.lockedUntil
}

// reset forgets the failures of a username and an address after a good sign-in.
func (l *loginLimiter) reset(username, ip string) {
	uk, ik := limiterKeys(username, ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, uk)
	delete(l.entries, ik)
}

// sweep drops entries whose window and lockout have passed; if that is not
// enough (a flood of addresses), it starts over rather than grow without bound.
func (l *loginLimiter) sweep(now time.Time) {
	for k, f := range l.entries {
		if now.Sub(f.first) > failureWindow && !now.Before(f.lockedUntil) {
			delete(l.entries, k)
		}
	}
	if len(l.entries) >= maxTracked {
		l.entries = map[string]*failures{}
	}
}
