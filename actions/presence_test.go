package actions_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// A presence change whose write fails is written at a later flush, not lost.
func TestPresenceRetriesAFailedWrite(t *testing.T) {
	ctx := context.Background()
	st, path := openStore(t)
	exec := testenv.SQLiteSide(t, path)
	p := actions.NewPresence(st, slog.New(slog.DiscardHandler), true)
	if err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx, 20*time.Millisecond); close(done) }()
	defer func() { stop(); <-done }()

	exec(`CREATE TRIGGER down BEFORE UPDATE ON devices BEGIN SELECT RAISE(ABORT, 'injected'); END`)
	p.Subscribed("d1")
	time.Sleep(150 * time.Millisecond) // several flushes fail meanwhile
	if online := storedOnline(t, st, "d1"); online {
		t.Fatal("the presence was written through the failing trigger")
	}
	exec(`DROP TRIGGER down`)
	testenv.WaitFor(t, 5*time.Second, "the device's presence is written once writes work again", func() bool {
		return storedOnline(t, st, "d1")
	})
}

// An ack's last-seen time, held back from the database for a while, is
// written at shutdown: the next start does not go back to an older one.
func TestLastSeenWrittenAtShutdown(t *testing.T) {
	ctx := context.Background()
	st, path := openStore(t)
	p := actions.NewPresence(st, slog.New(slog.DiscardHandler), false)
	if err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx, 10*time.Millisecond); close(done) }()
	p.Status("d1", actions.StatusMessage{State: "online"}, false)
	testenv.WaitFor(t, 5*time.Second, "the status is written", func() bool { return storedOnline(t, st, "d1") })
	p.Seen("d1", time.Now().UTC()) // an ack, soon after: held back (seenWriteEvery)
	_, seen := p.State("d1")
	stop()
	<-done
	ps, err := st.PresenceStates(ctx)
	if err != nil || len(ps) != 1 || !ps[0].LastSeen.Equal(seen) {
		t.Fatalf("stored %+v (%v), want last seen %v", ps, err, seen)
	}

	// The next start loads it as written: a shutdown with nothing new writes
	// nothing (with 10,000 devices, it would write them all).
	var logs testenv.Buffer
	again := actions.NewPresence(st, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), false)
	if err := again.Load(ctx); err != nil {
		t.Fatal(err)
	}
	exec := testenv.SQLiteSide(t, path)
	exec(`CREATE TRIGGER watch BEFORE UPDATE ON devices BEGIN SELECT RAISE(ABORT, 'written'); END`)
	runCtx, stop = context.WithCancel(ctx)
	done = make(chan struct{})
	go func() { again.Run(runCtx, time.Hour); close(done) }()
	stop()
	<-done
	if strings.Contains(logs.String(), "save presence") {
		t.Fatalf("a device loaded and untouched was written at shutdown:\n%s", logs.String())
	}
}

// While the database refuses presence writes (a full disk), the flush that
// retries them every interval logs one line every 10 s, not one a flush; and
// the state is written once it takes writes again.
func TestFailingPresenceWritesAreLoggedSparingly(t *testing.T) {
	ctx := context.Background()
	st, path := openStore(t)
	var logs testenv.Buffer
	p := actions.NewPresence(st, slog.New(slog.NewTextHandler(&logs, nil)), false)
	if err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	exec := testenv.SQLiteSide(t, path)
	exec(`CREATE TRIGGER refuse BEFORE UPDATE ON devices BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx, 10*time.Millisecond); close(done) }()
	defer func() { stop(); <-done }()
	p.Status("d1", actions.StatusMessage{State: "online"}, false)
	time.Sleep(500 * time.Millisecond) // some fifty flushes, each refused
	if n := strings.Count(logs.String(), `msg="save presence`); n != 1 {
		t.Fatalf("%d lines for 0.5 s of refused writes, want 1:\n%s", n, logs.String())
	}
	exec(`DROP TRIGGER refuse`)
	testenv.WaitFor(t, 5*time.Second, "the status written once the database takes writes", func() bool { return storedOnline(t, st, "d1") })

	// At shutdown no retry follows: the log says what is not written.
	exec(`CREATE TRIGGER refuse BEFORE UPDATE ON devices BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`)
	before := len(logs.String())
	p.Status("d1", actions.StatusMessage{State: "offline"}, false)
	stop()
	<-done
	// (A flush before the stop may have said it will retry: the last says not.)
	last := logs.String()[before:]
	if i := strings.LastIndex(last, `msg="save presence`); i < 0 || !strings.HasPrefix(last[i:], `msg="save presence: not written at stop"`) {
		t.Errorf("the log of the flush at shutdown: %s", last)
	}
}

func storedOnline(t *testing.T, st *store.Store, id string) bool {
	t.Helper()
	ps, err := st.PresenceStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.DeviceID == id {
			return p.Online
		}
	}
	return false
}

