package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A client that the broker throws out (its token rotated or its device
// deleted, a QoS 1 publish to a topic it may not write, a takeover by a new
// connection with its client id, shutdown) sees an
// MQTT 3.1 or 3.1.1 connection just close: DISCONNECT is the client's packet
// there (MQTT 3.1.1 §3.14), and a strict client library takes one from the
// server as a protocol error. The will is still sent and presence still
// follows. An MQTT 5 client gets a DISCONNECT with the reason before the close.
func TestThrownOutClientsGetADisconnectOnlyOnMQTT5(t *testing.T) {
	ways := []struct {
		name     string
		throwOut func(e *Embedded, c *rawClient)
		reason   packets.Code // of an MQTT 5 client's DISCONNECT
		will     bool         // the will is sent
	}{
		{"rotated token", func(e *Embedded, _ *rawClient) { e.Disconnect("dev") }, packets.ErrNotAuthorized, true},
		// MQTT 5 gets a PUBACK 0x87 for that one, and stays connected.
		{"forbidden publish", func(_ *Embedded, c *rawClient) { c.publish("dev/desired", 1) }, packets.Code{}, true},
		{"takeover", func(e *Embedded, c *rawClient) { dialRaw(c.t, e, c.version) }, packets.ErrSessionTakenOver, false},
		{"shutdown", func(e *Embedded, _ *rawClient) { e.Close() }, packets.ErrServerShuttingDown, false},
		// MQTT 5 only: the CONNACK allowed no topic alias (its maximum is 0).
		{"topic alias", func(_ *Embedded, c *rawClient) {
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 2,
				TopicName: "dev/acks", Payload: []byte(`{}`), Properties: packets.Properties{TopicAlias: 1, TopicAliasFlag: true}})
		}, packets.ErrTopicAliasInvalid, true},
	}
	for _, version := range []byte{3, 4, 5} {
		for _, way := range ways {
			if version == 5 && way.reason == (packets.Code{}) || version < 5 && way.name == "topic alias" {
				continue
			}
			t.Run(fmt.Sprintf("MQTT %s %s", protocolName(version), way.name), func(t *testing.T) {
				// Never blocking the broker: a takeover brings a second client.
				present, absent, wills := make(chan string, 8), make(chan string, 8), make(chan string, 8)
				offer := func(ch chan string, v string) {
					select {
					case ch <- v:
					default:
					}
				}
				e, err := StartEmbedded(EmbeddedConfig{
					TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
					Authenticate: func(user, pass string) bool { return user == "dev" && pass == "token" },
					Allow:        func(_, topic string, write bool) bool { return !(write && strings.HasSuffix(topic, "/desired")) },
					PresenceOf: func(user, filter string) (string, bool) {
						return user, filter == user+"/commands"
					},
					OnPresent: func(id string) { offer(present, id) },
					OnAbsent:  func(id string) { offer(absent, id) },
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { e.Close() })
				if err := e.Subscribe("dev/status", func(_ string, payload []byte, _ bool) { offer(wills, string(payload)) }); err != nil {
					t.Fatal(err)
				}

				c := dialRaw(t, e, version)
				receive(t, present, "presence")
				way.throwOut(e, c)
				got := c.untilClosed(t)

				disconnect := func(p rawPacket) bool { return p.Type == packets.Disconnect }
				if version < 5 {
					if slices.ContainsFunc(got, disconnect) {
						t.Fatalf("an MQTT %s client got a DISCONNECT (packets: %v)", protocolName(version), got)
					}
				} else if len(got) == 0 || !disconnect(got[len(got)-1]) || len(got[len(got)-1].Body) == 0 || got[len(got)-1].Body[0] != way.reason.Code {
					t.Fatalf("packets before the close: %v; want a DISCONNECT with reason %#x last", got, way.reason.Code)
				}
				if id := receive(t, absent, "absence"); id != "dev" {
					t.Fatalf("absent: %q", id)
				}
				if way.will {
					if w := receive(t, wills, "will"); w != "gone" {
						t.Fatalf("will %q", w)
					}
				}
			})
		}
	}
}

func protocolName(version byte) string {
	return map[byte]string{3: "3.1", 4: "3.1.1", 5: "5"}[version]
}

