package store_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// TestOpenWaitsForPostgres: a PostgreSQL server that cannot be reached yet is
// waited for, as when a service and its database start together or the
// database restarts under a standby; one that answers but refuses (no such
// database) fails at once.
func TestOpenWaitsForPostgres(t *testing.T) {
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	u.Host = freeAddr(t) // nothing listens there yet
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, claim := range []bool{false, true} {
		opened := make(chan error, 1)
		go func() {
			opts := []store.Option{store.WaitForServer()}
			if claim {
				opts = append(opts, store.AsTheActiveInstance(nil))
			}
			st, err := store.Open(ctx, u.String(), nil, opts...)
			if err == nil {
				st.Close()
			}
			opened <- err
		}()
		select {
		case err := <-opened:
			t.Fatalf("claim %v: Open returned while the database was away: %v", claim, err)
		case <-time.After(700 * time.Millisecond):
		}
		stop := forward(t, u.Host, target)
		if err := <-opened; err != nil {
			t.Fatalf("claim %v: Open once the database is there: %v", claim, err)
		}
		stop()
	}

	// Without WaitForServer (a tool run by hand or by cron), at once.
	start := time.Now()
	if _, err := store.Open(ctx, u.String(), nil); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a tool's Open while the database is away: %v after %s, want an error at once", err, time.Since(start))
	}
	stop := forward(t, u.Host, target)
	defer stop()
	u.Path = "/no_such_database"
	start = time.Now()
	if _, err := store.Open(ctx, u.String(), nil, store.WaitForServer()); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a database that does not exist: %v after %s, want an error at once", err, time.Since(start))
	}
}

// A standby that waits for the active instance outlives a moment in which the
// database cannot be reached, and takes over once the active one stops.
func TestStandbyOutlivesADatabaseRestart(t *testing.T) {
	dsn := testenv.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	active, err := store.Open(ctx, dsn, nil, store.AsTheActiveInstance(nil))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = freeAddr(t)
	stop := forward(t, u.Host, target)
	waiting := make(chan struct{}, 1)
	opened := make(chan error, 1)
	go func() {
		st, err := store.Open(ctx, u.String(), nil, store.WaitForServer(), store.AsTheActiveInstance(func(*store.Store, bool) error {
			select {
			case waiting <- struct{}{}:
			default:
			}
			return nil
		}))
		if err == nil {
			st.Close()
		}
		opened <- err
	}()
	select {
	case <-waiting:
	case err := <-opened:
		t.Fatalf("the second instance opened beside the first: %v", err)
	case <-ctx.Done():
		t.Fatal("the second instance never waited as a standby")
	}
	stop() // the standby's connections drop, and no new one gets through
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-opened:
		t.Fatalf("the standby gave up while the database was away: %v", err)
	default:
	}
	stop = forward(t, u.Host, target)
	defer stop()
	active.Close()
	if err := <-opened; err != nil {
		t.Fatalf("the standby, once the active instance stopped: %v", err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// forward listens on addr and relays each connection to target, until stop,
// which closes the listener and every connection.
func forward(t *testing.T, addr, target string) (stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		conns   []net.Conn
		stopped bool
		wg      sync.WaitGroup
	)
	// track notes a connection to close at stop; after stop, it closes it.
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			c.Close()
			return false
		}
		conns = append(conns, c)
		return true
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			back, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			if !track(c) || !track(back) {
				c.Close()
				back.Close()
				return
			}
			wg.Go(func() { _, _ = io.Copy(back, c); back.Close() })
			wg.Go(func() { _, _ = io.Copy(c, back); c.Close() })
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			l.Close()
			mu.Lock()
			stopped = true
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestClaimSeesThroughSymlinks: an instance that names the SQLite file through
// a symbolic link waits for the one that holds it, as under its own name.
func TestClaimSeesThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "real", "dh.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := store.Open(ctx, db, nil, store.AsTheActiveInstance(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	second, err := store.Open(ctx, link, nil, store.AsTheActiveInstance(func(*store.Store, bool) error {
		select {
		case waited <- struct{}{}:
		default:
		}
		cancel() // seen waiting: enough
		return nil
	}))
	if err == nil {
		second.Close()
		t.Fatal("a second instance took the database through a symbolic link")
	}
	select {
	case <-waited:
	default:
		t.Fatalf("the second instance did not wait: %v", err)
	}
}
