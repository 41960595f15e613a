package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// An operator whose player cannot log in finds it in the log: which user,
// from where. A flood of attempts makes one line per refusalLogEvery, which
// counts the refusals it stands for.
func TestRefusedLoginsAreLoggedAtARate(t *testing.T) {
	var out lockedBuffer
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr:      "127.0.0.1:0",
		Logger:       slog.New(slog.NewTextHandler(&out, nil)),
		Authenticate: func(user, password string) bool { return user == "lobby-1" && password == "right" },
		Allow:        func(string, string, bool) bool { return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })

	for i := 0; i < 3; i++ {
		opts := paho.NewClientOptions().AddBroker("tcp://" + e.Addr()).SetClientID("c").
			SetUsername("lobby-1").SetPassword("s3cret-guess").SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
			t.Fatalf("connection %d with a wrong password was not refused: %v", i, tok.Error())
		}
	}
	if got := e.RefusedLogins(); got != 3 {
		t.Fatalf("refused logins: %d, want 3", got)
	}
	lines := out.lines("login refused")
	if len(lines) != 1 {
		t.Fatalf("want one line for three refusals in a moment, got %d:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"level=WARN", "user=lobby-1", "remote=127.0.0.1:", "not_logged_before=0"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the line lacks %q: %s", want, lines[0])
		}
	}
	if strings.Contains(out.String(), "s3cret-guess") {
		t.Errorf("the log has the password: %s", out.String())
	}
}

func TestRefusalLogCountsWhatItSkipped(t *testing.T) {
	var out lockedBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var r refusalLog
	t0 := time.Unix(1_700_000_000, 0)
	r.note(log, "", "127.0.0.1:1", t0)
	r.note(log, "a", "127.0.0.1:2", t0.Add(time.Second))
	r.note(log, "b", "127.0.0.1:3", t0.Add(refusalLogEvery-time.Millisecond))
	r.note(log, strings.Repeat("é", 100), "127.0.0.1:4", t0.Add(refusalLogEvery))
	lines := out.lines("login refused")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], `reason="no username"`) {
		t.Errorf("an anonymous attempt's line: %s", lines[0])
	}
	if !strings.Contains(lines[1], "not_logged_before=2") || !strings.Contains(lines[1], "user="+strings.Repeat("é", 32)+"…") {
		t.Errorf("the second line should count the two skipped and clip the user to 64 bytes: %s", lines[1])
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the lines that contain s.
func (b *lockedBuffer) lines(s string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
