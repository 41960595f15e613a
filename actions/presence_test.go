package actions_test

import (
	"context"
	"log/slog"
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
