// Command goplayer is a minimal devicehooks signage player (docs/players.md):
// it keeps its presence, "applies" commands and desired state by printing
// them, and acks every command. Only paho and the standard library.
//
//	go run ./examples/goplayer -broker tcp://127.0.0.1:1883 -device lobby-1 -token dhd_...
//
// Exit status: 0 after Ctrl-C or SIGTERM; 1 when the broker refuses its
// credentials at start, or a subscription; 3 for a restart command, once the
// broker has its ack: run it under a supervisor that starts it again (systemd
// Restart=always, say).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
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
	err := run(ctx, cfg, os.Stdout)
	switch {
	case errors.Is(err, errRestart):
		fmt.Fprintln(os.Stderr, "goplayer: restart: exiting with status", exitRestart, "for the supervisor to start it again")
		os.Exit(exitRestart)
	case err != nil:
		fmt.Fprintln(os.Stderr, "goplayer:", err)
		os.Exit(1)
	}
}

// errRestart ends run after a restart command's ack has reached the broker;
// main exits with exitRestart.
var errRestart = errors.New("restart requested")

const exitRestart = 3

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type command struct {
	ID        string         `json:"id"`
	Function  string         `json:"function"`
	Params    map[string]any `json:"params"` // numbers as json.Number: exact, even past 2^53
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

// handled is what the player remembers of a command: its ack, and what must
// wait until the broker has the ack (nil for most commands).
type handled struct {
	ack  ack
	then func()
}

const maxRemembered = 1000 // command ids kept for dedupe

// subackTimeout is how long a connection waits for its SUBACK before it is
// given up and made again.
var subackTimeout = 10 * time.Second

// run connects, plays until ctx ends, then stops its commands, says offline
// and disconnects. It returns errRestart after a restart command, once the
// broker has its ack.
func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.Device == "" || cfg.Token == "" {
		return fmt.Errorf("need a device id and a token (-device, -token)")
	}
	topic := func(kind string) string { return cfg.Prefix + "/devices/" + cfg.Device + "/" + kind }
	var (
		mu      sync.Mutex
		acked   = map[string]handled{} // command id -> first outcome, to answer repeats alike
		order   []string               // ids in arrival order, to forget the oldest
		version int64                  // applied desired version
		leaving bool                   // shutting down: commands are left for next time
	)
	restart := make(chan struct{}, 1)
	requestRestart := func() {
		select {
		case restart <- struct{}{}:
		default:
		}
	}
	status := func(state string) string {
		b, _ := json.Marshal(map[string]any{"state": state, "at": time.Now().UTC()})
		return string(b)
	}
	onMessage := func(c paho.Client, m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		if leaving {
			return // unacked, a command comes again at the next connect
		}
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
		dec := json.NewDecoder(bytes.NewReader(m.Payload()))
		dec.UseNumber() // a sensor value 12345678901234567891 stays exact
		unreadable := dec.Decode(&cmd)
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
		h, seen := acked[cmd.ID]
		switch {
		case seen: // at-least-once delivery: ack again, don't apply again
			fmt.Fprintf(out, "repeat of %s: acked again, not applied again\n", cmd.ID)
		case unreadable != nil:
			h = handled{ack: ack{ID: cmd.ID, Status: "failed", Detail: "unreadable command: " + unreadable.Error()}}
		case cmd.ExpiresAt != nil && time.Now().After(*cmd.ExpiresAt):
			h = handled{ack: ack{ID: cmd.ID, Status: "rejected", Detail: "expired"}}
		default:
			h = handled{ack: ack{ID: cmd.ID, Status: "succeeded"}}
			then, err := apply(out, cmd, requestRestart)
			if err != nil {
				h.ack.Status, h.ack.Detail = "failed", err.Error()
			} else {
				h.then = then
			}
			acked[cmd.ID], order = h, append(order, cmd.ID)
			if len(order) > maxRemembered {
				delete(acked, order[0])
				order = order[1:]
			}
		}
		a := h.ack
		a.At = time.Now().UTC()
		b, _ := json.Marshal(a)
		tok := c.Publish(topic("acks"), 1, false, b) // don't wait inside a handler...
		if h.then != nil {
			// ...but elsewhere, for what must come after the ack: a restart
			// before the broker has it would lose it, and the server would send
			// the command again to a player that no longer knows it. If the
			// connection drops first, then waits for the ack of the repeat
			// that the server sends after the reconnect.
			go func() {
				if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
					h.then()
				}
			}()
		}
	}

	// We reconnect ourselves rather than with paho's auto-reconnect, whose resend
	// of in-flight messages races with new publishes (paho.mqtt.golang#703). An
	// ack lost that way costs nothing: the server sends an unacked command again.
	broken := make(chan error, 1) // the connection was lost, or is of no use
	report := func(err error) {
		select {
		case broken <- err:
		default:
		}
	}
	opts := paho.NewClientOptions().AddBroker(cfg.Broker).
		SetClientID("goplayer-"+cfg.Device).SetUsername(cfg.Device).SetPassword(cfg.Token).
		SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(10*time.Second).SetKeepAlive(30*time.Second).
		SetWill(topic("status"), `{"state":"offline"}`, 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) { report(err) })
	refused := make(chan error, 1)
	var connecting sync.Mutex // so that "offline" at exit comes after any "online"
	// On every (re)connect: subscribe first, then say online, so that nothing
	// sent once the server sees us online can be missed.
	opts.SetOnConnectHandler(func(c paho.Client) {
		connecting.Lock()
		defer connecting.Unlock()
		tok := c.SubscribeMultiple(map[string]byte{topic("commands"): 1, topic("desired"): 1}, onMessage)
		if !tok.WaitTimeout(subackTimeout) {
			report(fmt.Errorf("no SUBACK within %v", subackTimeout)) // connected, but of no use: connect again
			return
		}
		if tok.Error() != nil {
			report(fmt.Errorf("subscribe: %w", tok.Error()))
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
	// goodbye stops the commands, says offline (a clean disconnect does not
	// fire the will) and disconnects. Commands first: the embedded broker takes
	// the device as online while it reads its commands topic, and a command
	// applied after "offline" could not be acked once disconnected.
	goodbye := func() {
		connecting.Lock()
		client.Unsubscribe(topic("commands")).WaitTimeout(5 * time.Second)
		mu.Lock() // after a command being handled, whose ack then goes first
		leaving = true
		mu.Unlock()
		client.Publish(topic("status"), 1, true, status("offline")).WaitTimeout(5 * time.Second)
		client.Disconnect(250)
		fmt.Fprintln(out, "offline")
	}

	// Connect, and connect again whenever the connection is lost: after a random
	// pause (so that a fleet doesn't stampede a restarted broker), backing off
	// to 30 s. A player may well start before the network or the server.
	everConnected := false
	var backoff time.Duration
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				fmt.Fprintln(out, "offline") // the will has said so, if we were online
				return nil
			case <-time.After(backoff + rand.N(time.Second)):
			}
			backoff = min(2*backoff+time.Second, 30*time.Second)
		}
		select {
		case <-broken: // stale: from the connection given up
		default:
		}
		retrying := "connecting:"
		if everConnected {
			retrying = "reconnecting:"
		}
		tok := client.Connect()
		if !tok.WaitTimeout(15 * time.Second) {
			fmt.Fprintln(out, retrying, "no answer from", cfg.Broker)
			continue
		}
		if err := tok.Error(); err != nil {
			// Refused credentials at start are a configuration error; after a
			// token rotation, keep trying until restarted with the new token.
			rc := tok.(*paho.ConnectToken).ReturnCode()
			if !everConnected && (rc == packets.ErrRefusedBadUsernameOrPassword || rc == packets.ErrRefusedNotAuthorised) {
				return fmt.Errorf("connect to %s: %v (a wrong device id or token, or a -prefix other than the server's: the will is on the status topic)", cfg.Broker, err)
			}
			fmt.Fprintln(out, retrying, err)
			continue
		}
		everConnected, backoff = true, 0
		select {
		case <-ctx.Done():
			goodbye()
			return nil
		case <-restart:
			goodbye()
			return errRestart
		case err := <-refused:
			client.Disconnect(250)
			return err
		case err := <-broken:
			fmt.Fprintln(out, "connection lost:", err)
			client.Disconnect(0) // if still connected (no SUBACK)
		}
	}
}

