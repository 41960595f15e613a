package actions_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/store"

	_ "github.com/mattn/go-sqlite3"
)

// sink records what the Dispatcher hands to delivery.
type sink struct {
	mu   sync.Mutex
	cmds []store.Command
}

func (s *sink) Enqueue(cmds []store.Command) {
	s.mu.Lock()
	s.cmds = append(s.cmds, cmds...)
	s.mu.Unlock()
}
func (s *sink) DesiredChanged([]string) {}

// TestWriterCommitsTriggersMarksAndAcks: the Dispatcher's writer takes triggers,
// published marks and acks from many goroutines at once, and still writes each
// job submitted after it has stopped (at shutdown) instead of leaving it waiting.
func TestWriterCommitsTriggersMarksAndAcks(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	now := time.Now().UTC()
	a := &store.Action{ID: "a1", Name: "a", EventID: "evt_a", Function: actions.LoadURL, TargetType: actions.TargetDevice,
		TargetID: "d1", Params: `{"url":"https://example.com"}`, Enabled: true, TTLSeconds: 60, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	sk := &sink{}
	d := actions.NewDispatcher(st, sk, actions.NewAckWaiters(), slog.New(slog.DiscardHandler), actions.DispatcherConfig{})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { d.Run(runCtx); close(ran) }()

	const callers, each = 8, 25
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				out, err := d.Trigger(ctx, actions.Trigger{Action: a, Method: "POST"})
				if err != nil || out.Targets != 1 {
					t.Errorf("trigger: %+v %v", out, err)
				}
			}
		})
	}
	wg.Wait()
	sk.mu.Lock()
	cmds := append([]store.Command(nil), sk.cmds...)
	sk.mu.Unlock()
	if len(cmds) != callers*each {
		t.Fatalf("%d commands handed to delivery, want %d", len(cmds), callers*each)
	}
	half := len(cmds) / 2
	for i, c := range cmds {
		wg.Go(func() {
			if i < half { // published, then acked
				if err := d.MarkPublished(ctx, []string{c.ID}, time.Now().UTC()); err != nil {
					t.Error(err)
				}
			}
			applied, err := d.ApplyAcks(ctx, []store.Ack{{CommandID: c.ID, DeviceID: "d1", State: store.StateSucceeded, At: time.Now().UTC()}})
			if err != nil || len(applied) != 1 || !applied[0] {
				t.Errorf("ack %s: %v %v", c.ID, applied, err)
			}
		})
	}
	wg.Wait()

	stop()
	<-ran
	// After Run has stopped, jobs are written directly.
	last := cmds[0]
	if err := d.MarkPublished(ctx, []string{last.ID}, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Trigger(ctx, actions.Trigger{Action: a, Method: "POST"}); err != nil {
		t.Fatalf("trigger after Run stopped: %v", err)
	}
	counts, err := st.CountCommandsByState(ctx)
	if err != nil || counts[store.StateSucceeded] != callers*each || counts[store.StateQueued] != 1 {
		t.Fatalf("commands by state: %v %v", counts, err)
	}
}

// openStore opens a fresh SQLite store (at path) with one device, d1; the test
// closes it.
func openStore(t *testing.T) (st *store.Store, path string) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "a.db")
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	if err := st.CreateDevice(ctx, &store.Device{ID: "d1", Name: "d1", TokenHash: "h", MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return st, path
}

// An idempotency record written before fingerprints were kept has none: a
// retry with its key replays it (a new key for another request is the caller's
// business), rather than being refused as a reused key.
func TestReplayOfARecordWithoutFingerprint(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	now := time.Now().UTC()
	nd := &store.NewDispatch{
		Dispatch:         store.Dispatch{ID: "disp", ActionID: "a", ActionName: "a", EventID: "evt_a", Function: "restart", Method: "POST", CreatedAt: now},
		Idempotency:      &store.Idempotency{APIKeyID: "k1", Key: "order-1", DispatchID: "disp", Response: `{"dispatch_id":"disp"}`, CreatedAt: now},
		IdempotencySince: now.Add(-actions.IdempotencyWindow),
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	d := actions.NewDispatcher(st, &sink{}, actions.NewAckWaiters(), slog.New(slog.DiscardHandler), actions.DispatcherConfig{})
	out, err := d.Replay(ctx, "k1", "order-1", "evt_a", nil)
	if err != nil || out == nil || !out.Replayed {
		t.Fatalf("replay of a record without fingerprint: %+v, %v", out, err)
	}
}

// A record written by a build that fingerprinted the sensor data as it came
// (before 2026-11-25) is replayed by a retry of the same call still, though
// the fingerprint is now of the command's sensor data ("value" added).
func TestReplayOfARecordWithTheSensorDataAsItCame(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	now := time.Now().UTC()
	sum := sha256.Sum256([]byte("evt_a\x00" + `{"event":"opened","id":"12"}` + "\n"))
	nd := &store.NewDispatch{
		Dispatch: store.Dispatch{ID: "disp", ActionID: "a", ActionName: "a", EventID: "evt_a", Function: "sensor_event", Method: "POST", CreatedAt: now},
		Idempotency: &store.Idempotency{APIKeyID: "k1", Key: "order-1", DispatchID: "disp", Response: `{"dispatch_id":"disp"}`,
			Fingerprint: hex.EncodeToString(sum[:]), CreatedAt: now},
		IdempotencySince: now.Add(-actions.IdempotencyWindow),
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	d := actions.NewDispatcher(st, &sink{}, actions.NewAckWaiters(), slog.New(slog.DiscardHandler), actions.DispatcherConfig{})
	out, err := d.Replay(ctx, "k1", "order-1", "evt_a", map[string]any{"id": "12", "event": "opened"})
	if err != nil || out == nil || !out.Replayed {
		t.Fatalf("replay of the same call: %+v, %v", out, err)
	}
	if _, err := d.Replay(ctx, "k1", "order-1", "evt_a", map[string]any{"id": "13", "event": "opened"}); err == nil {
		t.Fatal("another reading with the same key was replayed")
	}
}

// TestWriterFailsFastWhileTheDatabaseIsDown: with the database's write lock
// held elsewhere, a round of triggers fails within the round's deadline, its
// retries included, instead of retrying each trigger with a timeout of its own
// (8 triggers took 45 s so).
func TestWriterFailsFastWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, path := openStore(t)
	now := time.Now().UTC()
	a := &store.Action{ID: "a1", Name: "a", EventID: "evt_a", Function: actions.Restart, TargetType: actions.TargetDevice,
		TargetID: "d1", Params: `{}`, Enabled: true, TTLSeconds: 60, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Another process's transaction holds the write lock.
	other, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.ExecContext(ctx, "ROLLBACK")

	d := actions.NewDispatcher(st, &sink{}, actions.NewAckWaiters(), slog.New(slog.DiscardHandler), actions.DispatcherConfig{})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go d.Run(runCtx)

	// SQLite's busy timeout is 5 s: a round fails after it, and its first
	// retry after another; the rest of the round must fail with them. Rounds
	// form as the triggers arrive, so allow three rounds' worth.
	const triggers = 8
	start := time.Now()
	var wg sync.WaitGroup
	for range triggers {
		wg.Go(func() {
			if _, err := d.Trigger(ctx, actions.Trigger{Action: a, Method: "POST"}); actions.ErrorCode(err) != actions.CodeUnavailable {
				t.Errorf("trigger while the database is locked: %v", err)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 26*time.Second {
		t.Fatalf("%d triggers took %v to fail", triggers, took)
	}
}
