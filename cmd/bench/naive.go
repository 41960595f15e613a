package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/simulator"
)

// The issue compares devicehooks with "a naive Go handler that publishes each
// call at QoS 1" (about 7,900 calls/s on its machine, where the broker alone
// moved about 13,600 messages/s). The benchmark measures that handler here, in
// the same run and against the same broker, with the same load generator and
// player, so that devicehooks can be read against it, and so that its ratio to
// the broker's two raw rates shows which of them the 13,600/s is.
//
// The handler is the benchmark binary itself, run again as a child process
// with naiveCommand as its first argument, so that its CPU and memory are
// measured apart as the server's are.

// naiveCommand, as the first argument, makes the benchmark binary the naive
// handler.
const naiveCommand = "naive-handler"

// naiveFigures is the naive handler measured like devicehooks' single-device
// action: the closed loop, then the open loop at half its rate.
type naiveFigures struct {
	Throughput  *loadFigures `json:"throughput,omitempty"`
	Ratio       float64      `json:"ratio_to_raw_broker,omitempty"`
	RatioSerial float64      `json:"ratio_to_raw_one_at_a_time,omitempty"`
	HalfRate    *loadFigures `json:"half_rate,omitempty"`
}

// naiveMain runs the naive handler until SIGTERM: net/http and one paho client;
// for each POST with the API key and an event_id it publishes a command at QoS 1
// to one topic, waits for the broker's PUBACK, and answers with a dispatch id.
// No database, no lookup, no tracking.
func naiveMain(args []string) int {
	fs := flag.NewFlagSet(naiveCommand, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "HTTP address")
	mqttURL := fs.String("mqtt-url", "", "broker, tcp://host:port")
	topic := fs.String("topic", "", "topic each call publishes to")
	apiKey := fs.String("api-key", "", "the x-webhook-apikey callers must send")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := paho.NewClient(rawClientOptions(*mqttURL, "bench-naive-handler"))
	if err := waitToken(client.Connect(), "connect"); err != nil {
		fmt.Fprintln(os.Stderr, "naive handler:", err)
		return 1
	}
	defer client.Disconnect(100)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: naiveHandler(client, *topic, *apiKey), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "naive handler:", err)
		return 1
	}
	return 0
}

func naiveHandler(client paho.Client, topic, apiKey string) http.Handler {
	var seq atomic.Int64
	fail := func(w http.ResponseWriter, status int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message":"Error"}`)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("POST /public-api/integration/webhooks", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Webhook-Apikey") != apiKey {
			fail(w, http.StatusUnauthorized)
			return
		}
		var body struct {
			EventID string `json:"event_id"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil || body.EventID == "" {
			fail(w, http.StatusBadRequest)
			return
		}
		id := strconv.FormatInt(seq.Add(1), 10)
		payload, _ := json.Marshal(simulator.Command{ID: id, DispatchID: id, Function: "load_url",
			Params: map[string]any{"url": "https://example.com"}, IssuedAt: time.Now().UTC()})
		tok := client.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			fail(w, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"message":"success","dispatch_id":%q,"event_id":%q,"targets":1}`, id, body.EventID)
	})
	return mux
}

// measureNaive starts a player and the naive handler on the broker at url and
// measures the handler as devicehooks is measured.
func (v *variant) measureNaive(ctx context.Context, url string) error {
	const device, key = "naive-player", "naive-key"
	rc := newReceipts()
	sim, err := startPlayers(ctx, url, []simulator.Credentials{{DeviceID: device, Token: "-"}}, rc.onEvent, 1)
	if err != nil {
		return fmt.Errorf("naive handler's player: %w", err)
	}
	defer sim.Close()
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(v.dir, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	proc, err := startProcess("naive handler", filepath.Join(v.dir, "naive-handler.log"), self, naiveCommand,
		"--listen", addr, "--mqtt-url", url, "--topic", sim.conns[0].commands, "--api-key", key)
	if err != nil {
		return err
	}
	defer proc.stop(5 * time.Second)
	if err := waitHealthy(ctx, proc, "http://"+addr, 30*time.Second); err != nil {
		return err
	}
	t := loadTarget{label: "naive", call: newWebhookCall(addr, key, "naive"), proc: proc, rc: rc, players: 1, reference: true}
	n := &naiveFigures{}
	v.res.Naive = n
	if n.Throughput, n.HalfRate, err = v.loadPhases(ctx, t); err != nil {
		return fmt.Errorf("naive handler: %w", err)
	}
	n.Ratio = v.ratio(n.Throughput, v.res.Raw)
	n.RatioSerial = v.ratio(n.Throughput, v.res.RawSerial)
	return nil
}
