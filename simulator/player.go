package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// player is one simulated device. Its cost is one paho client plus a few strings and,
// once commands arrive, a bounded set of handled ids: no goroutines or timers of its
// own beyond paho's and one time.AfterFunc per pending ack.
type player struct {
	sim    *Sim
	shard  int // which of the Sim's message and ack goroutines serve it
	id     string
	token  string
	topics topics
	client paho.Client // set in connect, before any handler can run

	ready     chan struct{} // closed after the first connect is subscribed and announced
	readyOnce sync.Once
	readyErr  error

	dropped atomic.Bool
	connMu  sync.Mutex
	conn    net.Conn // the current network connection, for Drop

	mu         sync.Mutex // guards the applied state below
	desired    *Desired
	emergency  Emergency
	loopPaused bool
	lastURL    string
	handled    handledSet
}

// topics are one device's MQTT topics (CONTRACT §3).
type topics struct{ commands, acks, status, desired string }

func newPlayer(s *Sim, c Credentials) *player {
	base := s.cfg.TopicPrefix + "/devices/" + c.DeviceID + "/"
	return &player{
		sim:   s,
		shard: int(fnv32(c.DeviceID) % uint32(len(s.inbox))),
		id:    c.DeviceID,
		token: c.Token,
		topics: topics{
			commands: base + "commands",
			acks:     base + "acks",
			status:   base + "status",
			desired:  base + "desired",
		},
		ready: make(chan struct{}),
	}
}

// connect opens the player's first connection and waits until it is subscribed.
func (p *player) connect(ctx context.Context) error {
	p.client = paho.NewClient(p.sim.newClientOptions(p))
	tok := p.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("simulator: player %s: connecting: %w", p.id, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		if errors.Is(err, packets.ErrorNetworkError) {
			return fmt.Errorf("simulator: player %s: cannot reach the broker: %w", p.id, err)
		}
		if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
			return fmt.Errorf("simulator: player %s: %w: %w", p.id, ErrNotAuthorized, err)
		}
		return fmt.Errorf("simulator: player %s: broker refused the connection: %w", p.id, err)
	}
	select {
	case <-p.ready:
		return p.readyErr
	case <-ctx.Done():
		return fmt.Errorf("simulator: player %s: subscribing: %w", p.id, ctx.Err())
	}
}

// onConnect runs (in its own goroutine) after every successful connect: subscribe
// first, so that nothing sent after the player announces itself online is missed.
func (p *player) onConnect(c paho.Client) {
	err := p.subscribeAndAnnounce(c)
	first := false
	p.readyOnce.Do(func() {
		if err != nil {
			p.readyErr = fmt.Errorf("simulator: player %s: %w", p.id, err)
		}
		close(p.ready)
		first = true
	})
	switch {
	case err == nil:
		p.sim.emit(Event{DeviceID: p.id, Kind: KindConnected})
	case !first: // on the first connect Start reports the error
		p.sim.emit(Event{DeviceID: p.id, Kind: KindError, Detail: "after reconnect: " + err.Error()})
	}
}

func (p *player) subscribeAndAnnounce(c paho.Client) error {
	tok := c.SubscribeMultiple(map[string]byte{p.topics.commands: 1, p.topics.desired: 1}, p.onMessage)
	if err := wait(tok, "subscribe"); err != nil {
		return err
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code == 0x80 { // MQTT 3.1.1 SUBACK failure
				return fmt.Errorf("broker refused the subscription to %s", topic)
			}
		}
	}
	return wait(c.Publish(p.topics.status, 1, true, statusPayload("online")), "publish online status")
}

// beforeReconnect runs in paho's reconnect goroutine before each attempt. paho's
// first attempt is immediate; a random pause spreads the reconnects of thousands of
// players after a broker restart, and lets the broker finish with the old
// connection first (mochi can otherwise lose a session that reconnects mid-cleanup,
// mochi-mqtt/server#483, or publish the old connection's will after the new online).
func (p *player) beforeReconnect(paho.Client, *paho.ClientOptions) {
	if p.dropped.Load() || p.sim.closed.Load() {
		return
	}
	time.Sleep(reconnectPauseMin + rand.N(reconnectPauseMax-reconnectPauseMin))
}