// rawClient speaks MQTT over TCP packet by packet, to see exactly what the
// broker sends.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// rawPacket is one packet from the broker: its type and what follows its
// remaining length.
type rawPacket struct {
	Type byte
	Body []byte
}

func (p rawPacket) String() string {
	return fmt.Sprintf("%s % x", packets.PacketNames[p.Type], p.Body)
}

// dialRaw connects as user "dev" with a will ("gone" on dev/status) and
// subscribes to dev/commands, which makes it present.
func dialRaw(t *testing.T, e *Embedded, version byte) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
	name := "MQTT"
	if version == 3 {
		name = "MQIsdp"
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte(name), Clean: true, Keepalive: 30, ClientIdentifier: "player",
		UsernameFlag: true, Username: []byte("dev"), PasswordFlag: true, Password: []byte("token"),
		WillFlag: true, WillTopic: "dev/status", WillPayload: []byte("gone"),
	}})
	if ack, err := c.next(); err != nil || ack.Type != packets.Connack || len(ack.Body) < 2 || ack.Body[1] != 0 {
		t.Fatalf("CONNACK: %v %v", ack, err)
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "dev/commands", Qos: 1}}})
	if ack, err := c.next(); err != nil || ack.Type != packets.Suback {
		t.Fatalf("SUBACK: %v %v", ack, err)
	}
	return c
}

// publish sends a PUBLISH at qos.
func (c *rawClient) publish(topic string, qos byte) {
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, PacketID: 2,
		TopicName: topic, Payload: []byte(`{}`)})
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var out bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&out)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&out)
	case packets.Publish:
		err = pk.PublishEncode(&out)
	default:
		err = fmt.Errorf("cannot send a %s", packets.PacketNames[pk.FixedHeader.Type])
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(out.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next packet.
func (c *rawClient) next() (rawPacket, error) {
	first, err := c.r.ReadByte()
	if err != nil {
		return rawPacket{}, err
	}
	size, err := binary.ReadUvarint(c.r) // MQTT's remaining length is a little-endian base-128 varint
	if err != nil {
		return rawPacket{}, err
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return rawPacket{}, err
	}
	return rawPacket{Type: first >> 4, Body: body}, nil
}

// untilClosed reads packets until the broker closes the connection, and
// returns them; it fails the test if the connection stays open.
func (c *rawClient) untilClosed(t *testing.T) []rawPacket {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []rawPacket
	for {
		p, err := c.next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection is still open after 5 s (packets %v)", got)
		}
		if err != nil { // closed (EOF, or reset)
			return got
		}
		got = append(got, p)
	}
}

// A client thrown out while the broker's reader is between two of its
// packets still has its will sent. mochi, finding the connection closed at
// the top of its read loop, takes the close for the client's own DISCONNECT
// and drops the will (a token rotated just after the device subscribed, in
// a CI run); throwOut sends it first.
func TestWillSentWhenThrownOutBetweenPackets(t *testing.T) {
	wills := make(chan string, 4)
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Authenticate: func(user, pass string) bool { return user == "dev" && pass == "token" },
		Allow:        func(string, string, bool) bool { return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Subscribe("dev/status", func(_ string, payload []byte, _ bool) { wills <- string(payload) }); err != nil {
		t.Fatal(err)
	}
	hold := &holdAfterPacket{held: make(chan struct{}), release: make(chan struct{})}
	if err := e.srv.AddHook(hold, nil); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, e, 4)
	c.publish("dev/acks", 0) // the reader stays in its hook after handling it
	receive(t, hold.held, "the publish handled")
	e.Disconnect("dev")
	close(hold.release)
	if w := receive(t, wills, "will"); w != "gone" {
		t.Fatalf("will %q", w)
	}
}

// holdAfterPacket holds the broker's reader after it handled a QoS 0
// publish, until released: between two packets.
type holdAfterPacket struct {
	mqtt.HookBase
	held, release chan struct{}
}

func (h *holdAfterPacket) ID() string { return "test-hold-after-packet" }

func (h *holdAfterPacket) Provides(b byte) bool { return b == mqtt.OnPacketProcessed }

func (h *holdAfterPacket) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type == packets.Publish && !cl.Net.Inline {
		close(h.held)
		<-h.release
	}
}
