package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connackHook tells an MQTT 5 client the largest packet the broker takes
// (Maximum Packet Size, MQTT 5 3.2.2.3.6), so that a client can check a
// message before sending it rather than lose its connection over it. mochi
// enforces the limit but does not announce it.
type connackHook struct{ mqtt.HookBase }

func (h *connackHook) ID() string { return "devicehooks-connack" }

func (h *connackHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *connackHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == packets.CodeSuccess.Code && cl.Properties.ProtocolVersion >= 5 {
		pk.Properties.MaximumPacketSize = MaxPacketSize
	}
	return pk
}
