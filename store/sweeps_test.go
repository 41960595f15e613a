package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// Purges and the expiry sweep work a few hundred rows per statement, so that they
// never hold the database's one writer for long; they still finish the job, past
// one chunk, and touch nothing newer than their cut.
func TestSweepsGoPastOneChunk(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		const old, recent = 1234, 3

		var logs []store.RequestLog
		for i := range old + recent {
			at := now.Add(-time.Hour)
			if i >= old {
				at = now
			}
			logs = append(logs, store.RequestLog{ID: fmt.Sprintf("r%04d", i), At: at, Method: "POST", Status: 200, Code: "success"})
		}
		if err := st.InsertRequestLogs(ctx, logs); err != nil {
			t.Fatal(err)
		}
		if n, err := st.PurgeRequestLogs(ctx, now.Add(-time.Minute)); err != nil || n != old {
			t.Fatalf("purged %d request logs (%v), want %d", n, err, old)
		}
		if _, total, _ := st.RequestLogs(ctx, store.RequestFilter{}, store.Page{Limit: 10}); total != recent {
			t.Fatalf("%d request logs left, want %d", total, recent)
		}

		devices := make([]string, 700)
		for i := range devices {
			devices[i] = fmt.Sprintf("d%03d", i)
			if err := st.CreateDevice(ctx, device(devices[i])); err != nil {
				t.Fatal(err)
			}
		}
		var nds []*store.NewDispatch
		for i := range 600 {
			nd := newDispatch(fmt.Sprintf("x%03d", i), devices[i:i+1], fmt.Sprintf("key%03d", i))
			if i == 0 {
				nd = newDispatch("x000", devices, "key000") // 700 commands
			}
			nd.Idempotency.CreatedAt = now.Add(-48 * time.Hour)
			if i >= 598 {
				nd.Idempotency.CreatedAt = now
			}
			nds = append(nds, nd)
		}
		if _, err := st.WriteDispatches(ctx, nds); err != nil {
			t.Fatal(err)
		}
		if n, err := st.PurgeIdempotency(ctx, now.Add(-24*time.Hour)); err != nil || n != 598 {
			t.Fatalf("purged %d idempotency records (%v), want 598", n, err)
		}
		for i, want := range map[int]bool{0: false, 597: false, 598: true, 599: true} {
			_, err := st.IdempotentResponse(ctx, "k", fmt.Sprintf("key%03d", i), now.Add(-72*time.Hour))
			if got := err == nil; got != want {
				t.Fatalf("key%03d kept = %v (%v), want %v", i, got, err, want)
			}
		}

		// newDispatch's commands expire in a minute: x000's 700 and 599 others.
		// A sweep out of its budget does one chunk, and says it stopped.
		ended, cancel := context.WithTimeout(ctx, 0)
		defer cancel()
		if n, err := st.ExpireCommands(ended, now.Add(2*time.Minute)); !errors.Is(err, context.DeadlineExceeded) || n != 500 {
			t.Fatalf("a sweep past its budget expired %d commands (%v), want one chunk of 500", n, err)
		}
		if n, err := st.ExpireCommands(ctx, now.Add(2*time.Minute)); err != nil || n != 700+599-500 {
			t.Fatalf("expired %d commands (%v), want %d", n, err, 700+599-500)
		}
		counts, err := st.CommandCounts(ctx, []string{"x000", "x599"})
		if err != nil || counts["x000"][store.StateExpired] != 700 || counts["x599"][store.StateExpired] != 1 {
			t.Fatalf("counts after the sweep: %v (%v)", counts, err)
		}
		if n, err := st.ExpireCommands(ctx, now.Add(2*time.Minute)); err != nil || n != 0 {
			t.Fatalf("a second sweep expired %d (%v), want 0", n, err)
		}
	})
}

// On PostgreSQL the expiry sweep can meet an ack of the same command: the sweep
// has picked its rows, the ack's transaction holds one of them, then commits.
// The sweep must then leave that command succeeded, not mark it expired; and a
// purge must not delete an idempotency record used again meanwhile.
func TestSweepsSkipRowsChangedMeanwhile(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	st, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	side, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close(ctx)

	now := time.Now().UTC()
	if err := st.CreateDevice(ctx, device("d1")); err != nil {
		t.Fatal(err)
	}
	nd := newDispatch("x1", []string{"d1"}, "key1")
	nd.Idempotency.CreatedAt = now.Add(-48 * time.Hour)
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}

	// sweepBehind runs sweep while change holds its row, then commits the change,
	// and returns what the sweep said.
	sweepBehind := func(change string, sweep func() (int64, error)) (int64, error) {
		t.Helper()
		tx, err := side.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, change); err != nil {
			t.Fatal(err)
		}
		type result struct {
			n   int64
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := sweep()
			done <- result{n, err}
		}()
		waitForLockWait(t, tx)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-done
		return r.n, r.err
	}

	n, err := sweepBehind(`UPDATE commands SET state = 'succeeded' WHERE id = 'x1-d1'`,
		func() (int64, error) { return st.ExpireCommands(ctx, now.Add(2*time.Minute)) })
	if err != nil || n != 0 {
		t.Fatalf("the sweep expired %d (%v), want 0: the command was acked meanwhile", n, err)
	}
	if counts, _ := st.CommandCounts(ctx, []string{"x1"}); counts["x1"][store.StateSucceeded] != 1 {
		t.Fatalf("after the sweep: %v, want the command succeeded", counts)
	}

	n, err = sweepBehind(`UPDATE idempotencies SET created_at = now() WHERE idem_key = 'key1'`,
		func() (int64, error) { return st.PurgeIdempotency(ctx, now.Add(-24*time.Hour)) })
	if err != nil || n != 0 {
		t.Fatalf("the purge deleted %d (%v), want 0: the key was used again meanwhile", n, err)
	}
	if _, err := st.IdempotentResponse(ctx, "k", "key1", now.Add(-time.Hour)); err != nil {
		t.Fatalf("the record used again is gone: %v", err)
	}
}

// waitForLockWait returns once another backend waits for a lock that tx holds.
func waitForLockWait(t *testing.T, tx pgx.Tx) {
	t.Helper()
	ctx := context.Background()
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var waiting int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
	}
	t.Fatal("the sweep never waited for the row")
}

// devicehooks' connections are named in pg_stat_activity, so that an operator
// can tell them apart; an application_name in the URL wins.
func TestPostgresConnectionsAreNamed(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, c := range []struct{ url, want string }{{dsn, "devicehooks"}, {dsn + "&application_name=devicehooks-eu", "devicehooks-eu"}} {
		st, err := store.Open(ctx, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := admin.Query(ctx, `SELECT DISTINCT application_name FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		st.Close()
		if err != nil || len(names) != 1 || names[0] != c.want {
			t.Errorf("%s: the store's connections are named %q (%v), want %q", c.url, names, err, c.want)
		}
	}
}
