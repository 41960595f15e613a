package broker

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/actions"
	"devicehooks/internal/testenv"
	"devicehooks/secrets"
)

// An operator whose player cannot log in finds it in the log: which user,
// from where. A flood of attempts makes one line per refusalLogEvery, which
// counts the refusals it stands for.
func TestRefusedLoginsAreLoggedAtARate(t *testing.T) {
	var out testenv.Buffer
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr:       "127.0.0.1:0",
		Logger:        slog.New(slog.NewTextHandler(&out, nil)),
		Authenticate:  func(user, password string) bool { return user == "lobby-1" && password == "right" },
		PlausibleUser: deviceID,
		Allow:         func(string, string, bool) bool { return true },
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
	lines := linesWith(&out, "login refused")
	if len(lines) != 1 {
		t.Fatalf("want one line for three refusals in a moment, got %d:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"level=WARN", "user=lobby-1", "remote=127.0.0.1:"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the line lacks %q: %s", want, lines[0])
		}
	}
	if strings.Contains(out.String(), "s3cret-guess") {
		t.Errorf("the log has the password: %s", out.String())
	}
}

func TestRefusalLogCountsWhatItSkipped(t *testing.T) {
	var out testenv.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	r := newRefusalLog(deviceID)
	t0 := time.Unix(1_700_000_000, 0)
	r.note(log, "lobby-1", "127.0.0.1:1", t0)
	r.note(log, "lobby-1", "127.0.0.1:1", t0.Add(time.Second)) // within 10 s: counted
	r.note(log, "admin", "127.0.0.1:2", t0.Add(2*time.Second)) // a scanner: its own line
	r.note(log, "lobby-1", "127.0.0.1:1", t0.Add(refusalLogEvery))
	lines := linesWith(&out, "login refused")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %d:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[1], "user=admin") || !strings.Contains(lines[2], "user=lobby-1") || !strings.Contains(lines[2], "more_since_last=1") {
		t.Errorf("a username's second line counts what it left out, another username has its own:\n%s", out.String())
	}
}

// What a refused login's line shows of its username: a device id as it is;
// a token (username and password swapped) masked; anything else by its length.
func TestRefusalLogShowsNoSecret(t *testing.T) {
	token := secrets.NewToken(secrets.DeviceTokenPrefix)
	for user, want := range map[string]string{
		"lobby-1":                 "user=lobby-1",
		"":                        `user="(not a device id: 0 bytes)"`,
		strings.Repeat("é", 100):  `user="(not a device id: 200 bytes)"`,
		"a b":                     `user="(not a device id: 3 bytes)"`,
		token:                     "user=" + token[:len(secrets.DeviceTokenPrefix)+6] + "…",
		"lobby-1\n level=ERROR x": `user="(not a device id: 22 bytes)"`,
	} {
		var out testenv.Buffer
		newRefusalLog(deviceID).note(slog.New(slog.NewTextHandler(&out, nil)), user, "127.0.0.1:1", time.Now())
		if !strings.Contains(out.String(), want) || strings.Contains(out.String(), token) {
			t.Errorf("username %q: want %s in\n%s", user, want, out.String())
		}
	}
}