// apply "shows" a command; a real player would drive its screen here. What
// must wait until the broker has the ack it returns as then: it runs once the
// ack's PUBACK is in. A restart here, before the ack, would lose the ack.
func apply(out io.Writer, cmd command, restart func()) (then func(), err error) {
	str := func(key string) string { s, _ := cmd.Params[key].(string); return s }
	switch cmd.Function {
	case "load_url":
		// Only http(s): a "javascript:" or "file:" URL must never be shown.
		u, err := url.Parse(str("url"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("invalid params: url must be an http or https URL")
		}
		fmt.Fprintf(out, "load_url %s (duration_s: %v)\n", u, cmd.Params["duration_s"])
	case "set_emergency":
		on, ok := cmd.Params["enabled"].(bool)
		if !ok {
			return nil, fmt.Errorf("invalid params: enabled must be true or false")
		}
		fmt.Fprintf(out, "set_emergency on=%t message=%q url=%q\n", on, str("message"), str("url"))
	case "sensor_event":
		fmt.Fprintf(out, "sensor_event id=%s event=%s value=%v\n", str("id"), str("event"), cmd.Params["value"])
	case "refresh_datasource":
		fmt.Fprintf(out, "refresh_datasource %q\n", str("datasource_id"))
	case "pause_loop", "resume_loop", "refresh_content":
		fmt.Fprintln(out, cmd.Function)
	case "restart":
		fmt.Fprintln(out, "restart: once the broker has the ack")
		return restart, nil
	default:
		return nil, fmt.Errorf("unknown function %q", cmd.Function)
	}
	return nil, nil
}
