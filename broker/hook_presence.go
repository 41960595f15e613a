package broker

import (
	"slices"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// presenceHook follows the subscriptions that make a device present (its
// commands topic: PresenceOf) and tells OnPresent and OnAbsent, once per
// connection, keeping the present connections by device (unconfirmed); and it
// makes a reconnect or takeover of a clean session wait until its previous
// connection is closed and torn down (OnSessionEstablish).
type presenceHook struct {
	mqtt.HookBase
	cfg EmbeddedConfig
	srv *mqtt.Server

	mu       sync.RWMutex
	present  map[*mqtt.Client]string   // connection -> the device it is present as
	byDevice map[string][]*mqtt.Client // device -> its present connections
}

func (h *presenceHook) ID() string { return "devicehooks-presence" }

func (h *presenceHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnDisconnect:
		return true
	}
	return false
}

// teardownWait bounds how long a reconnect waits for its previous connection's
// teardown.
const teardownWait = time.Second

// OnSessionEstablish runs once a client has logged in, before mochi looks for
// an earlier session of its client id. If that session ends with its
// connection (a clean session, as players use), it closes the earlier
// connection if still open, and waits until mochi has torn it down
// (teardownWait at most), so that the new connection starts afresh.
//
// mochi deletes a closed clean session by client id at the end of its
// teardown, on the old connection's goroutine. A reconnect set up before then
// was deleted in its place, and nothing published to it arrived until it
// reconnected again: after a quick reconnect (mochi-mqtt/server#483), and
// after a takeover of a connection still open, whose teardown could find the
// old client not yet marked taken over. A page reload or a player's quick
// reconnect hits it. A persistent session is taken over by mochi as before.
func (h *presenceHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	deadline := time.Now().Add(teardownWait)
	for time.Now().Before(deadline) {
		old, ok := h.srv.Clients.Get(cl.ID)
		if !ok || old == cl || !endsWithConnection(old) {
			return
		}
		if !old.Closed() {
			_ = h.srv.DisconnectClient(old, packets.ErrSessionTakenOver) // [MQTT-3.1.4-3]
		}
		time.Sleep(time.Millisecond)
	}
}

// endsWithConnection tells whether mochi discards cl's session when its
// connection ends (as mochi decides it in attachClient).
func endsWithConnection(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// OnSessionEstablished covers a resumed session whose subscriptions were kept.
func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	for filter := range cl.State.Subscriptions.GetAll() {
		h.subscribed(cl, filter)
	}
}

func (h *presenceHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline {
		return
	}
	for i, f := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < 0x80 { // granted
			h.subscribed(cl, f.Filter)
		}
	}
}

func (h *presenceHook) subscribed(cl *mqtt.Client, filter string) {
	if h.cfg.PresenceOf == nil {
		return
	}
	id, ok := h.cfg.PresenceOf(string(cl.Properties.Username), filter)
	if !ok {
		return
	}
	h.mu.Lock()
	_, already := h.present[cl]
	if !already {
		h.present[cl] = id
		h.byDevice[id] = append(h.byDevice[id], cl)
	}
	h.mu.Unlock()
	if !already && h.cfg.OnPresent != nil {
		h.cfg.OnPresent(id)
	}
}

// OnUnsubscribed: a connection that no longer listens on its commands topic is
// no longer present, though still connected (nothing sent would reach it).
func (h *presenceHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || h.cfg.PresenceOf == nil {
		return
	}
	for _, f := range pk.Filters {
		if _, ok := h.cfg.PresenceOf(string(cl.Properties.Username), f.Filter); ok {
			h.absent(cl)
		}
	}
}

func (h *presenceHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.absent(cl) }

func (h *presenceHook) absent(cl *mqtt.Client) {
	h.mu.Lock()
	id, was := h.present[cl]
	delete(h.present, cl)
	if was {
		conns := slices.DeleteFunc(h.byDevice[id], func(c *mqtt.Client) bool { return c == cl })
		if len(conns) == 0 {
			delete(h.byDevice, id)
		} else {
			h.byDevice[id] = conns
		}
	}
	h.mu.Unlock()
	if was && h.cfg.OnAbsent != nil {
		h.cfg.OnAbsent(id)
	}
}

// unconfirmed returns how many messages a device's present connection (one
// subscribed to its commands topic) has been sent, or has queued for it, at
// QoS 1 or 2 without acknowledging them yet: the fewest of any such connection,
// so that a stalled one does not hold up one that reads; 0 if none.
func (h *presenceHook) unconfirmed(device string) int {
	var conns [MaxSessionsPerLogin + 4]*mqtt.Client // a login's sessions, and ones closing
	h.mu.RLock()
	n := copy(conns[:], h.byDevice[device])
	h.mu.RUnlock()
	fewest := -1
	for _, cl := range conns[:n] {
		if in := cl.State.Inflight.Len(); !cl.Closed() && (fewest < 0 || in < fewest) {
			fewest = in
		}
	}
	return max(fewest, 0)
}
