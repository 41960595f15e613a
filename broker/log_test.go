package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
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
