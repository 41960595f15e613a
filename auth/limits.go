package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"devicehooks/actions"
	"devicehooks/store"
)

// Limits are an API key's optional restrictions; the zero value restricts nothing.
type Limits struct {
	Actions   []string   `json:"actions"`    // action ids it may trigger
	Groups    []string   `json:"groups"`     // or actions targeting these groups
	Methods   []string   `json:"methods"`    // "POST", "GET"
	CIDRs     []string   `json:"cidrs"`      // source address ranges
	ExpiresAt *time.Time `json:"expires_at"` // after this the key no longer works
	Rate      *Rate      `json:"rate"`       // requests per second with a burst
	Disabled  bool       `json:"disabled"`   // stops working without being deleted
}

// Rate is a token bucket: PerSecond sustained, Burst at once.
type Rate struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// Validate checks limits that replace had (none, for a new key), normalises
// them (methods upper case, once each), and returns the first problem. A rate
// the key had, unchanged, stays valid below MinRate: keys saved before MinRate
// may hold one, and must not refuse every other change, a rename too.
func (l *Limits) Validate(had Limits) error {
	if ps := l.Problems(had); len(ps) > 0 {
		return ps[0]
	}
	return nil
}

// Problems checks limits as Validate does and returns every problem, at most
// one per field, for a form that shows them all at once.
func (l *Limits) Problems(had Limits) []error {
	var ps []error
	for i, m := range l.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m != "POST" && m != "GET" {
			ps = append(ps, actions.Invalid(fmt.Sprintf("methods[%d]", i), "must list POST and/or GET, not %q", l.Methods[i]))
			break
		}
		l.Methods[i] = m
	}
	if len(ps) == 0 && len(l.Methods) > 1 { // ["POST", "post"] is ["POST"]
		l.Methods = slices.Compact(slices.Sorted(slices.Values(l.Methods)))
	}
	// Every bad range in one error, at the first one's field: a form's
	// text area shows them all, not one per save.
	first, bad := -1, []string(nil)
	for i, c := range l.CIDRs {
		if _, err := parseRange(c); err != nil {
			if first < 0 {
				first = i
			}
			bad = append(bad, strconv.Quote(c))
		}
	}
	switch {
	case len(bad) == 1:
		ps = append(ps, actions.Invalid(fmt.Sprintf("cidrs[%d]", first), "%s is not an address or CIDR range", bad[0]))
	case len(bad) > 1:
		ps = append(ps, actions.Invalid(fmt.Sprintf("cidrs[%d]", first), "%s are not addresses or CIDR ranges", actions.Enumerate(bad)))
	}
	// A key that would be dead on saving; an expiry already past, kept as
	// it was (a key read and sent back), is left alone.
	switch at := l.ExpiresAt; {
	case at == nil:
	case !at.After(time.Now()) && (had.ExpiresAt == nil || !had.ExpiresAt.Equal(*at)):
		ps = append(ps, actions.Invalid("expires_at", "is in the past: the key would stop working at once. "+
			"To stop it now, revoke or disable it; otherwise choose a later time, or none for no expiry"))
	case at.UTC().Year() > 9999:
		// 9999-12-31T23:59:59-12:00 is in the year 10000 in UTC, which
		// neither the API's answers nor SQLite's text can hold.
		ps = append(ps, actions.Invalid("expires_at", "is past 9999-12-31T23:59:59Z; choose an earlier time, or none for no expiry"))
	}
	if r := l.Rate; r != nil {
		inRange := r.PerSecond >= MinRate && r.PerSecond <= 100000    // false for NaN
		kept := had.Rate != nil && *had.Rate == *r && r.PerSecond > 0 // saved before MinRate
		if !inRange && !kept {
			ps = append(ps, actions.Invalid("rate.per_second", "must be from %s (one request in about 28 hours) to 100000",
				strconv.FormatFloat(MinRate, 'f', -1, 64)))
		}
		if r.Burst < 1 || r.Burst > 100000 {
			ps = append(ps, actions.Invalid("rate.burst", "must be from 1 to 100000"))
		}
	}
	return ps
}

