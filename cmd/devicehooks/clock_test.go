package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// A start after a step back of the clock goes on from the latest time the
// database recorded, and says so; one far behind it is not held, and says
// that louder.
func TestAStartHoldsFromTheLatestRecordedTime(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "dh.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	d := &store.Device{ID: "d1", Name: "d1", TokenHash: "h", MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}
	if err := st.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	recorded := now.Add(10 * time.Minute) // by a clock 10 minutes ahead, since put right
	if err := st.SavePresence(ctx, []store.Presence{{DeviceID: "d1", Online: true, At: recorded, LastSeen: recorded}}); err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clock := wallclock.New(time.Now)
	if err := holdFromRecorded(ctx, st, clock, log); err != nil {
		t.Fatal(err)
	}
	if got := clock.Now(); !got.After(recorded) {
		t.Errorf("the first time after the start is %v, before the %v recorded", got, recorded)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "recorded times hold") {
		t.Errorf("the log does not say so:\n%s", logs.String())
	}

	far := now.Add(wallclock.MaxHold + time.Hour) // a clock once far out
	if err := st.SavePresence(ctx, []store.Presence{{DeviceID: "d1", Online: true, At: far, LastSeen: far}}); err != nil {
		t.Fatal(err)
	}
	clock = wallclock.New(time.Now)
	if err := holdFromRecorded(ctx, st, clock, log); err != nil {
		t.Fatal(err)
	}
	if got := clock.Now(); got.After(recorded) {
		t.Errorf("held from a time %v ahead: %v", far.Sub(now), got)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "far behind") {
		t.Errorf("the log does not say the clock is far behind:\n%s", logs.String())
	}
}

// A step back while serving is logged when it begins and when the clock has
// caught up again; one past what is held, as an error.
func TestWatchClockSaysWhenItSteppedBack(t *testing.T) {
	var offset atomic.Int64
	clock := wallclock.New(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	logs := startWatchClock(t, clock, false)
	clock.Now()
	offset.Store(int64(-3 * time.Second))
	clock.Now()
	logs.WaitFor(t, 10*time.Second, "the system clock stepped back: recorded times hold")
	offset.Store(0)
	logs.WaitFor(t, 10*time.Second, "the system clock caught up")
	offset.Store(int64(-wallclock.MaxHold - time.Minute))
	clock.Now()
	logs.WaitFor(t, 10*time.Second, "level=ERROR msg=\"the system clock stepped back further")
}

// A hold that a start began (and logged) is not logged again as a step
// back; its end is.
func TestWatchClockAfterAStartsHold(t *testing.T) {
	clock := wallclock.New(time.Now)
	clock.NotBefore(time.Now().Add(1500 * time.Millisecond))
	logs := startWatchClock(t, clock, true)
	logs.WaitFor(t, 10*time.Second, "the system clock caught up")
	if strings.Contains(logs.String(), "stepped back") {
		t.Errorf("the start's hold was logged again:\n%s", logs.String())
	}
}

// startWatchClock runs watchClock on clock, looking every 10 ms, until the
// test ends, and returns its log.
func startWatchClock(t *testing.T, clock *wallclock.Clock, holding bool) *testenv.Buffer {
	var logs testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		watchClock(ctx, clock, slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Millisecond, holding)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return &logs
}
