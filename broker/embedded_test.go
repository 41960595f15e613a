package broker

import (
	"errors"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestPublishReportsDrops: mochi drops a message rather than wait when a
// subscriber's write queue is full; Publish must say so, so that delivery sends
// the command again instead of counting it as published. Every message is either
// received or reported dropped.
func TestPublishReportsDrops(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{
		TCPAddr: "127.0.0.1:0", AllowAnonymous: true,
		Allow:  func(string, string, bool) bool { return true },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var received atomic.Int64
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + e.Addr()).SetClientID("sub").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("dev/commands", 1, func(paho.Client, paho.Message) { received.Add(1) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	// On one P the client's write loop runs only when the publisher is preempted
	// (every 10ms), so a burst overflows its write queue.
	const n = 5000
	var dropped int64
	procs := runtime.GOMAXPROCS(1)
	for range n {
		e.Publish("dev/commands", []byte("command"), false, func(err error) {
			switch {
			case errors.Is(err, ErrDropped):
				dropped++
			case err != nil:
				t.Errorf("publish: %v", err)
			}
		})
	}
	runtime.GOMAXPROCS(procs)
	if dropped == 0 {
		t.Fatalf("no drop reported for a burst of %d", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < n-dropped && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything more would be a drop not reported
	if got := received.Load(); got != n-dropped {
		t.Fatalf("received %d, published %d, reported dropped %d", got, n, dropped)
	}
	// Other topics are not affected.
	e.Publish("other/commands", []byte("x"), false, func(err error) {
		if err != nil {
			t.Errorf("publish on a topic without a subscriber: %v", err)
		}
	})
}
