package handlers

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"devicehooks/auth"
)

// Calls without a valid API key cost a caller nothing, so each source's records
// of them are limited: a flood of bad keys would otherwise fill the disk with
// request-log rows for the retention period (about 500 bytes each). Those over
// the limit are counted (and logged as a count), not kept; /metrics still
// counts every call.
const (
	anonPerSource      = rate.Limit(1) // records a second, per source, past the burst
	anonSourceBurst    = 60
	anonAll            = rate.Limit(20) // and for every source together
	anonAllBurst       = 600
	anonSourcesTracked = 10000 // sources with a bucket; past that, they start again
)

// anonLimit decides which records of calls without a valid key are kept.
type anonLimit struct {
	mu      sync.Mutex
	all     *rate.Limiter
	sources map[netip.Prefix]*rate.Limiter
}

func newAnonLimit() *anonLimit {
	return &anonLimit{all: rate.NewLimiter(anonAll, anonAllBurst), sources: map[netip.Prefix]*rate.Limiter{}}
}

// allow tells whether a record from source (a client address) may be kept.
func (a *anonLimit) allow(source string, now time.Time) bool {
	key := auth.SourcePrefix(source)
	a.mu.Lock()
	defer a.mu.Unlock()
	lim, ok := a.sources[key]
	if !ok {
		if len(a.sources) >= anonSourcesTracked {
			clear(a.sources) // the limit for all sources still holds meanwhile
		}
		lim = rate.NewLimiter(anonPerSource, anonSourceBurst)
		a.sources[key] = lim
	}
	if !lim.AllowN(now, 1) {
		return false
	}
	return a.all.AllowN(now, 1)
}