// TestRetainedStatusAfterARestart: with an external broker, the broker
// replays each device's retained status when devicehooks (re)subscribes. The
// replay of the last status devicehooks applied brings the device back
// online, whatever the device's clock says; an older one does not; and the
// database agrees with memory throughout.
func TestRetainedStatusAfterARestart(t *testing.T) {
	at := func(d time.Duration) *time.Time { x := time.Now().UTC().Add(d); return &x }
	status := func(state string, at *time.Time) actions.StatusMessage {
		return actions.StatusMessage{State: state, At: at}
	}
	before := at(0) // an online sent before a will
	for _, tc := range []struct {
		name   string
		live   []actions.StatusMessage // received live, in this order
		replay actions.StatusMessage   // the retained one after the restart
		online bool
	}{
		{"the last status again", []actions.StatusMessage{status("online", at(0))}, status("online", nil), true},
		{"a clock an hour behind, after a will", []actions.StatusMessage{status("offline", nil), status("online", at(-time.Hour))}, status("online", nil), true},
		{"a will, then an online only the replay brings, from a clock an hour behind", []actions.StatusMessage{status("offline", nil)}, status("online", at(-time.Hour)), true},
		{"a clock an hour ahead, then a will", []actions.StatusMessage{status("online", at(time.Hour)), status("offline", nil)}, status("offline", nil), false},
		{"a clock an hour ahead, the same online again", []actions.StatusMessage{status("online", at(time.Hour))}, status("online", nil), true},
		{"an online older than the last status", []actions.StatusMessage{status("offline", at(0))}, status("online", at(-time.Hour)), false},
		{"the online from before a will, replayed by a broker gone back to an older save", []actions.StatusMessage{status("online", before), status("offline", nil)}, status("online", before), false},
		{"an online after a will, from a clock behind ours", []actions.StatusMessage{status("online", at(-2*time.Hour)), status("offline", nil)}, status("online", at(-time.Hour)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := openStore(t)
			log := slog.New(slog.DiscardHandler)
			p := actions.NewPresence(st, log, false)
			if err := p.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.live {
				p.Status("d1", m, false)
				flushPresence(p) // each state is written on its own
			}
			want := tc.live[len(tc.live)-1].State == "online"
			flushPresence(p)
			if p.Online("d1") != want || storedOnline(t, st, "d1") != want {
				t.Fatalf("before the restart: online %v in memory, %v stored; want %v", p.Online("d1"), storedOnline(t, st, "d1"), want)
			}
			// devicehooks restarts; the broker replays the retained status,
			// which is the last one sent (a nil At: the last live one's).
			p = actions.NewPresence(st, log, false)
			if err := p.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tc.replay.At == nil && tc.replay.State == "online" {
				tc.replay.At = tc.live[len(tc.live)-1].At
			}
			p.Status("d1", tc.replay, true)
			flushPresence(p)
			if p.Online("d1") != tc.online || storedOnline(t, st, "d1") != tc.online {
				t.Fatalf("after the replay: online %v in memory, %v stored; want %v", p.Online("d1"), storedOnline(t, st, "d1"), tc.online)
			}
			if _, seen := p.State("d1"); seen.After(time.Now()) {
				t.Fatalf("last seen %v, in the future", seen)
			}
		})
	}
}

// flushPresence writes what p holds, as Run does when it stops.
func flushPresence(p *actions.Presence) {
	ctx, stop := context.WithCancel(context.Background())
	stop()
	p.Run(ctx, time.Hour)
}

// A deleted device's connection events and will, which may arrive after it
// was forgotten, do not bring it back.
func TestForgottenDeviceStaysForgotten(t *testing.T) {
	for _, authoritative := range []bool{true, false} {
		st, _ := openStore(t)
		p := actions.NewPresence(st, slog.New(slog.DiscardHandler), authoritative)
		if err := p.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if authoritative {
			p.Subscribed("d1")
		} else {
			p.Status("d1", actions.StatusMessage{State: "online"}, false)
		}
		if p.OnlineCount() != 1 {
			t.Fatalf("authoritative %v: %d online, want 1", authoritative, p.OnlineCount())
		}
		p.Forget("d1")
		p.Disconnected("d1")
		p.Status("d1", actions.StatusMessage{State: "offline"}, false)
		if online, seen := p.State("d1"); online || !seen.IsZero() || p.OnlineCount() != 0 || len(p.OnlineIDs()) != 0 {
			t.Fatalf("authoritative %v: the forgotten device is known again (online %v, seen %v)", authoritative, online, seen)
		}
	}
}

// Of merges a device's stored last-seen time with the fresher one in memory.
func TestPresenceOfIsTheFresherState(t *testing.T) {
	st, _ := openStore(t)
	p := actions.NewPresence(st, slog.New(slog.DiscardHandler), true)
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored := time.Now().UTC().Add(-time.Hour)
	d := &store.Device{ID: "d1", LastSeen: &stored}
	if online, seen := p.Of(d); online || seen == nil || !seen.Equal(stored) {
		t.Fatalf("before any event: online %v, seen %v", online, seen)
	}
	p.Subscribed("d1")
	p.Seen("d1", time.Now().UTC())
	if online, seen := p.Of(d); !online || seen == nil || !seen.After(stored) {
		t.Fatalf("after an event: online %v, seen %v, stored %v", online, seen, stored)
	}
	if _, seen := p.Of(&store.Device{ID: "new"}); seen != nil {
		t.Fatalf("a device never seen: %v", seen)
	}
}
