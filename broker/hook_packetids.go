package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// packetIDHook keeps a client's packet identifiers apart from the server's.
//
// MQTT lets the client and the server assign packet identifiers independently
// of each other (MQTT 5, 2.2.1), but mochi keeps both sides' packets in flight
// in one map per client. So when a player sends a SUBSCRIBE, UNSUBSCRIBE or
// QoS 1 PUBLISH (an ack) under the identifier of a command the server sent it
// and it has not PUBACKed yet, mochi refuses the subscription ("packet
// identifier in use", 0x91, even to an MQTT 3.1.1 client, which does not know
// the code), or deletes the command's record.
// Both sides count from 1 on a new connection: a player with commands queued
// for it that subscribes to its desired-state topic in a second SUBSCRIBE, as
// many client libraries do, was refused that subscription, and so missed an
// emergency.
//
// While mochi handles such a packet the hook holds the server's record out of
// the map, and puts it back after.
type packetIDHook struct {
	mqtt.HookBase
	mu      sync.Mutex
	held    map[*mqtt.Client]*packets.Packet // from heldPool
	holding atomic.Int32                     // len(held), read without the lock on every packet
}

// heldPool recycles the held records: a map stores a value as large as a
// Packet out of line, so holding one by value allocated on every ack that
// came under a command's identifier (4 % of the bytes the server allocated
// under the benchmark's load).
var heldPool = sync.Pool{New: func() any { return new(packets.Packet) }}

func (h *packetIDHook) ID() string { return "devicehooks-packet-ids" }

func (h *packetIDHook) Provides(b byte) bool {
	switch b { // asked for every hook on every event: keep it cheap
	case mqtt.OnPacketRead, mqtt.OnPacketProcessed, mqtt.OnDisconnect:
		return true
	}
	return false
}

// OnPacketRead runs on the client's read loop before mochi handles pk.
func (h *packetIDHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.restore(cl) // held for a packet that mochi refused before handling it
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 {
			return pk, nil
		}
	default:
		return pk, nil
	}
	own, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || own.FixedHeader.Type == packets.Pubrec { // the client's own QoS 2 PUBLISH: a repeat
		return pk, nil
	}
	cl.State.Inflight.Delete(pk.PacketID)
	held := heldPool.Get().(*packets.Packet)
	*held = own
	h.mu.Lock()
	if h.held == nil {
		h.held = map[*mqtt.Client]*packets.Packet{}
	}
	h.held[cl] = held
	h.mu.Unlock()
	h.holding.Add(1)
	return pk, nil
}

// OnPacketProcessed runs on the client's read loop once mochi handled pk.
func (h *packetIDHook) OnPacketProcessed(cl *mqtt.Client, _ packets.Packet, _ error) { h.restore(cl) }

// OnDisconnect puts back a record held when the connection ended: a
// persistent session keeps it, to send the command again.
func (h *packetIDHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.restore(cl) }

func (h *packetIDHook) restore(cl *mqtt.Client) {
	if h.holding.Load() == 0 {
		return
	}
	h.mu.Lock()
	held, ok := h.held[cl]
	delete(h.held, cl)
	h.mu.Unlock()
	if !ok {
		return
	}
	h.holding.Add(-1)
	own := *held
	*held = packets.Packet{} // drop its payload's reference
	heldPool.Put(held)
	// A command sent meanwhile may have taken the identifier: the player then
	// holds two under it, and its PUBACK settles the newer's record.
	if _, taken := cl.State.Inflight.Get(own.PacketID); !taken {
		cl.State.Inflight.Set(own)
	}
}