// LimitsOf reads a stored key's limits for showing them: what cannot be read
// (see ReadLimits) is left out.
func LimitsOf(k *store.APIKey) Limits {
	l, _ := ReadLimits(k)
	return l
}

// ReadLimits reads a stored key's limits, and says which cannot be read (a
// row edited by hand, say). Such a key must not be used: a scope or a list
// of ranges that does not read would otherwise restrict nothing.
func ReadLimits(k *store.APIKey) (Limits, error) {
	l := Limits{Disabled: k.Disabled, ExpiresAt: k.ExpiresAt}
	var errs []error
	for _, f := range []struct {
		name, stored string
		into         *[]string
	}{{"actions", k.ScopeActions, &l.Actions}, {"groups", k.ScopeGroups, &l.Groups}, {"methods", k.Methods, &l.Methods}, {"cidrs", k.CIDRs, &l.CIDRs}} {
		if f.stored == "" { // never set: no limit
			continue
		}
		if err := json.Unmarshal([]byte(f.stored), f.into); err != nil {
			errs = append(errs, fmt.Errorf("%s %.40q: %w", f.name, f.stored, err))
		}
	}
	for _, c := range l.CIDRs {
		if _, err := parseRange(c); err != nil {
			errs = append(errs, fmt.Errorf("cidrs: %q is not an address or range", c))
		}
	}
	if k.RatePerSec > 0 {
		l.Rate = &Rate{PerSecond: k.RatePerSec, Burst: k.RateBurst}
	}
	return l, errors.Join(errs...)
}

