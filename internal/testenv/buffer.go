package testenv

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects output (a logger's, a process's) that a test reads while it
// is being written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor waits until the output contains text, failing the test with the
// output after timeout.
func (s *Buffer) WaitFor(t testing.TB, timeout time.Duration, text string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v in:\n%s", text, timeout, s.String())
		}
		time.Sleep(pollInterval)
	}
}
