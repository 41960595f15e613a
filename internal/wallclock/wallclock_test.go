package wallclock

import (
	"sync"
	"testing"
	"time"
)

func TestNowHoldsThroughAStepBack(t *testing.T) {
	wall := time.Date(2026, 11, 25, 12, 0, 0, 0, time.FixedZone("EST", -5*3600))
	c := New(func() time.Time { return wall })
	first := c.Now()
	if !first.Equal(wall) || first.Location() != time.UTC {
		t.Fatalf("first = %v, want %v in UTC", first, wall)
	}
	wall = wall.Add(-10 * time.Minute) // NTP steps the clock back
	second, third := c.Now(), c.Now()
	if !second.After(first) || !third.After(second) || third.Sub(first) > time.Microsecond {
		t.Fatalf("after a step back: %v, %v, %v: want each a moment after the one before", first, second, third)
	}
	wall = wall.Add(time.Hour) // and forward, past where it was
	if got := c.Now(); !got.Equal(wall) {
		t.Fatalf("after a step forward: %v, want the wall clock's %v", got, wall)
	}
}

func TestNowIsLaterAtEachCallInEveryGoroutine(t *testing.T) {
	wall := time.Now()
	c := New(func() time.Time { return wall }) // a clock that stands still
	const goroutines, calls = 4, 1000
	got := make([][]time.Time, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range calls {
				got[g] = append(got[g], c.Now())
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, ts := range got {
		for i, ts1 := range ts {
			if i > 0 && !ts1.After(ts[i-1]) {
				t.Fatalf("%v after %v in one goroutine", ts1, ts[i-1])
			}
			if seen[ts1.UnixNano()] {
				t.Fatalf("%v given twice", ts1)
			}
			seen[ts1.UnixNano()] = true
		}
	}
	if !Now().After(time.Now().Add(-time.Second)) {
		t.Fatal("the system's clock is not the wall clock")
	}
}

// A step back of more than MaxHold is followed, and counted: holding would
// stop recorded time for as long.
func TestNowFollowsAStepBackPastMaxHold(t *testing.T) {
	wall := time.Date(2027, 11, 25, 12, 0, 0, 0, time.UTC)
	c := New(func() time.Time { return wall })
	c.Now()
	wall = wall.AddDate(-1, 0, 0) // a clock a year ahead, put right
	if got := c.Now(); !got.Equal(wall) || c.Released() != 1 {
		t.Fatalf("after a step back of a year: %v (released %d), want the wall clock's %v", got, c.Released(), wall)
	}
	if got := c.Now(); !got.Equal(wall.Add(time.Nanosecond)) || c.Released() != 1 {
		t.Fatalf("then: %v (released %d)", got, c.Released())
	}
}

// A start goes on from the latest time recorded, within MaxHold.
func TestNotBeforeHoldsFromARecordedTime(t *testing.T) {
	wall := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c := New(func() time.Time { return wall })
	if ahead := c.NotBefore(time.Time{}); ahead != 0 {
		t.Fatalf("an empty database's zero time is %v ahead", ahead)
	}
	if ahead := c.NotBefore(wall.Add(-time.Minute)); ahead != 0 || !c.Now().Equal(wall) {
		t.Fatal("a recorded time behind the wall clock moved the clock")
	}
	recorded := wall.Add(10 * time.Minute)
	if ahead := c.NotBefore(recorded); ahead != 10*time.Minute {
		t.Fatalf("ahead = %v, want 10m", ahead)
	}
	if got := c.Now(); !got.After(recorded) || got.Sub(recorded) > time.Microsecond {
		t.Fatalf("after NotBefore(%v): %v", recorded, got)
	}
	if held := c.Held(); held < 10*time.Minute {
		t.Fatalf("held %v, want 10m", held)
	}
	far := wall.Add(MaxHold + time.Minute)
	if ahead := c.NotBefore(far); ahead != MaxHold+time.Minute || c.Now().After(far.Add(-time.Minute)) {
		t.Fatalf("a recorded time more than MaxHold ahead was held from (ahead %v)", ahead)
	}
}