// A scan through many usernames writes refusalLinesMax lines per
// refusalLogEvery, however many names it tries.
func TestRefusalLogBoundsAllUsernames(t *testing.T) {
	var out testenv.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	r := newRefusalLog(deviceID)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 100 {
		r.note(log, fmt.Sprintf("user-%d", i), "127.0.0.1:1", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(linesWith(&out, "login refused")); n != refusalLinesMax {
		t.Fatalf("%d lines for 100 usernames in 0.1 s, want %d", n, refusalLinesMax)
	}
	r.note(log, "lobby-1", "127.0.0.1:1", t0.Add(refusalLogEvery))
	if n := len(linesWith(&out, "login refused")); n != refusalLinesMax+1 {
		t.Fatalf("the next window has no room: %d lines", n)
	}
}

// deviceID tells a possible device id, as the server's wiring does.
var deviceID = actions.DeviceIDPattern.MatchString

// linesWith returns the lines of b that contain s.
func linesWith(b *testenv.Buffer, s string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// A player configured with another topic prefix than the server's logs in,
// but its will (on its status topic) and its subscriptions name topics it may
// not use: the operator finds it in the log and the metric. The same will
// with a wrong token leaves no Warn line: anyone could send it.
func TestTopicsRefusedToALoggedInPlayerAreLogged(t *testing.T) {
	var out testenv.Buffer
	const own = "devicehooks/devices/lobby-1/"
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr:      "127.0.0.1:0",
		Logger:       slog.New(slog.NewTextHandler(&out, nil)),
		Authenticate: func(user, password string) bool { return user == "lobby-1" && password == "right" },
		Allow:        func(_, topic string, _ bool) bool { return strings.HasPrefix(topic, own) },
		WhyRefused:   func(_, _, access string) string { return "refused to " + access },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	connect := func(password, will string) (paho.Client, error) {
		opts := paho.NewClientOptions().AddBroker("tcp://" + e.Addr()).SetClientID("player").SetUsername("lobby-1").SetPassword(password).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		if will != "" {
			opts.SetWill(will, `{"state":"offline"}`, 1, false)
		}
		c := paho.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("no CONNACK")
		}
		return c, tok.Error()
	}
	if _, err := connect("wrong", "signage/devices/lobby-1/status"); err == nil {
		t.Fatal("a will on a foreign topic with a wrong token was taken")
	}
	if len(linesWith(&out, "will names a topic")) != 0 || e.Denied() != 0 {
		t.Fatalf("a wrong token's will was logged or counted: %d\n%s", e.Denied(), out.String())
	}
	if _, err := connect("right", "signage/devices/lobby-1/status"); err == nil {
		t.Fatal("a will on a foreign topic was taken")
	}
	c, err := connect("right", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	tok := c.Subscribe("signage/devices/lobby-1/commands", 1, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.(*paho.SubscribeToken).Result()["signage/devices/lobby-1/commands"] != 0x80 {
		t.Fatalf("a foreign subscription was granted: %v", tok.Error())
	}
	if got := e.Denied(); got != 2 {
		t.Fatalf("denied: %d, want 2 (the will, the subscription)\n%s", got, out.String())
	}
	will, sub := linesWith(&out, "will names a topic"), linesWith(&out, "refused a topic")
	if len(will) != 1 || !strings.Contains(will[0], "level=WARN") || !strings.Contains(will[0], "will_topic=signage/devices/lobby-1/status") ||
		len(sub) != 1 || !strings.Contains(sub[0], "topic=signage/devices/lobby-1/commands") || strings.Contains(out.String(), "right") {
		t.Fatalf("the lines do not say which player and topic (or show the token):\n%s", out.String())
	}
	if !strings.Contains(will[0], `why="refused to will"`) || !strings.Contains(sub[0], `why="refused to subscribe"`) {
		t.Fatalf("the lines do not say why, as WhyRefused has it:\n%s", out.String())
	}
}

// A player with its username and password swapped connects with a will on
// its status topic, as every player must: the will is refused before the
// login is checked, and that is a refused login as any other, counted, logged
// at Warn, and with no token in the log at any level.
func TestSwappedCredentialsWithAWillAreARefusedLogin(t *testing.T) {
	var out testenv.Buffer
	const own = "devicehooks/devices/lobby-1/"
	token := secrets.DeviceTokenPrefix + strings.Repeat("x", 43)
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr:       "127.0.0.1:0",
		Logger:        slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Authenticate:  func(user, password string) bool { return user == "lobby-1" && password == token },
		PlausibleUser: deviceID,
		Allow:         func(user, topic string, _ bool) bool { return user == "lobby-1" && strings.HasPrefix(topic, own) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	opts := paho.NewClientOptions().AddBroker("tcp://"+e.Addr()).SetClientID("player").SetUsername(token).SetPassword("lobby-1").
		SetWill(own+"status", `{"state":"offline"}`, 1, true).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if tok := paho.NewClient(opts).Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		t.Fatalf("swapped credentials were not refused: %v", tok.Error())
	}
	if e.RefusedLogins() != 1 || e.Denied() != 0 {
		t.Fatalf("refused logins %d, denied %d: want one refused login", e.RefusedLogins(), e.Denied())
	}
	if lines := linesWith(&out, "login refused"); len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") {
		t.Fatalf("want one Warn line for the refused login:\n%s", out.String())
	}
	if strings.Contains(out.String(), token[len(secrets.DeviceTokenPrefix):]) {
		t.Fatalf("the log has the token:\n%s", out.String())
	}
}
