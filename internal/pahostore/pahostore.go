// Package pahostore is the paho store for clients whose publishes devicehooks
// (or its players) send again themselves: the server, whose database drives
// every re-send, and players, whose acks the server asks for again.
package pahostore

import (
	"strings"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// New returns paho's memory store, except that it keeps none of the client's
// own QoS 1 publishes, so that a reconnect sends none of them again. paho
// resends what its store holds after a reconnect even with a clean session,
// racing with the publishes that follow it (a data race the race detector
// found in the fault test; paho.mqtt.golang#703), and after the caller was
// told the publish failed.
//
// What a dropped connection loses costs nothing: for a player, the server
// sends an unacked command again on the reconnect and the player acks it
// again; for the server, a command the broker did not acknowledge stays
// queued in the database and is sent again from there, unless it has expired
// meanwhile, and a desired state is republished on every connect.
func New() paho.Store { return noResend{paho.NewMemoryStore()} }

type noResend struct{ paho.Store }

func (s noResend) Put(key string, m packets.ControlPacket) {
	if _, ok := m.(*packets.PublishPacket); ok && strings.HasPrefix(key, "o.") { // paho's outbound keys
		return
	}
	s.Store.Put(key, m)
}
