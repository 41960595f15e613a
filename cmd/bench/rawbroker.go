package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/broker"
)

// rawPayloadSize is about the size of a command message, so that the broker's
// own rate is measured on the same kind of message devicehooks sends.
const rawPayloadSize = 240

// rawResult is the broker's own QoS-1 rate: one publisher, one subscriber.
type rawResult struct {
	Broker   string  `json:"broker"`
	Window   int     `json:"window"` // messages between publish and receipt at most
	Rate     float64 `json:"msgs_per_s"`
	Received int64   `json:"received"`
	// Lost is how many acknowledged publishes never reached the subscriber: a
	// broker that drops QoS-1 messages when a subscriber falls behind (mochi does,
	// past its per-client write queue) shows it here.
	Lost  int64   `json:"lost"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

// startRawEmbedded starts an embedded broker in this process with the same
// settings devicehooks uses (broker.StartEmbedded), open to every client (the
// naive handler's player logs in with a username).
func startRawEmbedded() (*broker.Embedded, error) {
	return broker.StartEmbedded(broker.EmbeddedConfig{
		TCPAddr:        "127.0.0.1:0",
		AllowAnonymous: true,
		Authenticate:   func(string, string) bool { return true },
		Allow:          func(string, string, bool) bool { return true },
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// measureRaw publishes at QoS 1 to one QoS-1 subscriber as fast as it receives,
// with at most window messages between publish and receipt, and reports the rate
// at which the subscriber receives over the measurement window: the broker's
// loss-free QoS-1 rate on this machine.
func measureRaw(ctx context.Context, name, url string, window int, warmup, measure time.Duration) (rawResult, error) {
	res := rawResult{Broker: name, Window: window}
	const topic = "bench/raw"
	var (
		received atomic.Int64
		total    atomic.Int64 // received, window or not
		counting atomic.Bool
		latMu    sync.Mutex
		lat      []time.Duration
	)
	subOpts := rawClientOptions(url, "bench-raw-sub").SetDefaultPublishHandler(func(paho.Client, paho.Message) {})
	sub := paho.NewClient(subOpts)
	if err := waitToken(sub.Connect(), "connect subscriber"); err != nil {
		return res, err
	}
	defer sub.Disconnect(100)
	// The window: a publish takes a slot, its receipt by the subscriber frees it.
	// Counting to the receipt rather than to the broker's PUBACK keeps the broker
	// from dropping: mochi acknowledges a publish before it writes it out, and drops
	// what a subscriber's write queue (256 here, as in devicehooks) cannot hold.
	slots := make(chan struct{}, window)
	err := waitToken(sub.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		total.Add(1)
		select {
		case <-slots:
		default:
		}
		if !counting.Load() {
			return
		}
		received.Add(1)
		if p := m.Payload(); len(p) >= 8 {
			sent := time.Unix(0, int64(binary.LittleEndian.Uint64(p)))
			latMu.Lock()
			lat = append(lat, time.Since(sent))
			latMu.Unlock()
		}
	}), "subscribe")
	if err != nil {
		return res, err
	}

	pub := paho.NewClient(rawClientOptions(url, "bench-raw-pub"))
	if err := waitToken(pub.Connect(), "connect publisher"); err != nil {
		return res, err
	}
	defer pub.Disconnect(100)

	// PUBACKs come back in order on one connection, so one goroutine checks them
	// in order.
	inflight := make(chan paho.Token, 4096)
	var (
		pubErrs, published atomic.Int64
		acker              sync.WaitGroup
	)
	acker.Go(func() {
		for tok := range inflight {
			if !tok.WaitTimeout(10 * time.Second) {
				pubErrs.Add(1)
				continue
			}
			if tok.Error() != nil {
				pubErrs.Add(1)
			}
		}
	})
	payload := make([]byte, rawPayloadSize)
	for i := 8; i < len(payload); i++ {
		payload[i] = 'x'
	}
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+measure)
	var countedFrom time.Time
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(to) {
			break
		}
		if !now.Before(from) && !counting.Load() {
			countedFrom = now
			counting.Store(true)
		}
		select {
		case slots <- struct{}{}:
		case <-time.After(5 * time.Second):
			return res, fmt.Errorf("bench: raw broker %s: messages lost (none received for 5s)", name)
		}
		msg := make([]byte, len(payload))
		copy(msg, payload)
		binary.LittleEndian.PutUint64(msg, uint64(now.UnixNano()))
		inflight <- pub.Publish(topic, 1, false, msg)
		published.Add(1)
	}
	counting.Store(false)
	elapsed := time.Since(countedFrom)
	got := received.Load()
	close(inflight)
	acker.Wait()
	// Wait for the tail to arrive, then count what never will.
	for last := int64(-1); total.Load() != last && total.Load() < published.Load(); {
		last = total.Load()
		time.Sleep(300 * time.Millisecond)
	}
	res.Lost = published.Load() - pubErrs.Load() - total.Load()
	// What was counted and is still in flight arrives after the window closed and
	// is not counted; the rate is what arrived within it.
	if countedFrom.IsZero() || elapsed <= 0 {
		return res, errors.New("bench: raw broker: no measurement window")
	}
	res.Received = got
	res.Rate = float64(got) / elapsed.Seconds()
	if e := pubErrs.Load(); e > 0 {
		return res, fmt.Errorf("bench: raw broker %s: %d publishes failed", name, e)
	}
	latMu.Lock()
	res.P50ms, res.P99ms = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
	latMu.Unlock()
	return res, ctx.Err()
}

func rawClientOptions(url, id string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(url).
		SetClientID(id).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetWriteTimeout(10 * time.Second)
}

func waitToken(tok paho.Token, what string) error {
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("bench: %s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("bench: %s: %w", what, err)
	}
	return nil
}
