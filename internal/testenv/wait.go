package testenv

import (
	"net"
	"testing"
	"time"
)

// pollInterval is how often WaitFor and the service start-up waits poll.
const pollInterval = 10 * time.Millisecond

// FreeAddr returns "127.0.0.1:PORT" of a currently free TCP port. The port
// is only known to be free at the moment of the call; callers that bind it
// later should be prepared for a rare collision.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("testenv: no free TCP port on 127.0.0.1: %v", err)
	}
	return addr
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// WaitFor polls cond every 10ms until it returns true or the timeout passes;
// then t.Fatalf with the message. Use this instead of sleeps. cond is called
// at least once, even with a zero timeout.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("testenv: timed out after %v waiting for: %s", timeout, msg)
	}
}

// poll calls cond every pollInterval until it returns true (poll returns
// true) or timeout has passed (poll returns false).
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		<-ticker.C
	}
}

// acceptsTCP reports whether addr accepts a TCP connection right now.
func acceptsTCP(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