func (l Limits) store(k *store.APIKey) {
	list := func(v []string) string {
		if v == nil {
			v = []string{}
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	k.Disabled, k.ExpiresAt = l.Disabled, nil
	if l.ExpiresAt != nil { // in UTC, as every time the API answers
		at := l.ExpiresAt.UTC()
		k.ExpiresAt = &at
	}
	k.ScopeActions, k.ScopeGroups, k.Methods, k.CIDRs = list(l.Actions), list(l.Groups), list(l.Methods), list(l.CIDRs)
	k.RatePerSec, k.RateBurst = 0, 0
	if l.Rate != nil {
		k.RatePerSec, k.RateBurst = l.Rate.PerSecond, l.Rate.Burst
	}
}

func parseRange(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Caller is an authenticated webhook caller: its key and the key's compiled limits.
type Caller struct {
	Key     *store.APIKey
	limits  Limits
	ranges  []netip.Prefix
	badRead error // the stored limits do not read (ReadLimits): the key is refused
}

func newCaller(k *store.APIKey) *Caller {
	c := &Caller{Key: k}
	c.limits, c.badRead = ReadLimits(k)
	for _, s := range c.limits.CIDRs {
		if p, err := parseRange(s); err == nil {
			c.ranges = append(c.ranges, p)
		}
	}
	return c
}

// Usable reports whether a key with these limits works at all now (not
// disabled, not expired).
func (l Limits) Usable(now time.Time) bool {
	return !l.Disabled && (l.ExpiresAt == nil || now.Before(*l.ExpiresAt))
}

// AllowsMethod reports whether the limits let the key be used with method.
func (l Limits) AllowsMethod(method string) bool {
	return len(l.Methods) == 0 || slices.Contains(l.Methods, method)
}

// AllowsAction reports whether the key's scope covers the action: no scope, the
// action itself, or a group it targets.
func (l Limits) AllowsAction(a *store.Action) bool {
	return len(l.Actions)+len(l.Groups) == 0 || slices.Contains(l.Actions, a.ID) ||
		(a.TargetType == actions.TargetGroup && slices.Contains(l.Groups, a.TargetID))
}

// usable reports whether the key works at all now.
func (c *Caller) usable(now time.Time) bool { return c.badRead == nil && c.limits.Usable(now) }

// CheckRequest refuses a method or a source address outside the key's limits.
// A link is a GET, also when its fields come back as a form's POST (a confirm
// link's button posts them): it is the same link, used the same way.
func (c *Caller) CheckRequest(method string, link bool, source string) error {
	switch {
	case link && !c.limits.AllowsMethod(http.MethodGet):
		how := "links"
		if method != http.MethodGet {
			how = "links, and a link's fields posted as a form count as one"
		}
		return actions.Errorf(actions.CodeForbidden,
			"this API key may not be used with GET %s: send it in the x-webhook-apikey header of a POST with a JSON body", how)
	case !link && !c.limits.AllowsMethod(method):
		return actions.Errorf(actions.CodeForbidden, "this API key may not be used with %s", method)
	}
	return c.CheckSource(source)
}

// CheckSource refuses a source address outside the key's ranges.
func (c *Caller) CheckSource(source string) error {
	if len(c.ranges) > 0 {
		a, err := netip.ParseAddr(source)
		if err != nil || !slices.ContainsFunc(c.ranges, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
			return actions.Errorf(actions.CodeForbidden, "this API key may not be used from %s", source)
		}
	}
	return nil
}

// CheckAction refuses an action outside the key's scope.
func (c *Caller) CheckAction(a *store.Action) error {
	if c.limits.AllowsAction(a) {
		return nil
	}
	return actions.Errorf(actions.CodeForbidden, "this API key may not trigger event %s", a.EventID)
}

// limiters holds one token bucket per rate-limited key, bounded in number.
type limiters struct {
	mu sync.Mutex
	m  map[string]*bucket
}

// bucket is a token bucket that can take a token back (x/time/rate's cannot,
// once the token's time has passed).
type bucket struct {
	perSecond float64
	burst     int
	tokens    float64
	at        time.Time // when tokens was counted
}

func newBucket(perSecond float64, burst int, now time.Time) *bucket {
	return &bucket{perSecond: perSecond, burst: burst, tokens: float64(burst), at: now}
}

// fill adds what has dripped in since the last count.
func (b *bucket) fill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(float64(b.burst), b.tokens+now.Sub(b.at).Seconds()*b.perSecond)
		b.at = now
	}
}

// take takes a token, or tells how long until there is one.
func (b *bucket) take(now time.Time) (wait time.Duration) {
	b.fill(now)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	// At most maxWait, which a rate stored before MinRate was checked could
	// overflow into a negative Duration: a wait that allows the call.
	return time.Duration(min((1-b.tokens)/b.perSecond, maxWait.Seconds()) * float64(time.Second))
}

// MinRate is the lowest rate a key may be limited to, in requests per second.
const MinRate = 1e-5

// maxWait bounds the wait a bucket computes (1 / MinRate is 100,000 s).
const maxWait = 1000 * time.Hour

// give puts a token back.
func (b *bucket) give(now time.Time) {
	b.fill(now)
	b.tokens = min(float64(b.burst), b.tokens+1)
}

// RateLimited is the error of a call over its key's rate; RetryAfter says when to
// try again.
type RateLimited struct {
	Err        *actions.Error
	RetryAfter time.Duration
}

func (e *RateLimited) Error() string { return e.Err.Error() }

// Unwrap lets errors.As find the coded error.
func (e *RateLimited) Unwrap() error { return e.Err }

// noRefund is the refund of a call that took nothing.
func noRefund() {}

// allow takes a token for the caller, or returns a RateLimited error; refund
// gives the token back.
func (l *limiters) allow(c *Caller, now time.Time) (refund func(), err error) {
	r := c.limits.Rate
	if r == nil {
		return noRefund, nil
	}
	l.mu.Lock()
	b, ok := l.m[c.Key.ID]
	if !ok || b.perSecond != r.PerSecond || b.burst != r.Burst {
		if len(l.m) > 10000 {
			l.m = map[string]*bucket{}
		}
		b = newBucket(r.PerSecond, r.Burst, now)
		l.m[c.Key.ID] = b
	}
	wait := b.take(now)
	l.mu.Unlock()
	if wait <= 0 {
		return func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			b.give(time.Now())
		}, nil
	}
	return noRefund, &RateLimited{
		Err:        actions.Errorf(actions.CodeRateLimited, "this API key is limited to %g requests per second (burst %d)", r.PerSecond, r.Burst),
		RetryAfter: wait,
	}
}

// RetryAfterSeconds is the Retry-After header value for err, or "" if it has none.
func RetryAfterSeconds(err error) string {
	var rl *RateLimited
	if !errors.As(err, &rl) {
		return ""
	}
	return strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds())))
}
