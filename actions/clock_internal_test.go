package actions

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// steppingClock is the service's clock over a wall clock that the test steps,
// as NTP steps a system's clock that ran fast.
func steppingClock() (now func() time.Time, step func(time.Duration)) {
	var offset atomic.Int64
	c := wallclock.New(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	return c.Now, func(d time.Duration) { offset.Add(int64(d)) }
}

// A player that reconnects gets again what it had not acked, also when the
// wall clock stepped back in between: its new session began "before" the
// command went to the old one, so it was taken for sent to the new one.
func TestAReconnectAfterAClockStepBackGetsItsCommandAgain(t *testing.T) {
	for _, back := range []time.Duration{0, 2 * time.Second, 10 * time.Minute} {
		t.Run(back.String(), func(t *testing.T) {
			ctx := context.Background()
			dl, st, presence, rec := recordingDelivery(t)
			clock, step := steppingClock()
			dl.clock, presence.clock = clock, clock
			createDevice(t, st, "d0")
			now := clock()
			nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "x", ActionID: "a", ActionName: "a", EventID: "evt",
				Function: LoadURL, Method: "POST", Targets: 1, CreatedAt: now}}
			nd.Commands = []store.Command{{ID: "c1", DispatchID: "x", DeviceID: "d0", State: store.StateQueued,
				Function: LoadURL, Payload: "p", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}}
			if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
				t.Fatal(err)
			}
			presence.Subscribed("d0")
			dl.do(ctx, work{devices: []string{"d0"}})
			if err := st.MarkPublished(ctx, []string{"c1"}, clock()); err != nil { // the marker's write
				t.Fatal(err)
			}
			dl.landed.Push([]string{"c1"})
			presence.Disconnected("d0") // gone without an ack
			step(-back)
			presence.Subscribed("d0")
			dl.do(ctx, work{devices: []string{"d0"}})
			if got := len(rec.got["dh/devices/d0/commands"]); got != 2 {
				t.Errorf("the command went out %d time(s), want 2: once to each session", got)
			}
		})
	}
}

// Two triggers to a device that is offline, the wall clock stepping back
// between them: it gets them in the order they were made, so that the newer
// URL is the one it shows.
func TestQueuedCommandsKeepTheirOrderThroughAClockStepBack(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	createDevice(t, st, "d0")
	log := slog.New(slog.DiscardHandler)
	presence := NewPresence(st, log, true)
	rec := &recorder{got: map[string][]string{}}
	dl := NewDelivery(st, rec, Topics{Prefix: "dh"}, presence, log)
	d := NewDispatcher(st, dl, NewAckWaiters(), log, DispatcherConfig{})
	clock, step := steppingClock()
	d.clock = clock
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Run(rctx)
	now := time.Now().UTC()
	for i, name := range []string{"old", "new"} {
		a := &store.Action{ID: name, Name: name, EventID: "evt_" + name, Function: LoadURL, TargetType: store.TargetDevice, TargetID: "d0",
			Params: `{"url":"https://example.com/` + name + `"}`, Enabled: true, TTLSeconds: 900, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			step(-5 * time.Second)
		}
		if _, err := d.Trigger(ctx, Trigger{Action: a, Method: "POST"}); err != nil {
			t.Fatal(err)
		}
	}
	presence.Subscribed("d0")
	dl.do(ctx, work{devices: []string{"d0"}})
	var order []string
	for _, p := range rec.got["dh/devices/d0/commands"] {
		order = append(order, p[strings.Index(p, "example.com/")+len("example.com/"):][:3])
	}
	if strings.Join(order, " ") != "old new" {
		t.Errorf("the device got %v, want [old new]", order)
	}
}

// A device that goes offline after the wall clock stepped back is written
// offline: the write was taken for older than the one before it, and dropped.
func TestPresenceIsWrittenThroughAClockStepBack(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	createDevice(t, st, "d0")
	p := NewPresence(st, slog.New(slog.DiscardHandler), true)
	clock, step := steppingClock()
	p.clock = clock
	p.Subscribed("d0")
	p.flush(ctx, false)
	step(-10 * time.Minute)
	p.Disconnected("d0")
	p.flush(ctx, false)
	d, err := st.Device(ctx, "d0")
	if err != nil {
		t.Fatal(err)
	}
	if d.Online || p.Online("d0") {
		t.Errorf("written online=%v, in memory online=%v, want both offline", d.Online, p.Online("d0"))
	}
}

// What is recorded comes from the service's one clock, in each of them.
func TestRecordedTimesComeFromTheServicesClock(t *testing.T) {
	st := tempStore(t)
	log := slog.New(slog.DiscardHandler)
	presence := NewPresence(st, log, true)
	dl := NewDelivery(st, &recorder{}, Topics{Prefix: "dh"}, presence, log)
	waiters := NewAckWaiters()
	for name, clock := range map[string]func() time.Time{
		"presence": presence.clock, "delivery": dl.clock,
		"dispatcher": NewDispatcher(st, dl, waiters, log, DispatcherConfig{}).clock,
		"tracker":    NewTracker(st, Topics{Prefix: "dh"}, presence, waiters, log).clock,
	} {
		if reflect.ValueOf(clock).Pointer() != reflect.ValueOf(wallclock.Now).Pointer() {
			t.Errorf("the %s's clock is not wallclock.Now", name)
		}
	}
}
