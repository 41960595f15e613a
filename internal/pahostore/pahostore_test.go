package pahostore

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestPahoStoreKeepsNoOwnPublish: after a reconnect paho resends what its store
// holds of the player's own publishes, racing with new ones (#703); the store
// keeps none of them, and keeps the rest as paho's would.
func TestKeepsNoOwnPublish(t *testing.T) {
	s := New()
	s.Open()
	defer s.Close()
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID = 1, 7
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.Qos, sub.MessageID = 1, 8
	s.Put("o.7", pub) // an ack on its way out
	s.Put("o.8", sub) // a subscription on its way out
	s.Put("i.9", pub) // a command received, not yet acknowledged to the broker
	if got := s.All(); len(got) != 2 || s.Get("o.7") != nil {
		t.Fatalf("the store holds %v; want o.8 and i.9, not the outgoing publish o.7", got)
	}
}
