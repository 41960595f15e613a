// Package pahostore is the paho store of the players devicehooks ships (the
// simulator, the tests' players): they send their own acks again when asked.
package pahostore

import (
	"strings"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// New returns paho's memory store, except that it keeps none of the client's
// own QoS 1 publishes, so that a reconnect sends none of them again. paho v1.5
// resends them racing with the publishes that follow the reconnect (a data race
// the race detector found in the fault test; paho.mqtt.golang#703). What a
// dropped connection loses costs nothing: the server sends an unacked command
// again on the reconnect, and the player acks it again.
//
// The cost: with auto-reconnect, paho frees the message id of a publish in
// flight at a drop only when its PUBACK comes, so each such publish holds its
// id for good. A player has an ack or two in flight at most, against 65,535
// ids. The server, which may have thousands in flight, keeps paho's own store.
func New() paho.Store { return noResend{paho.NewMemoryStore()} }

type noResend struct{ paho.Store }

func (s noResend) Put(key string, m packets.ControlPacket) {
	if _, ok := m.(*packets.PublishPacket); ok && strings.HasPrefix(key, "o.") { // paho's outbound keys
		return
	}
	s.Store.Put(key, m)
}
