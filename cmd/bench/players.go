package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"devicehooks/simulator"
)

// players are the benchmark's simulated players: a minimal MQTT 3.1.1 client each,
// one connection and one goroutine per player, written for the benchmark as its
// HTTP load generator is. They share the two cores with the server, and paho's
// per-client goroutines and channels cost about 155 µs of CPU per command and ack:
// as much as the server spent on a fan-out to 10,000 players. These cost a
// fraction of that, so the figures say more about the server.
//
// They do what the player contract (docs/players.md) asks and no more: log in as
// their device with an offline will, subscribe to their commands and desired
// state, announce themselves online (retained), PUBACK what they receive at QoS 1,
// and ack every command once received ("succeeded", or "rejected" with detail
// "expired" past its expires_at). They do not reconnect: a lost connection is
// reported as an error event, and they never ping (their keep-alive is an hour).
// `devicehooks simulate` (paho) is the full simulator.
type players struct {
	topicPrefix string
	onEvent     func(simulator.Event)

	mu     sync.Mutex
	conns  []*player
	closed bool
	wg     sync.WaitGroup
}

type player struct {
	id                              string
	conn                            net.Conn
	r                               *bufio.Reader
	commands, desired, acks, status string
	wmu                             sync.Mutex // Close writes from another goroutine
	nextID                          uint16
}

// startPlayers connects a player for each of creds to the broker at brokerURL
// (tcp://host:port), concurrency at a time, and returns once all are subscribed
// and announced. onEvent gets the simulator's events (command, ack, error).
func startPlayers(ctx context.Context, brokerURL string, creds []simulator.Credentials, onEvent func(simulator.Event), concurrency int) (*players, error) {
	addr, ok := strings.CutPrefix(brokerURL, "tcp://")
	if !ok {
		return nil, fmt.Errorf("players: broker %q: only tcp:// is supported", brokerURL)
	}
	ps := &players{topicPrefix: "devicehooks", onEvent: onEvent}
	sem := make(chan struct{}, max(1, concurrency))
	errs := make(chan error, len(creds))
	var connecting sync.WaitGroup
	for _, c := range creds {
		sem <- struct{}{}
		connecting.Add(1)
		go func() {
			defer func() { <-sem; connecting.Done() }()
			p, err := ps.dial(ctx, addr, c)
			if err != nil {
				errs <- err
				return
			}
			ps.mu.Lock()
			ps.conns = append(ps.conns, p)
			ps.mu.Unlock()
			ps.wg.Add(1)
			go ps.run(p)
		}()
	}
	connecting.Wait()
	close(errs)
	if err := <-errs; err != nil {
		ps.Close()
		return nil, err
	}
	return ps, nil
}

// Close disconnects every player, announcing it offline first.
func (ps *players) Close() {
	ps.mu.Lock()
	ps.closed = true
	conns := ps.conns
	ps.mu.Unlock()
	for _, p := range conns {
		p.wmu.Lock()
		_ = p.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = p.conn.Write(publishPacket(p.status, statusPayload("offline"), 0, true, 0))
		_, _ = p.conn.Write([]byte{0xe0, 0}) // DISCONNECT
		p.wmu.Unlock()
		p.conn.Close()
	}
	ps.wg.Wait()
}

func (ps *players) dial(ctx context.Context, addr string, c simulator.Credentials) (*player, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("player %s: %w", c.DeviceID, err)
	}
	base := ps.topicPrefix + "/devices/" + c.DeviceID + "/"
	p := &player{id: c.DeviceID, conn: conn, r: bufio.NewReaderSize(conn, 2048),
		commands: base + "commands", desired: base + "desired", acks: base + "acks", status: base + "status"}
	if err := p.handshake(c.Token); err != nil {
		conn.Close()
		return nil, fmt.Errorf("player %s: %w", c.DeviceID, err)
	}
	return p, nil
}

