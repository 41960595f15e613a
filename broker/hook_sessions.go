package broker

import (
	"slices"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MaxSessionsPerLogin bounds the sessions that one login (a device) has in the
// embedded broker at once: connected, or kept after its connection for a
// persistent session. Each costs memory, and a kept one collects a copy of
// every command sent to the device until it expires (DefaultSessionExpiry), so
// without a bound one device's token could fill the server's memory by
// connecting under ever new client ids. A login's newest connection always
// gets in: past the bound its oldest session ends (closed, if connected), as
// a takeover would end it. A player uses one connection (two while a second
// player is tried beside it); the server keeps the commands, not the sessions.
const MaxSessionsPerLogin = 4

// sessionsHook keeps each login's sessions within MaxSessionsPerLogin, and
// ends them all when the login's credentials change (endAll).
type sessionsHook struct {
	mqtt.HookBase
	srv *mqtt.Server
	max int

	mu     sync.Mutex
	byUser map[string][]string // a login's sessions (client ids), oldest connect first
}

func (h *sessionsHook) ID() string { return "devicehooks-sessions" }

func (h *sessionsHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// OnSessionEstablished runs once mochi holds the new session under its client
// id (a resumed or taken-over one keeps its place, moved to the newest).
func (h *sessionsHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	user := string(cl.Properties.Username)
	if cl.Net.Inline || user == "" { // anonymous clients: development only
		return
	}
	h.mu.Lock()
	ids := slices.DeleteFunc(h.byUser[user], func(id string) bool { return id == cl.ID })
	ids = append(ids, cl.ID)
	var oldest []string
	if over := len(ids) - h.max; over > 0 {
		oldest = slices.Clone(ids[:over])
		ids = slices.Delete(ids, 0, over)
	}
	h.byUser[user] = ids
	h.mu.Unlock()
	for _, id := range oldest {
		h.end(id, packets.ErrQuotaExceeded)
	}
}

// OnDisconnect forgets a session that ends with its connection. One taken
// over lives on in its successor, which has the same client id.
func (h *sessionsHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.forget(cl)
	}
}

// OnClientExpired forgets a kept session that mochi deletes at its expiry.
func (h *sessionsHook) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *sessionsHook) forget(cl *mqtt.Client) {
	user := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := slices.DeleteFunc(h.byUser[user], func(id string) bool { return id == cl.ID })
	if len(ids) == 0 {
		delete(h.byUser, user)
		return
	}
	h.byUser[user] = ids
}

// endAll ends every session of a login: its connections, and the sessions
// kept for it, with what is queued in them.
func (h *sessionsHook) endAll(user string, reason packets.Code) {
	h.mu.Lock()
	ids := h.byUser[user]
	delete(h.byUser, user)
	h.mu.Unlock()
	for _, id := range ids {
		h.end(id, reason)
	}
}

// end closes a session's connection if it has one, and deletes the session
// with its subscriptions and the messages queued for it.
func (h *sessionsHook) end(id string, reason packets.Code) {
	cl, ok := h.srv.Clients.Get(id)
	if !ok {
		return
	}
	if !cl.Closed() {
		throwOut(h.srv, cl, reason)
	}
	cl.ClearInflights()
	h.srv.UnsubscribeClient(cl)
	if now, ok := h.srv.Clients.Get(id); ok && now == cl { // not a newer session with this id
		h.srv.Clients.Delete(id)
	}
}

// sessions returns how many sessions a login has (for tests).
func (h *sessionsHook) sessions(user string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byUser[user])
}
