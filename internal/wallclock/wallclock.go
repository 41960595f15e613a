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

// Clock gives times that never go back, read from a wall clock.
type Clock struct {
	wall func() time.Time
	last atomic.Int64 // Unix nanoseconds of the last time given
}

// New returns a Clock that reads wall; tests give one that steps.
func New(wall func() time.Time) *Clock { return &Clock{wall: wall} }

var system = New(time.Now)

// Now is the system's clock through the process's one Clock: each call is
// later than every call before it, in any goroutine.
func Now() time.Time { return system.Now() }

// Now returns the wall time in UTC (without a monotonic reading, as it is
// stored), or a nanosecond past the last time it gave, whichever is later.
func (c *Clock) Now() time.Time {
	wall := c.wall().UnixNano()
	for {
		last := c.last.Load()
		next := max(wall, last+1)
		if c.last.CompareAndSwap(last, next) {
			return time.Unix(0, next).UTC()
		}
	}
}