// handshake connects, subscribes and announces the player online; the broker's
// answers to the last two are read by run.
func (p *player) handshake(token string) error {
	_ = p.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer p.conn.SetDeadline(time.Time{})
	if _, err := p.conn.Write(connectPacket("player-"+p.id, p.id, token, p.status, []byte(`{"state":"offline"}`))); err != nil {
		return err
	}
	first, body, err := readPacket(p.r)
	if err != nil {
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	if first>>4 != 2 || len(body) != 2 || body[1] != 0 {
		return fmt.Errorf("broker refused the connection (packet %#x, %x)", first, body)
	}
	if _, err := p.conn.Write(subscribePacket(p.id16(), p.commands, p.desired)); err != nil {
		return err
	}
	for { // the SUBACK: nothing is published to us before it
		first, body, err := readPacket(p.r)
		if err != nil {
			return fmt.Errorf("reading SUBACK: %w", err)
		}
		if first>>4 == 9 {
			if len(body) != 4 || body[2] > 2 || body[3] > 2 {
				return fmt.Errorf("broker refused the subscriptions (%x)", body)
			}
			break
		}
	}
	_, err = p.conn.Write(publishPacket(p.status, statusPayload("online"), 1, true, p.id16()))
	return err
}

func (p *player) id16() uint16 {
	p.nextID++
	if p.nextID == 0 {
		p.nextID = 1
	}
	return p.nextID
}

// run reads until the connection ends: PUBACKs what arrives at QoS 1 and acks
// commands.
func (ps *players) run(p *player) {
	defer ps.wg.Done()
	for {
		first, body, err := readPacket(p.r)
		if err != nil {
			ps.mu.Lock()
			closed := ps.closed
			ps.mu.Unlock()
			if !closed {
				ps.emit(simulator.Event{DeviceID: p.id, Kind: simulator.KindError, Detail: "connection lost: " + err.Error(), At: time.Now()})
			}
			return
		}
		if first>>4 != 3 { // only a PUBLISH needs an answer
			continue
		}
		at := time.Now()
		topic, payload, ackID, err := parsePublish(first, body)
		if err != nil {
			ps.emit(simulator.Event{DeviceID: p.id, Kind: simulator.KindInvalid, Detail: err.Error(), At: at})
			continue
		}
		out := make([]byte, 0, 512)
		if ackID != 0 {
			out = append(out, 0x40, 2, byte(ackID>>8), byte(ackID))
		}
		if topic == p.commands {
			out = ps.command(p, payload, at, out)
		}
		if len(out) > 0 {
			p.wmu.Lock()
			_, err = p.conn.Write(out)
			p.wmu.Unlock()
			if err != nil {
				continue // the read fails next and says why
			}
		}
	}
}

// command records a command's receipt and appends the ack to publish to out.
func (ps *players) command(p *player, payload []byte, at time.Time, out []byte) []byte {
	var cmd simulator.Command
	if err := json.Unmarshal(payload, &cmd); err != nil || cmd.ID == "" {
		ps.emit(simulator.Event{DeviceID: p.id, Kind: simulator.KindInvalid, Detail: fmt.Sprintf("command: %v", err), At: at})
		return out
	}
	kind, status, detail := simulator.KindCommand, simulator.StatusSucceeded, ""
	if cmd.ExpiresAt != nil && !at.Before(*cmd.ExpiresAt) {
		kind, status, detail = simulator.KindExpired, simulator.StatusRejected, "expired"
	}
	ps.emit(simulator.Event{DeviceID: p.id, Kind: kind, Command: &cmd, At: at})
	ack, _ := json.Marshal(struct {
		ID     string    `json:"id"`
		Status string    `json:"status"`
		Detail string    `json:"detail,omitempty"`
		At     time.Time `json:"at"`
	}{cmd.ID, status, detail, time.Now().UTC()})
	ps.emit(simulator.Event{DeviceID: p.id, Kind: simulator.KindAck, Command: &cmd, AckStatus: status, At: time.Now()})
	return append(out, publishPacket(p.acks, ack, 1, false, p.id16())...)
}

func (ps *players) emit(ev simulator.Event) {
	if ps.onEvent != nil {
		ps.onEvent(ev)
	}
}

func statusPayload(state string) []byte {
	return []byte(`{"state":"` + state + `","at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`)
}

// MQTT 3.1.1 packets, as little of them as the players need.

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendPacket appends a fixed header (type and flags, remaining length) and body.
func appendPacket(b []byte, first byte, body []byte) []byte {
	b = append(b, first)
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

func connectPacket(clientID, user, password, willTopic string, will []byte) []byte {
	body := appendString(nil, "MQTT")
	// level 4; flags: username, password, will retain, will QoS 1, will, clean session
	// A keep-alive of an hour: a run is shorter, so the players never need to ping.
	body = append(body, 4, 0x80|0x40|0x20|0x08|0x04|0x02)
	body = binary.BigEndian.AppendUint16(body, 3600)
	body = appendString(body, clientID)
	body = appendString(body, willTopic)
	body = appendString(body, string(will))
	body = appendString(body, user)
	body = appendString(body, password)
	return appendPacket(nil, 0x10, body)
}

func subscribePacket(id uint16, filters ...string) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	for _, f := range filters {
		body = append(appendString(body, f), 1) // QoS 1
	}
	return appendPacket(nil, 0x82, body)
}

func publishPacket(topic string, payload []byte, qos byte, retain bool, id uint16) []byte {
	first := byte(0x30) | qos<<1
	if retain {
		first |= 1
	}
	body := appendString(make([]byte, 0, 2+len(topic)+2+len(payload)), topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	return appendPacket(nil, first, append(body, payload...))
}

// readPacket reads one packet: its first byte (type and flags) and the rest after
// the fixed header.
func readPacket(r *bufio.Reader) (first byte, body []byte, err error) {
	if first, err = r.ReadByte(); err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if mult *= 128; i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// parsePublish splits a PUBLISH into topic, payload and the packet id to PUBACK
// (0 at QoS 0).
func parsePublish(first byte, body []byte) (topic string, payload []byte, ackID uint16, err error) {
	if len(body) < 2 {
		return "", nil, 0, errors.New("short PUBLISH")
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+n {
		return "", nil, 0, errors.New("short PUBLISH topic")
	}
	topic, rest := string(body[2:2+n]), body[2+n:]
	if (first>>1)&3 > 0 {
		if len(rest) < 2 {
			return "", nil, 0, errors.New("PUBLISH without a packet id")
		}
		ackID, rest = binary.BigEndian.Uint16(rest), rest[2:]
	}
	return topic, rest, ackID, nil
}