// onConnectionLost reports an unexpected loss; paho reconnects by itself.
func (p *player) onConnectionLost(_ paho.Client, err error) {
	if p.dropped.Load() || p.sim.closed.Load() {
		return
	}
	p.sim.emit(Event{DeviceID: p.id, Kind: KindDisconnected, Detail: err.Error() + " (reconnecting)"})
}

// openConnection dials the broker like paho would, but remembers the connection so
// that Drop can cut it, and refuses to dial again once the player was dropped or the
// Sim closed (a late reconnect would otherwise announce the player online again).
func (p *player) openConnection(uri *url.URL, opts paho.ClientOptions) (net.Conn, error) {
	if p.dropped.Load() {
		return nil, errDropped
	}
	if p.sim.closed.Load() {
		return nil, errClosed
	}
	conn, err := dial(uri, opts)
	if err != nil {
		return nil, err
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.dropped.Load() {
		_ = conn.Close()
		return nil, errDropped
	}
	p.conn = conn
	return conn, nil
}

// ErrNotAuthorized is a broker's refusal of a player's device id and token.
var ErrNotAuthorized = errors.New("the broker refused the connection: it does not take the device's id and token")

var (
	errDropped = errors.New("simulator: player was dropped")
	errClosed  = errors.New("simulator: closed")
)

// drop closes the network connection under paho's feet. Disconnect(0) afterwards only
// stops paho from reconnecting: its DISCONNECT packet has no connection left to
// travel on, so the broker sees a dropped TCP connection and fires the last will.
func (p *player) drop() {
	if p.client == nil {
		return
	}
	p.connMu.Lock()
	already := p.dropped.Swap(true)
	conn := p.conn
	p.connMu.Unlock()
	if already {
		return
	}
	if conn != nil {
		_ = conn.Close()
	}
	p.client.Disconnect(0)
	p.sim.emit(Event{DeviceID: p.id, Kind: KindDisconnected, Detail: "dropped"})
}

// close announces the player offline (retained, with a time) and disconnects cleanly.
func (p *player) close() {
	if p.client == nil || p.dropped.Load() {
		return
	}
	wasOpen := p.client.IsConnectionOpen()
	if wasOpen {
		p.client.Publish(p.topics.status, 1, true, statusPayload("offline")).WaitTimeout(closePublishTimeout)
	}
	p.client.Disconnect(250)
	if wasOpen {
		p.sim.emit(Event{DeviceID: p.id, Kind: KindDisconnected, Detail: "closed"})
	}
}

func (p *player) connectionOpen() bool {
	return p.client != nil && !p.dropped.Load() && p.client.IsConnectionOpen()
}

// onMessage hands a received message, by topic, to the player's share of the
// Sim's message goroutines.
func (p *player) onMessage(_ paho.Client, m paho.Message) {
	in := inbound{p: p, payload: m.Payload(), at: time.Now().UTC()}
	switch m.Topic() {
	case p.topics.commands:
		in.command = true
	case p.topics.desired:
	default:
		return
	}
	select {
	case p.sim.inbox[p.shard] <- in:
	case <-p.sim.stop:
	}
}

// state returns a copy of what the player has applied.
func (p *player) state() PlayerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PlayerState{
		Emergency:  p.emergency,
		LoopPaused: p.loopPaused,
		Handled:    p.handled.list(),
		LastURL:    p.lastURL,
		Connected:  p.connectionOpen(),
	}
	if p.desired != nil {
		d := *p.desired
		st.Desired = &d
	}
	return st
}

// fnv32 hashes a device id to pick its shard.
func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// statusPayload is the retained presence document {"state":...,"at":...}.
func statusPayload(state string) []byte {
	b, _ := json.Marshal(struct {
		State string `json:"state"`
		At    string `json:"at"`
	}{state, time.Now().UTC().Format(time.RFC3339Nano)})
	return b
}

// wait waits for a paho token with a deadline.
func wait(tok paho.Token, what string) error {
	if !tok.WaitTimeout(opTimeout) {
		return fmt.Errorf("%s: no answer from the broker within %v", what, opTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
