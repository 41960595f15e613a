package broker

import (
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// While the first connection fails, the reminder that the broker is still
// away counts those attempts too: "reconnect_attempts=0" beside a log of
// refused connections read as if nothing were being tried.
func TestStillUnreachableCountsTheFirstConnectionsAttempts(t *testing.T) {
	addr := testenv.FreeAddr(t) // nothing listens there: every attempt is refused
	var logs testenv.Buffer
	x := NewExternal(ExternalConfig{URL: "tcp://" + addr, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	x.reminders = reminders{first: 1500 * time.Millisecond, every: time.Minute, tick: 50 * time.Millisecond}
	x.Start()
	defer x.Close()
	attempts := regexp.MustCompile(`still unreachable.* reconnect_attempts=(\d+)`)
	testenv.WaitFor(t, 10*time.Second, "the reminder", func() bool { return attempts.MatchString(logs.String()) })
	if n, _ := strconv.Atoi(attempts.FindStringSubmatch(logs.String())[1]); n < 1 {
		t.Fatalf("the reminder counts no attempt: %s", logs.String())
	}
}
