package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/internal/logevery"
	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// faultyStore opens a store, and a side door to its SQLite file for injecting
// faults.
func faultyStore(t *testing.T) (*store.Store, func(query string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rl.db")
	st, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, testenv.SQLiteSide(t, path)
}

// poisonedStore is a faultyStore whose database refuses any record of the event
// "poison".
func poisonedStore(t *testing.T) (*store.Store, func(query string)) {
	t.Helper()
	st, exec := faultyStore(t)
	exec(`CREATE TRIGGER poison BEFORE INSERT ON request_logs WHEN NEW.event_id = 'poison'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`)
	return st, exec
}

func record(id, event string, at time.Time) store.RequestLog {
	return store.RequestLog{ID: id, At: at, Method: "POST", KeyID: "key-1", KeyPrefix: "dhk_test", EventID: event, Status: 200, Code: "success"}
}

func storedIDs(t *testing.T, st *store.Store) map[string]bool {
	t.Helper()
	rs, _, err := st.RequestLogs(context.Background(), store.RequestFilter{}, store.Page{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range rs {
		ids[r.ID] = true
	}
	return ids
}

// A record the database refuses does not hold up the others of its batch; while
// the database refuses everything, the records wait (for a minute at most). The
// same through the trigger path's writer, which the request log writes with in
// the service, and in transactions of its own.
func TestRequestLogWriteKeepsWhatTheDatabaseDidNotTake(t *testing.T) {
	for _, writer := range []string{"dispatcher", "store"} {
		t.Run(writer, func(t *testing.T) {
			st, exec := poisonedStore(t)
			l := NewRequestLog(st, slog.New(slog.DiscardHandler))
			if writer == "dispatcher" {
				l.Writer = runDispatcher(t, st)
			}
			testRequestLogKeepsWhatTheDatabaseDidNotTake(t, l, st, exec)
		})
	}
}

// runDispatcher starts a Dispatcher's writer on st until the test ends.
func runDispatcher(t *testing.T, st *store.Store) *actions.Dispatcher {
	log := slog.New(slog.DiscardHandler)
	d := actions.NewDispatcher(st, nil, actions.NewAckWaiters(), log, actions.DispatcherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func testRequestLogKeepsWhatTheDatabaseDidNotTake(t *testing.T, l *RequestLog, st *store.Store, exec func(string)) {
	ctx := context.Background()
	now := time.Now().UTC()
	left := l.write(ctx, []store.RequestLog{record("a", "evt", now), record("p", "poison", now), record("b", "evt", now)}, now)
	if ids := storedIDs(t, st); !ids["a"] || !ids["b"] || ids["p"] || len(left) != 1 || left[0].ID != "p" {
		t.Fatalf("stored %v, left %v: want a and b stored, the refused one left", ids, left)
	}
	// At the next flush the refused record comes first: it alone does not make
	// the database look down.
	left = l.write(ctx, append(left, record("a2", "evt", now), record("b2", "evt", now)), now)
	if ids := storedIDs(t, st); !ids["a2"] || !ids["b2"] || len(left) != 1 || left[0].ID != "p" {
		t.Fatalf("stored %v, left %v: want a2 and b2 stored behind the refused one", ids, left)
	}
	if left = l.write(ctx, left, now.Add(retryRecordsFor)); len(left) != 0 {
		t.Fatalf("a record refused for %v is still kept: %v", retryRecordsFor, left)
	}

	exec(`CREATE TRIGGER down BEFORE INSERT ON request_logs BEGIN SELECT RAISE(ABORT, 'down'); END`)
	left = l.write(ctx, []store.RequestLog{record("c", "evt", now), record("d", "evt", now)}, now)
	if len(left) != 2 {
		t.Fatalf("with the database refusing everything, %d of 2 records are kept", len(left))
	}
	exec(`DROP TRIGGER down`)
	if left = l.write(ctx, append(left, record("e", "evt", now)), now); len(left) != 0 {
		t.Fatalf("left after the database came back: %v", left)
	}
	if ids := storedIDs(t, st); !ids["c"] || !ids["d"] || !ids["e"] {
		t.Fatalf("stored %v: want c, d and e", ids)
	}
}

// A flush goes in transactions of recordsPerTx records, so the trigger path never
// waits long for the database. When the database stops taking records part way
// (the first two of a transaction refused alone), what went before stays written
// and the rest waits for the next flush.
func TestRequestLogWritesInBoundedTransactions(t *testing.T) {
	st, exec := faultyStore(t)
	ctx := context.Background()
	l := NewRequestLog(st, slog.New(slog.DiscardHandler))
	now := time.Now().UTC()

	exec(fmt.Sprintf(`CREATE TRIGGER down BEFORE INSERT ON request_logs WHEN NEW.id >= 'r%03d'
		BEGIN SELECT RAISE(ABORT, 'down'); END`, recordsPerTx))
	var buf []store.RequestLog
	for i := range 2*recordsPerTx + 5 {
		buf = append(buf, record(fmt.Sprintf("r%03d", i), "evt", now))
	}
	left := l.write(ctx, buf, now)
	if ids := storedIDs(t, st); len(ids) != recordsPerTx || len(left) != recordsPerTx+5 || left[0].ID != fmt.Sprintf("r%03d", recordsPerTx) {
		t.Fatalf("stored %d, left %d: want the first transaction's %d stored and the rest waiting", len(ids), len(left), recordsPerTx)
	}
	exec(`DROP TRIGGER down`)
	if left = l.write(ctx, left, now); len(left) != 0 {
		t.Fatalf("left after the database came back: %v", left)
	}
	if ids := storedIDs(t, st); len(ids) != len(buf) {
		t.Fatalf("stored %d of %d", len(ids), len(buf))
	}
}

// Run purges what is older than keep when it starts (and hourly), beside the
// flushes, and returns once both have stopped.
func TestRequestLogRunPurgesBesideTheFlushes(t *testing.T) {
	st, _ := faultyStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.Buffer{}
	l := NewRequestLog(st, slog.New(slog.NewTextHandler(logs, nil)))
	now := time.Now().UTC()
	if err := st.InsertRequestLogs(ctx, []store.RequestLog{record("old", "evt", now.Add(-2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		l.Run(ctx, time.Hour)
	}()
	l.Record(record("new", "evt", now))
	testenv.WaitFor(t, 5*time.Second, "the old record purged and the new one written", func() bool {
		ids := storedIDs(t, st)
		return !ids["old"] && ids["new"]
	})
	logs.WaitFor(t, 5*time.Second, `msg="old request log records purged" count=1`)
	cancel()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// Records past the queue's bound, while the writer is behind, are counted as
// dropped rather than queued.
func TestRequestLogBoundsWhatWaits(t *testing.T) {
	st, _ := faultyStore(t)
	l := NewRequestLog(st, slog.New(slog.DiscardHandler))
	now := time.Now().UTC()
	for i := range queueBound + 5 {
		l.Record(record(fmt.Sprintf("r%05d", i), "evt", now))
	}
	if n := l.dropped.Load(); n != 5 {
		t.Fatalf("%d records dropped past the bound, want 5", n)
	}
}

// What is queued when Run stops is written, even if it never got to a flush.
func TestRequestLogWritesWhatWaitsAtStop(t *testing.T) {
	st, _ := faultyStore(t)
	l := NewRequestLog(st, slog.New(slog.DiscardHandler))
	now := time.Now().UTC()
	const n = 10 // under flushAt: only the stop writes them
	for i := range n {
		l.Record(record(fmt.Sprintf("r%02d", i), "evt", now))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx, time.Hour)
	if ids := storedIDs(t, st); len(ids) != n {
		t.Fatalf("stored %d records, want the %d queued", len(ids), n)
	}
}

// While the database refuses every record, Run holds a queue's worth for retry
// and takes no more: later records wait in the queue, and past its bound they
// are dropped and counted, rather than piling up for the retry minute.
func TestRequestLogHoldsAQueuesWorthWhileTheDatabaseFails(t *testing.T) {
	st, exec := faultyStore(t)
	exec(`CREATE TRIGGER refuse BEFORE INSERT ON request_logs BEGIN SELECT RAISE(ABORT, 'refused'); END`)
	var logs testenv.Buffer
	l := NewRequestLog(st, slog.New(slog.NewTextHandler(&logs, nil)))
	l.writeErrs = logevery.New(0) // every failed flush says how many wait
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		l.Run(ctx, time.Hour)
	}()
	defer func() { cancel(); <-ran }()
	now := time.Now().UTC()
	for i := range queueBound {
		l.Record(record(fmt.Sprintf("a%05d", i), "evt", now))
	}
	logs.WaitFor(t, 10*time.Second, fmt.Sprintf("waiting=%d ", queueBound)) // all taken, all held
	for i := range queueBound + 5 {
		l.Record(record(fmt.Sprintf("b%05d", i), "evt", now))
	}
	logs.WaitFor(t, 10*time.Second, "records dropped\" count=5")
}

// Records the database does not take by the stop are said to be lost, even
// when the failure that held them was already logged within the allowance.
func TestRequestLogSaysWhatTheStopLoses(t *testing.T) {
	st, exec := faultyStore(t)
	exec(`CREATE TRIGGER refuse BEFORE INSERT ON request_logs BEGIN SELECT RAISE(ABORT, 'refused'); END`)
	var logs testenv.Buffer
	l := NewRequestLog(st, slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Now().UTC()
	for i := range flushAt { // a flush fails, and uses the allowance
		l.Record(record(fmt.Sprintf("a%04d", i), "evt", now))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		l.Run(ctx, time.Hour)
	}()
	logs.WaitFor(t, 10*time.Second, "write request log")
	l.Record(record("b", "evt", now))
	cancel()
	<-ran
	logs.WaitFor(t, time.Second, fmt.Sprintf("records not written at stop\" waiting=%d dropped=0", flushAt+1))
}

// The limit for every source together holds when sources keep changing.
func TestAnonLimitBoundsAllSources(t *testing.T) {
	a := newAnonLimit()
	now := time.Now()
	kept := 0
	for i := 0; i < 5000; i++ {
		if a.allow(fmt.Sprintf("10.0.%d.%d", i/250, i%250), now) {
			kept++
		}
	}
	if kept != anonAllBurst {
		t.Fatalf("kept %d records of 5000 sources at once, want %d", kept, anonAllBurst)
	}
}

// A record of a call that started long ago (a slow body) must not refill the
// buckets: the limit runs on the clock of the records' arrival.
func TestRequestLogLimitRunsOnArrival(t *testing.T) {
	l := NewRequestLog(nil, slog.New(slog.DiscardHandler))
	old := time.Now().Add(-30 * time.Second)
	for i := 0; i < 100; i++ {
		for j := 0; j < anonSourceBurst+10; j++ {
			at := time.Now()
			if j == 0 {
				at = old
			}
			l.Record(store.RequestLog{ID: fmt.Sprint(i, "-", j), At: at, Source: fmt.Sprintf("10.1.%d.%d", i/200, i%200), Code: "unauthorized"})
		}
	}
	if kept := len(l.queue.Take(nil)); kept > anonAllBurst+50 {
		t.Fatalf("kept %d records of calls without a key, want at most about %d", kept, anonAllBurst)
	}
}

// Calls refused with 503 before their key was checked (too many at once) may
// have had a valid key: those over the limit are counted apart, and their
// line does not call them calls without a valid key.
func TestRequestLogCountsShedCallsApart(t *testing.T) {
	l := NewRequestLog(nil, slog.New(slog.DiscardHandler))
	for i := range anonSourceBurst + 25 {
		l.Record(store.RequestLog{ID: fmt.Sprint("shed-", i), At: time.Now(), Source: "10.2.0.1", Code: string(actions.CodeUnavailable)})
	}
	for i := range 5 {
		l.Record(store.RequestLog{ID: fmt.Sprint("bad-", i), At: time.Now(), Source: "10.2.0.1", Code: "unauthorized"})
	}
	if shed, bad := l.unshed.Load(), l.unlogged.Load(); shed != 25 || bad != 5 {
		t.Fatalf("over the limit: %d shed calls, %d calls with a bad key; want 25 and 5", shed, bad)
	}
}
