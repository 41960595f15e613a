package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"devicehooks/internal/testenv"
)

// mochi's log lines name a packet by its type, topic and id, not by its
// every field and payload; and a client by its login and client id, not by
// the auth hook's internal id with its NUL.
func TestMochiLoggerSummarizesPackets(t *testing.T) {
	var buf bytes.Buffer
	log := mochiLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "devicehooks/devices/b/commands",
		PacketID: 7, Payload: []byte("forged payload")}
	log.Warn("error processing packet", "client", "lobby-1\x00acl5", "pk", pk)
	log.With("packet", &pk).Debug("hidden at info")
	log.Info("failed publishing packet", "packet", &pk, "n", 1)
	out := buf.String()
	for _, want := range []string{
		"pk.type=Publish pk.topic=devicehooks/devices/b/commands pk.id=7",
		"packet.type=Publish",
		"client.user=lobby-1 client.id=acl5",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "forged") || strings.Contains(out, "FixedHeader") {
		t.Fatalf("log has the packet's fields:\n%s", out)
	}
}

// A player whose library resends a refused publish at every reconnect has it
// logged once per refusalLogEvery, not every second forever; the next line
// says how many were left out. Other logins have their own lines.
func TestRefusedPacketsAreLoggedOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	h := mochiLogger(slog.New(slog.NewTextHandler(&buf, nil))).Handler()
	t0 := time.Unix(1_700_000_000, 0)
	warn := func(at time.Duration, client string) {
		r := slog.NewRecord(t0.Add(at), slog.LevelWarn, "error processing packet", 0)
		r.AddAttrs(slog.String("error", "not authorized"), slog.String("client", client))
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		warn(time.Duration(i)*time.Second, "lobby-1\x00c1")
	}
	warn(2*time.Second, "lobby-2\x00c1")
	warn(refusalLogEvery, "lobby-1\x00c2")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (lobby-1, lobby-2, lobby-1 again), got %d:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[1], "client.user=lobby-2") || !strings.Contains(lines[2], "client.user=lobby-1") ||
		!strings.Contains(lines[2], "more_since_last=4") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}

// The same through the broker: a player publishing twice where it may not,
// reconnecting in between as a library would, makes one line.
func TestAPlayersRefusedPublishIsLoggedOnce(t *testing.T) {
	var out testenv.Buffer
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr:      "127.0.0.1:0",
		Logger:       slog.New(slog.NewTextHandler(&out, nil)),
		Authenticate: func(user, password string) bool { return password == "right" },
		Allow:        func(user, topic string, write bool) bool { return topic == user+"/acks" },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for range 2 {
		c := connect(t, e, "lobby-1", func(o *paho.ClientOptions) { o.SetPassword("right").SetProtocolVersion(4) })
		c.Publish("lobby-2/acks", 1, false, "{}") // refused: MQTT 3.1.1 closes the connection
		testenv.WaitFor(t, 5*time.Second, "the refusal", func() bool { return !c.IsConnectionOpen() })
		c.Disconnect(0)
	}
	lines := linesWith(&out, "error processing packet")
	if len(lines) != 1 || !strings.Contains(lines[0], "client.user=lobby-1") || !strings.Contains(lines[0], "pk.topic=lobby-2/acks") {
		t.Fatalf("want one line naming the player and the topic, got:\n%s", out.String())
	}
}
