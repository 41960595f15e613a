package simulator

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/internal/pahostore"
)

const (
	defaultTopicPrefix        = "devicehooks"
	defaultConnectConcurrency = 64
	opTimeout                 = 10 * time.Second // publish/subscribe round trips
	closePublishTimeout       = 2 * time.Second
	reconnectPauseMin         = 100 * time.Millisecond
	reconnectPauseMax         = time.Second
)

// Sim is a set of running simulated players. Its methods are safe for concurrent use.
type Sim struct {
	cfg     Config
	players map[string]*player // fixed after Start
	order   []*player          // in Config.Players order
	closed  atomic.Bool
	once    sync.Once

	// Received messages and published acks are handled by a few long-lived
	// goroutines, each serving a fixed share of the players (so each player's
	// messages stay in order), rather than on paho's per-client goroutines: with
	// thousands of players, a fan-out would otherwise grow thousands of small
	// goroutine stacks for the JSON work, and start a goroutine per ack.
	inbox  []chan inbound
	acks   []chan pendingAck
	stop   chan struct{}
	drains sync.WaitGroup

	commands, duplicates, expired, acked, failed, desired atomic.Int64
}

// Start connects every player (MQTT 3.1.1, clean session, client id "player-"+DeviceID,
// a retained {"state":"offline"} last will on its status topic), subscribes each to its
// commands and desired topics at QoS 1 and then publishes its retained online status.
// Players reconnect on their own, after a random pause of 0.1-1 s, and redo both on
// every reconnect. Start returns once all players are connected and subscribed, or an
// error, after closing what it opened, if ctx ends or the broker refuses a player.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if err := normalize(&cfg); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, players: make(map[string]*player, len(cfg.Players))}
	s.startWorkers()
	for _, c := range cfg.Players {
		if _, dup := s.players[c.DeviceID]; dup {
			s.Close()
			return nil, fmt.Errorf("simulator: device %q listed twice", c.DeviceID)
		}
		p := newPlayer(s, c)
		s.players[c.DeviceID] = p
		s.order = append(s.order, p)
	}

	if err := s.connectAll(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// normalize validates cfg and fills in defaults.
func normalize(cfg *Config) error {
	if cfg.BrokerURL == "" {
		return errors.New("simulator: broker URL is required")
	}
	u, err := url.Parse(cfg.BrokerURL)
	if err != nil {
		return fmt.Errorf("simulator: broker URL: %w", err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps", "ws", "wss":
	default:
		return fmt.Errorf("simulator: broker URL %q: scheme must be tcp, tls, ws or wss", cfg.BrokerURL)
	}
	if len(cfg.Players) == 0 {
		return errors.New("simulator: no players")
	}
	for _, c := range cfg.Players {
		if c.DeviceID == "" {
			return errors.New("simulator: a player has an empty device id")
		}
	}
	if cfg.FailureRate < 0 || cfg.FailureRate > 1 {
		return fmt.Errorf("simulator: failure rate %v is not between 0 and 1", cfg.FailureRate)
	}
	if cfg.AckDelay < 0 {
		return fmt.Errorf("simulator: negative ack delay %v", cfg.AckDelay)
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = defaultTopicPrefix
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = defaultConnectConcurrency
	}
	return nil
}

// connectAll connects the players, ConnectConcurrency at a time, and stops at the
// first failure.
func (s *Sim) connectAll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	work := make(chan *player)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	workers := min(s.cfg.ConnectConcurrency, len(s.order))
	for range workers {
		wg.Go(func() {
			for p := range work {
				if err := p.connect(ctx); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
feed:
	for _, p := range s.order {
		select {
		case work <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("simulator: connecting players: %w", err)
	}
	return nil
}

// Close disconnects every player cleanly: each publishes a retained
// {"state":"offline","at":...} first, then sends an MQTT DISCONNECT, so the broker
// does not fire its last will. Acks still waiting for their delay are not sent.
// Close is idempotent.
func (s *Sim) Close() {
	s.once.Do(func() {
		s.closed.Store(true)
		work := make(chan *player)
		var wg sync.WaitGroup
		for range min(s.cfg.ConnectConcurrency, len(s.order)) {
			wg.Go(func() {
				for p := range work {
					p.close()
				}
			})
		}
		for _, p := range s.order {
			work <- p
		}
		close(work)
		wg.Wait()
		close(s.stop)
		s.drains.Wait()
	})
}

// shards is how many message and ack goroutines a Sim runs.
func shards() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// startWorkers starts the goroutines that handle received messages and wait for
// published acks; Close stops them.
func (s *Sim) startWorkers() {
	n := shards()
	s.stop = make(chan struct{})
	s.inbox = make([]chan inbound, n)
	s.acks = make([]chan pendingAck, n)
	for i := range n {
		s.inbox[i] = make(chan inbound, 1024)
		s.acks[i] = make(chan pendingAck, 4096)
		s.drains.Go(func() { s.handleInbox(s.inbox[i]) })
		s.drains.Go(func() { s.completeAcks(s.acks[i]) })
	}
}

// inbound is a message a player received.
type inbound struct {
	p       *player
	command bool // else a desired state
	payload []byte
	at      time.Time // when it arrived
}

func (s *Sim) handleInbox(in chan inbound) {
	for {
		select {
		case m := <-in:
			if m.command {
				m.p.onCommand(m.payload, m.at)
			} else {
				m.p.onDesired(m.payload, m.at)
			}
		case <-s.stop:
			return
		}
	}
}

// pendingAck is an ack published and not yet acknowledged by the broker.
type pendingAck struct {
	p   *player
	cmd *Command
	out outcome
	tok paho.Token
}

func (s *Sim) completeAcks(in chan pendingAck) {
	for {
		select {
		case a := <-in:
			a.p.ackDone(a.cmd, a.out, a.tok)
		case <-s.stop:
			return
		}
	}
}

// Drop cuts one player's network connection without an MQTT DISCONNECT, as a player
// losing power would, so the broker publishes its last will. The player does not
// reconnect. Unknown ids are ignored.
func (s *Sim) Drop(deviceID string) {
	if p := s.players[deviceID]; p != nil {
		p.drop()
	}
}

// Stats returns totals over all players.
func (s *Sim) Stats() Stats {
	st := Stats{
		Players:    len(s.order),
		Commands:   s.commands.Load(),
		Duplicates: s.duplicates.Load(),
		Expired:    s.expired.Load(),
		Acked:      s.acked.Load(),
		Failed:     s.failed.Load(),
		Desired:    s.desired.Load(),
	}
	for _, p := range s.order {
		if p.connectionOpen() {
			st.Connected++
		}
	}
	return st
}

// Player returns what one player has applied so far; the zero PlayerState for an
// unknown id.
func (s *Sim) Player(deviceID string) PlayerState {
	p := s.players[deviceID]
	if p == nil {
		return PlayerState{}
	}
	return p.state()
}

// emit reports an event to Config.OnEvent, if set.
func (s *Sim) emit(ev Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	s.cfg.OnEvent(ev)
}

// newClientOptions builds the paho options for one player.
func (s *Sim) newClientOptions(p *player) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(s.cfg.BrokerURL).
		SetClientID("player-"+p.id).
		SetUsername(p.id).
		SetPassword(p.token).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetResumeSubs(false).
		SetWill(p.topics.status, `{"state":"offline"}`, 1, true).
		SetAutoReconnect(true).
		SetStore(pahostore.New()).
		SetConnectRetry(false). // a refused first connect must fail Start, not retry forever
		SetMaxReconnectInterval(10 * time.Second).
		SetConnectTimeout(opTimeout).
		SetKeepAlive(30 * time.Second).
		SetCustomOpenConnectionFn(p.openConnection).
		SetDefaultPublishHandler(p.onMessage).
		SetReconnectingHandler(p.beforeReconnect).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(p.onConnectionLost)
}
