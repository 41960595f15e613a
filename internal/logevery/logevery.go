// Package logevery keeps a repeated log line from flooding the log: one line
// per key and interval, saying how many were left out since the last.
package logevery

import (
	"sync"
	"time"
)

// maxKeys bounds the keys remembered; past it the keys whose interval is over
// are forgotten (they would be allowed again anyway), or all of them.
const maxKeys = 1024

// Limiter allows one line per key and interval. It is safe for concurrent use.
type Limiter struct {
	every time.Duration

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last    time.Time
	skipped int
}

// New returns a Limiter allowing one line per key every interval.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, keys: map[string]*entry{}}
}

// Allow tells whether a line with key may be logged now and, if so, how many
// were left out since the last one logged.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, skipped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= maxKeys {
			for k, old := range l.keys {
				if now.Sub(old.last) >= l.every {
					delete(l.keys, k)
				}
			}
			if len(l.keys) >= maxKeys {
				clear(l.keys) // all recent: forget them rather than grow
			}
		}
		e = &entry{}
		l.keys[key] = e
	} else if now.Sub(e.last) < l.every {
		e.skipped++
		return false, 0
	}
	skipped, e.skipped, e.last = e.skipped, 0, now
	return true, skipped
}
