package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// fakeTB records Fatalf/Skipf instead of ending the real test; like the real
// ones they end the calling goroutine.
type fakeTB struct {
	testing.TB
	mu          sync.Mutex
	fatal, skip string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skip = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// runFake runs fn with a fakeTB in its own goroutine and waits for it.
func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("fake test did not finish within 10s")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	var calls atomic.Int32
	WaitFor(t, 5*time.Second, "five calls", func() bool { return calls.Add(1) >= 5 })
	if n := calls.Load(); n != 5 {
		t.Fatalf("cond called %d times, want 5", n)
	}
}

func TestWaitForChecksOnceWithZeroTimeout(t *testing.T) {
	called := false
	WaitFor(t, 0, "immediately true", func() bool { called = true; return true })
	if !called {
		t.Fatal("cond not called")
	}
}

func TestWaitForFailsAfterTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	start := time.Now()
	var calls atomic.Int32
	f := runFake(t, func(tb testing.TB) {
		WaitFor(tb, timeout, "the moon to turn blue", func() bool { calls.Add(1); return false })
	})
	elapsed := time.Since(start)
	if !strings.Contains(f.fatal, "the moon to turn blue") {
		t.Fatalf("Fatalf message %q does not contain the wait message", f.fatal)
	}
	if elapsed < timeout || elapsed > 5*time.Second {
		t.Fatalf("failed after %v, want about %v", elapsed, timeout)
	}
	if calls.Load() < 2 {
		t.Fatalf("cond polled %d times in %v, want several", calls.Load(), timeout)
	}
}

func TestNeedFailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	f := runFake(t, func(tb testing.TB) { Need(tb, "the flux capacitor", errors.New("not installed")) })
	if f.skip != "" || !strings.Contains(f.fatal, "the flux capacitor") || !strings.Contains(f.fatal, "not installed") {
		t.Fatalf("fatal=%q skip=%q, want a failure naming what and why", f.fatal, f.skip)
	}
}

func TestNeedSkipsOutsideCI(t *testing.T) {
	t.Setenv("CI", "")
	f := runFake(t, func(tb testing.TB) { Need(tb, "the flux capacitor", errors.New("not installed")) })
	if f.fatal != "" || !strings.Contains(f.skip, "the flux capacitor") || !strings.Contains(f.skip, "not installed") {
		t.Fatalf("fatal=%q skip=%q, want a skip naming what and why", f.fatal, f.skip)
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr() = %q (%v), want 127.0.0.1:PORT", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("cannot listen on the free address %s: %v", addr, err)
	}
	_ = l.Close()
}

func TestChromium(t *testing.T) {
	p := Chromium(t)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("Chromium() = %q: not an executable (%v)", p, err)
	}
}
