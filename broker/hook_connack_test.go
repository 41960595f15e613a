package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// An MQTT 5 client learns the broker's packet limit from its CONNACK.
func TestConnackAnnouncesTheMaximumPacketSize(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	conn, err := net.DialTimeout("tcp", e.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "v5",
			UsernameFlag: true, Username: []byte("v5")}}
	var out bytes.Buffer
	if err := connect.ConnectEncode(&out); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	first, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	ack := packets.Packet{ProtocolVersion: 5}
	if err := ack.FixedHeader.Decode(first); err != nil || ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("first packet back: type %d, %v", ack.FixedHeader.Type, err)
	}
	size, err := binary.ReadUvarint(r) // MQTT's remaining length is a little-endian base-128 varint
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	ack.FixedHeader.Remaining = int(size)
	if err := ack.ConnackDecode(body); err != nil {
		t.Fatal(err)
	}
	if ack.ReasonCode != 0 || ack.Properties.MaximumPacketSize != MaxPacketSize {
		t.Fatalf("CONNACK reason %#x, maximum packet size %d; want 0 and %d", ack.ReasonCode, ack.Properties.MaximumPacketSize, MaxPacketSize)
	}
}
