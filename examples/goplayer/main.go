// Command goplayer is a minimal devicehooks signage player (docs/players.md):
// it keeps its presence, "applies" commands and desired state by printing
// them, and acks every command. Only paho and the standard library.
//
//	go run ./examples/goplayer -broker tcp://127.0.0.1:1883 -device lobby-1 -token dhd_...
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

type config struct{ Broker, Device, Token, Prefix string }

func main() {
	var cfg config
	flag.StringVar(&cfg.Broker, "broker", envOr("PLAYER_BROKER", "tcp://127.0.0.1:1883"), "broker URL: tcp://host:1883 or ws://host:8083/mqtt (env PLAYER_BROKER)")
	flag.StringVar(&cfg.Device, "device", os.Getenv("PLAYER_DEVICE"), "device id, the MQTT username (env PLAYER_DEVICE)")
	flag.StringVar(&cfg.Token, "token", os.Getenv("PLAYER_TOKEN"), "device token, the MQTT password (env PLAYER_TOKEN)")
	flag.StringVar(&cfg.Prefix, "prefix", envOr("PLAYER_TOPIC_PREFIX", "devicehooks"), "topic prefix (env PLAYER_TOPIC_PREFIX)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "goplayer:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type command struct {
	ID        string         `json:"id"`
	Function  string         `json:"function"`
	Params    map[string]any `json:"params"`
	ExpiresAt *time.Time     `json:"expires_at"`
}

type desired struct {
	Version   int64 `json:"version"`
	Emergency struct {
		Enabled bool   `json:"enabled"`
		Message string `json:"message"`
		URL     string `json:"url"`
	} `json:"emergency"`
	LoopPaused bool `json:"loop_paused"`
}

type ack struct {
	ID     string    `json:"id"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

const maxRemembered = 1000 // command ids kept for dedupe

// run connects, plays until ctx ends, then says offline and disconnects.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.Device == "" || cfg.Token == "" {
		return fmt.Errorf("need a device id and a token (-device, -token)")
	}
	topic := func(kind string) string { return cfg.Prefix + "/devices/" + cfg.Device + "/" + kind }
	var (
		mu      sync.Mutex
		acked   = map[string]ack{} // command id -> first ack, to answer repeats alike
		order   []string           // ids in arrival order, to forget the oldest
		version int64              // applied desired version
	)
	status := func(state string) string {
		b, _ := json.Marshal(map[string]any{"state": state, "at": time.Now().UTC()})
		return string(b)
	}
	onMessage := func(c paho.Client, m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.Topic() == topic("desired") {
			var d desired
			if json.Unmarshal(m.Payload(), &d) != nil || d.Version <= version {
				return // unreadable, or not newer than what is shown
			}
			version = d.Version
			fmt.Fprintf(out, "desired v%d: emergency=%t %q loop_paused=%t\n", d.Version, d.Emergency.Enabled, d.Emergency.Message, d.LoopPaused)
			return
		}
		var cmd command
		unreadable := json.Unmarshal(m.Payload(), &cmd)
		if unreadable != nil {
			// Ack what has an id as failed, or it comes back on every connect.
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(m.Payload(), &id)
			cmd = command{ID: id.ID}
		}
		if cmd.ID == "" {
			return
		}
		a, seen := acked[cmd.ID]
		switch {
		case seen: // at-least-once delivery: ack again, don't apply again
		case unreadable != nil:
			a = ack{ID: cmd.ID, Status: "failed", Detail: "unreadable command: " + unreadable.Error()}
		case cmd.ExpiresAt != nil && time.Now().After(*cmd.ExpiresAt):
			a = ack{ID: cmd.ID, Status: "rejected", Detail: "expired"}
		default:
			a = ack{ID: cmd.ID, Status: "succeeded"}
			if err := apply(out, cmd); err != nil {
				a.Status, a.Detail = "failed", err.Error()
			}
			acked[cmd.ID], order = a, append(order, cmd.ID)
			if len(order) > maxRemembered {
				delete(acked, order[0])
				order = order[1:]
			}
		}
		a.At = time.Now().UTC()
		b, _ := json.Marshal(a)
		c.Publish(topic("acks"), 1, false, b) // don't wait inside a handler
	}

	// We reconnect ourselves rather than with paho's auto-reconnect, whose resend
	// of in-flight messages races with new publishes (paho.mqtt.golang#703). An
	// ack lost that way costs nothing: the server sends an unacked command again.
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(cfg.Broker).
		SetClientID("goplayer-"+cfg.Device).SetUsername(cfg.Device).SetPassword(cfg.Token).
		SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(10*time.Second).SetKeepAlive(30*time.Second).
		SetWill(topic("status"), `{"state":"offline"}`, 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	refused := make(chan error, 1)
	var connecting sync.Mutex // so that "offline" at exit comes after any "online"
	// On every (re)connect: subscribe first, then say online, so that nothing
	// sent once the server sees us online can be missed.
	opts.SetOnConnectHandler(func(c paho.Client) {
		connecting.Lock()
		defer connecting.Unlock()
		tok := c.SubscribeMultiple(map[string]byte{topic("commands"): 1, topic("desired"): 1}, onMessage)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			fmt.Fprintln(out, "subscribe failed:", tok.Error())
			return
		}
		for t, code := range tok.(*paho.SubscribeToken).Result() {
			if code >= 0x80 { // refused (0x80, or an MQTT 5 reason): saying online would get us disconnected
				select {
				case refused <- fmt.Errorf("the broker refused the subscription to %s: check -device and -prefix", t):
				default:
				}
				return
			}
		}
		if tok := c.Publish(topic("status"), 1, true, status("online")); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			fmt.Fprintln(out, "online as", cfg.Device)
		}
	})
	client := paho.NewClient(opts)
	connect := func() error {
		tok := client.Connect()
		if !tok.WaitTimeout(15 * time.Second) {
			return fmt.Errorf("no answer from %s", cfg.Broker)
		}
		return tok.Error()
	}
	if err := connect(); err != nil {
		return fmt.Errorf("connect to %s: %v (a refused connection usually means a wrong device id or token, or a -prefix other than the server's: the will is on the status topic)", cfg.Broker, err)
	}
	for {
		select {
		case <-ctx.Done():
			// A clean disconnect does not fire the will: say offline ourselves.
			connecting.Lock()
			client.Publish(topic("status"), 1, true, status("offline")).WaitTimeout(5 * time.Second)
			client.Disconnect(250)
			fmt.Fprintln(out, "offline")
			return nil
		case err := <-refused:
			client.Disconnect(250)
			return err
		case err := <-lost:
			fmt.Fprintln(out, "connection lost:", err)
			// Retry after a random pause (so that a fleet doesn't stampede a
			// restarted broker), backing off to 30 s.
			for pause := time.Duration(0); ; pause = min(2*pause+time.Second, 30*time.Second) {
				select {
				case <-ctx.Done():
					fmt.Fprintln(out, "offline") // the will has said so
					return nil
				case <-time.After(pause + rand.N(time.Second)):
				}
				err := connect()
				if err == nil {
					break
				}
				fmt.Fprintln(out, "reconnecting:", err)
			}
		}
	}
}

// apply "shows" a command; a real player would drive its screen here.
func apply(out io.Writer, cmd command) error {
	str := func(key string) string { s, _ := cmd.Params[key].(string); return s }
	switch cmd.Function {
	case "load_url":
		if str("url") == "" {
			return fmt.Errorf("invalid params: url is required")
		}
		fmt.Fprintf(out, "load_url %s (duration_s: %v)\n", str("url"), cmd.Params["duration_s"])
	case "set_emergency":
		on, ok := cmd.Params["enabled"].(bool)
		if !ok {
			return fmt.Errorf("invalid params: enabled must be true or false")
		}
		fmt.Fprintf(out, "set_emergency on=%t message=%q url=%q\n", on, str("message"), str("url"))
	case "sensor_event":
		fmt.Fprintf(out, "sensor_event id=%s event=%s value=%v\n", str("id"), str("event"), cmd.Params["value"])
	case "refresh_datasource":
		fmt.Fprintf(out, "refresh_datasource %q\n", str("datasource_id"))
	case "pause_loop", "resume_loop", "refresh_content", "restart":
		fmt.Fprintln(out, cmd.Function)
	default:
		return fmt.Errorf("unknown function %q", cmd.Function)
	}
	return nil
}
