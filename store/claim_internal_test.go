package store

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// TestClaimOnPostgres: the claim's session tells PostgreSQL to notice a
// vanished machine within seconds (keepalives), and a standby that takes the
// claim over waits for the instance that held it to notice its loss (it
// checks every checkClaimEvery) before it starts.
func TestClaimOnPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	start := time.Now()
	first, err := Open(ctx, dsn, log, AsTheActiveInstance(nil))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= takeoverDelay {
		t.Errorf("a first claim, with nobody to take over from, took %s", took)
	}
	for setting, want := range map[string]string{
		"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3", "tcp_user_timeout": "20000",
	} {
		var got string
		if err := first.claimConn.QueryRowContext(ctx, "SHOW "+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("the claim's session: %s = %s, want %s", setting, got, want)
		}
	}

	opened, waiting := make(chan *Store, 1), make(chan struct{})
	go func() {
		st, err := Open(ctx, dsn, log, AsTheActiveInstance(func(_ *Store, first bool) error {
			if first {
				close(waiting)
			}
			return nil
		}))
		if err != nil {
			t.Error(err)
		}
		opened <- st
	}()
	select {
	case <-waiting:
	case <-ctx.Done():
		t.Fatal("the second instance never waited as a standby")
	}
	first.Close()
	released := time.Now()
	second := <-opened
	if second == nil {
		return
	}
	defer second.Close()
	if waited := time.Since(released); waited < takeoverDelay {
		t.Errorf("the standby started %s after the claim was let go, before the other could notice its loss", waited)
	}
	if !strings.Contains(logs.String(), "took the database's claim over") {
		t.Errorf("the wait is not in the log:\n%s", logs.String())
	}
}
