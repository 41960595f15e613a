package broker

import (
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// routingHook shapes how messages travel: a client's message on a ServerOnly
// topic goes straight to the server's handler, an Unretained topic's retained
// message is forwarded live, and a drop of the server's own publish (a full
// write queue) is noted for Publish to report.
type routingHook struct {
	mqtt.HookBase
	cfg EmbeddedConfig

	dropMu   sync.Mutex
	watching map[string]watched // topics of the inline publishes in progress

	routeMu sync.Mutex              // serialises addRoute; deliver reads without it
	routes  atomic.Pointer[[]route] // the server's subscriptions, for ServerOnly topics
}

func (h *routingHook) ID() string { return "devicehooks-routing" }

func (h *routingHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublishDropped:
		return true
	case mqtt.OnPublish:
		return h.cfg.Unretained != nil || h.cfg.ServerOnly != nil
	}
	return false
}

// OnPublish forwards a retained message on an Unretained topic as a live one,
// and hands a client's message on a ServerOnly topic to the server's handler,
// telling mochi to acknowledge it but route it no further.
func (h *routingHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && h.cfg.Unretained != nil && h.cfg.Unretained(pk.TopicName) {
		pk.FixedHeader.Retain = false
	}
	if !cl.Net.Inline && h.cfg.ServerOnly != nil && h.cfg.ServerOnly(pk.TopicName) &&
		h.deliver(pk.TopicName, pk.Payload, pk.FixedHeader.Retain) {
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// addRoute notes one of the server's subscriptions; as in mochi, a second
// subscription to the same filter replaces the first. Subscribe may run while
// clients publish: the list is copied, never changed in place.
func (h *routingHook) addRoute(filter string, handler func(topic string, payload []byte, retained bool)) {
	h.routeMu.Lock()
	defer h.routeMu.Unlock()
	var routes []route
	if old := h.routes.Load(); old != nil {
		for _, r := range *old {
			if r.filter != filter {
				routes = append(routes, r)
			}
		}
	}
	routes = append(routes, route{filter, handler})
	h.routes.Store(&routes)
}

// deliver calls the handler of every server subscription matching topic, as
// mochi's routing would, and tells whether there was one.
func (h *routingHook) deliver(topic string, payload []byte, retained bool) bool {
	routes := h.routes.Load()
	if routes == nil {
		return false
	}
	found := false
	for _, r := range *routes {
		if matches(r.filter, topic) {
			r.handler(topic, payload, retained)
			found = true
		}
	}
	return found
}

// matches tells whether an MQTT topic filter (with + and # wildcards) matches
// a topic name.
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // [MQTT-4.7.2-1]
	}
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, tRest, tMore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !tMore:
			return !fMore || fRest == "#" // "a/#" matches "a" too
		case !fMore:
			return false
		}
		filter, topic = fRest, tRest
	}
}

// route is one of the server's subscriptions.
type route struct {
	filter  string
	handler func(topic string, payload []byte, retained bool)
}

// watch starts noting drops of inline messages on topic; unwatch stops and tells
// whether one was dropped.
func (h *routingHook) watch(topic string) {
	h.dropMu.Lock()
	w := h.watching[topic]
	w.n++
	h.watching[topic] = w
	h.dropMu.Unlock()
}

func (h *routingHook) unwatch(topic string) bool {
	h.dropMu.Lock()
	defer h.dropMu.Unlock()
	w := h.watching[topic]
	if w.n--; w.n <= 0 {
		delete(h.watching, topic)
	} else {
		h.watching[topic] = w
	}
	return w.dropped
}

// OnPublishDropped runs, on the publishing goroutine, when mochi drops a message
// for a client whose write queue is full.
func (h *routingHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.Origin != mqtt.InlineClientId {
		return
	}
	h.dropMu.Lock()
	if w, ok := h.watching[pk.TopicName]; ok {
		w.dropped = true
		h.watching[pk.TopicName] = w
	}
	h.dropMu.Unlock()
}

// watched counts the inline publishes in progress on one topic, and whether a
// message on it was dropped meanwhile. Two at once on the same topic both report
// a drop of either: the message is sent again, and players dedupe by command id.
type watched struct {
	n       int
	dropped bool
}
