// Package wallclock is the time the service records: the wall clock in UTC,
// held from going back.
//
// What it records is compared later with what it records at other moments: a
// command's creation orders its device's queue, a player's session start is
// held against when a command was sent, a presence write against the one
// before it. A step back of the system's clock (an NTP correction, a VM
// restored from a snapshot) would put a later event before an earlier one:
// the older of two URLs shown last, a command not sent again to a player that
// reconnected, a device left online in the database. Through such a step, Now
// holds at the last time it gave, a nanosecond later at each call, until the
// wall clock passes it again; a step forward it takes as it comes.
//
// Durations (timeouts, retry spacing, the sign-in lockout) are measured on
// the monotonic clock instead (time.Now, time.Since), which no step moves.
package wallclock

import (
	"sync/atomic"
	"time"
)

// MaxHold is the longest step back a Clock holds through. A clock that was
// far ahead (set wrong by hand, a hardware clock a year out) and is put right
// would otherwise stop recorded time for as long: no command would expire,
// no record age. Past it, the Clock follows the wall clock back, and
// Released counts that.
const MaxHold = time.Hour

// Clock gives times that never go back, read from a wall clock.
type Clock struct {
	wall     func() time.Time
	last     atomic.Int64 // Unix nanoseconds of the last time given
	released atomic.Int64 // how often it followed a step back of more than MaxHold
}

// New returns a Clock that reads wall; tests give one that steps.
func New(wall func() time.Time) *Clock { return &Clock{wall: wall} }

var system = New(time.Now)

// Now is the system's clock through the process's one Clock: each call is
// later than every call before it, in any goroutine.
func Now() time.Time { return system.Now() }

// System is the Clock that Now reads.
func System() *Clock { return system }

// Now returns the wall time in UTC (without a monotonic reading, as it is
// stored), or a nanosecond past the last time it gave, whichever is later;
// the wall time if that is more than MaxHold behind.
func (c *Clock) Now() time.Time {
	wall := c.wall().UnixNano()
	for {
		last := c.last.Load()
		next := max(wall, last+1)
		if last-wall > int64(MaxHold) {
			next = wall
		}
		if c.last.CompareAndSwap(last, next) {
			if next < last {
				c.released.Add(1)
			}
			return time.Unix(0, next).UTC()
		}
	}
}

// NotBefore has the Clock give times after t from now on, as if it had
// given t: a start goes on from the latest time the database recorded,
// which a step back before it may have put ahead of the wall clock. It
// returns how far t is ahead of the wall clock (0 if it is not), and leaves
// the Clock as it is if that is more than MaxHold.
func (c *Clock) NotBefore(t time.Time) time.Duration {
	ahead := t.Sub(c.wall()) // a zero t (an empty database) is far behind
	switch {
	case ahead <= 0:
		return 0
	case ahead > MaxHold:
		return ahead
	}
	at := t.UnixNano()
	for {
		last := c.last.Load()
		if last >= at || c.last.CompareAndSwap(last, at) {
			return ahead
		}
	}
}

// Held is how far the last time the Clock gave is ahead of the wall clock
// now: while it is more than zero, recorded times hold. (Zero or less: they
// follow the wall clock.)
func (c *Clock) Held() time.Duration {
	return time.Duration(c.last.Load() - c.wall().UnixNano())
}

// Released is how often the Clock followed a step back of more than MaxHold.
func (c *Clock) Released() int64 { return c.released.Load() }
