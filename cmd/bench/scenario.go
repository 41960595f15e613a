package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"devicehooks/simulator"
)

// variantResult is every figure measured against one broker.
type variantResult struct {
	Name   string     `json:"name"` // "embedded" or "mosquitto"
	Broker string     `json:"broker"`
	Raw    *rawResult `json:"raw_broker,omitempty"`
	// RawSerial is the same broker sending one message at a time (window 1):
	// how a broker's rate is often quoted, possibly the 13,600/s too.
	// The targets are judged against Raw; RatioSerial is reported beside.
	RawSerial *rawResult `json:"raw_broker_one_at_a_time,omitempty"`
	// Naive is the naive Go handler against the same broker (naive.go),
	// and VersusNaive devicehooks' throughput as a multiple of its.
	Naive       *naiveFigures `json:"naive_handler,omitempty"`
	VersusNaive float64       `json:"ratio_to_naive_handler,omitempty"`
	// Throughput and HalfRate run with every device registered and the first
	// players connected (the conditions); the AllConnected ones again
	// with every player connected, which costs the embedded broker more.
	Throughput             *loadFigures `json:"throughput,omitempty"`
	Ratio                  float64      `json:"ratio_to_raw_broker,omitempty"`
	RatioSerial            float64      `json:"ratio_to_raw_one_at_a_time,omitempty"`
	HalfRate               *loadFigures `json:"half_rate,omitempty"`
	ThroughputAllConnected *loadFigures `json:"throughput_all_connected,omitempty"`
	RatioAllConnected      float64      `json:"ratio_all_connected,omitempty"`
	HalfRateAllConnected   *loadFigures `json:"half_rate_all_connected,omitempty"`

	Fanout        []fanoutFigures `json:"fanout,omitempty"`
	Memory        memFigures      `json:"memory"`
	Problems      []string        `json:"problems,omitempty"` // lost, duplicated, failed phases
	ServerLog     []string        `json:"server_log,omitempty"`
	Profiles      []string        `json:"profiles,omitempty"`
	SetupSeconds  float64         `json:"setup_s"`
	TotalSeconds  float64         `json:"total_s"`
	ProvisionRate float64         `json:"provision_devices_per_s,omitempty"`
}

// memFigures is the server's resident memory at the key moments.
type memFigures struct {
	Devices        int     `json:"devices_registered"`
	IdleRSSMB      float64 `json:"idle_rss_mb"`      // after a restart, no player connected
	ConnectedRSSMB float64 `json:"connected_rss_mb"` // every player connected, no load
	PeakRSSMB      float64 `json:"peak_rss_mb"`      // VmHWM from the idle reading to the end
	IdleHeapFile   string  `json:"idle_heap_profile,omitempty"`
}

// variant runs every phase against one broker.
type variant struct {
	o    *options
	name string
	bin  string
	dir  string
	out  io.Writer // progress lines
	res  *variantResult

	pg   *postgres   // nil: SQLite
	pgdb *pgDatabase // the variant's, with pg
	mq   *mosquitto
	srv  *server
	adm  *admin
	rc   *receipts
	sim  *players

	key, singleEvt, allEvt string
	smallCreds, allCreds   []simulator.Credentials
	connected              int // players connected now
	single, all            *webhookCall
}

func (v *variant) logf(format string, args ...any) {
	fmt.Fprintf(v.out, "[%s %s] %s\n", time.Now().Format("15:04:05"), v.name, fmt.Sprintf(format, args...))
}

// problem records something that makes the run fail (loss, duplicates, a phase
// that did not complete).
func (v *variant) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	v.res.Problems = append(v.res.Problems, msg)
	v.logf("PROBLEM: %s", msg)
}

// run measures everything; what it measured stays in v.res even on error.
func (v *variant) run(ctx context.Context) (err error) {
	began := time.Now()
	v.res = &variantResult{Name: v.name}
	defer v.cleanup()
	defer func() { v.res.TotalSeconds = round2(time.Since(began).Seconds()) }()

	if err := v.measureRawBroker(ctx); err != nil {
		return err
	}
	if err := v.setup(ctx); err != nil {
		return err
	}
	if err := v.smallFanout(ctx); err != nil {
		return err
	}
	if err := v.grow(ctx); err != nil {
		return err
	}
	v.res.SetupSeconds = round2(time.Since(began).Seconds())
	// Load with every device registered and the first players connected ...
	if v.res.Throughput, v.res.HalfRate, err = v.loadPhases(ctx, v.devicehooks("")); err != nil {
		return err
	}
	v.res.Ratio = v.ratio(v.res.Throughput, v.res.Raw)
	v.res.RatioSerial = v.ratio(v.res.Throughput, v.res.RawSerial)
	if n := v.res.Naive; n != nil && n.Throughput != nil && n.Throughput.PerSecond > 0 {
		v.res.VersusNaive = round2(v.res.Throughput.PerSecond / n.Throughput.PerSecond)
	}
	if err := v.connectAll(ctx); err != nil {
		return err
	}
	if err := v.largeFanout(ctx); err != nil {
		return err
	}
	// ... and again with every player connected.
	if v.res.ThroughputAllConnected, v.res.HalfRateAllConnected, err = v.loadPhases(ctx, v.devicehooks("all")); err != nil {
		return err
	}
	v.res.RatioAllConnected = v.ratio(v.res.ThroughputAllConnected, v.res.Raw)
	if st, err := v.srv.stat(); err == nil {
		v.res.Memory.PeakRSSMB = mb(st.HWM)
	}
	return v.srv.alive()
}

func (v *variant) cleanup() {
	if v.sim != nil {
		v.sim.Close()
		v.sim = nil
	}
	if v.srv != nil {
		v.srv.stop()
		v.res.ServerLog = v.srv.warnings()
	}
	if v.pgdb != nil {
		if v.o.keep {
			v.logf("PostgreSQL database kept: %s", v.pgdb.name)
		} else if err := v.pgdb.drop(); err != nil {
			v.logf("drop PostgreSQL database %s: %v", v.pgdb.name, err)
		}
	}
	v.mq.stop()
}

// measureRawBroker measures the broker alone: QoS-1 publisher -> broker -> one
// QoS-1 subscriber; then the naive handler against it. The embedded broker runs
// in this process for them.
func (v *variant) measureRawBroker(ctx context.Context) error {
	o := v.o
	var url string
	switch v.name {
	case "embedded":
		e, err := startRawEmbedded()
		if err != nil {
			return err
		}
		defer e.Close()
		url = "tcp://" + e.Addr()
		v.res.Broker = "embedded mochi-mqtt (broker.StartEmbedded, in the benchmark process for the raw rate)"
	case "mosquitto":
		bin := findMosquitto()
		if bin == "" {
			return errors.New("mosquitto not found (Debian package mosquitto)")
		}
		dir := filepath.Join(v.dir, "mosquitto")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		var err error
		if v.mq, err = startMosquitto(ctx, bin, dir); err != nil {
			return err
		}
		url = v.mq.url()
		v.res.Broker = v.mq.version
	}
	for _, w := range []struct {
		window int
		res    **rawResult
	}{{o.rawWindow, &v.res.Raw}, {1, &v.res.RawSerial}} {
		v.logf("raw broker rate: QoS 1, window %d, %v + %v", w.window, o.rawWarmup, o.rawMeasure)
		raw, err := measureRaw(ctx, v.name, url, w.window, o.rawWarmup, o.rawMeasure)
		if err != nil {
			return fmt.Errorf("raw broker rate, window %d: %w", w.window, err)
		}
		*w.res = &raw
		v.logf("raw broker rate: %.0f msgs/s (p50 %.2f ms, p99 %.2f ms)", raw.Rate, raw.P50ms, raw.P99ms)
	}
	return v.measureNaive(ctx, url)
}

// setup starts the server on a fresh database, with an API key, the first players'
// devices and the two actions.
func (v *variant) setup(ctx context.Context) error {
	var err error
	mqURL := ""
	if v.mq != nil {
		mqURL = v.mq.url()
	}
	db := ""
	if v.pg != nil {
		if v.pgdb, err = v.pg.createDatabase(ctx, v.name); err != nil {
			return err
		}
		db = v.pgdb.url
	}
	if v.srv, err = newServer(v.bin, v.dir, "server", mqURL, db, v.o.profileDir != ""); err != nil {
		return err
	}
	if err := v.srv.start(ctx); err != nil {
		return err
	}
	v.adm = newAdmin(v.srv.base())
	if v.key, err = v.adm.createKey(ctx, "bench"); err != nil {
		return err
	}
	v.rc = newReceipts()
	creds, err := v.provision(ctx, v.o.fanSmall, "bench-a")
	if err != nil {
		return err
	}
	v.smallCreds = creds
	target := map[string]string{"type": "device", "id": creds[0].DeviceID}
	if v.singleEvt, err = v.adm.createAction(ctx, "bench single device", target); err != nil {
		return err
	}
	if v.allEvt, err = v.adm.createAction(ctx, "bench all devices", map[string]string{"type": "all"}); err != nil {
		return err
	}
	v.calls()
	return v.connect(ctx, creds)
}

// calls prepares the two webhook calls for the server's current address.
func (v *variant) calls() {
	v.single = newWebhookCall(v.srv.httpAddr, v.key, v.singleEvt)
	v.all = newWebhookCall(v.srv.httpAddr, v.key, v.allEvt)
}

// provision registers n devices through the management API.
func (v *variant) provision(ctx context.Context, n int, prefix string) ([]simulator.Credentials, error) {
	start := time.Now()
	creds, err := simulator.Provision(ctx, v.srv.base(), benchAdminToken, n, prefix)
	if err != nil {
		return nil, err
	}
	el := time.Since(start)
	v.res.ProvisionRate = round2(float64(n) / el.Seconds())
	v.logf("registered %d devices in %v", n, el.Round(time.Millisecond))
	return creds, nil
}

// connect starts players for creds and waits until the server has them online.
func (v *variant) connect(ctx context.Context, creds []simulator.Credentials) error {
	if v.sim != nil {
		v.sim.Close()
		v.sim = nil
		// mochi can lose a session whose client id comes back while it is still
		// cleaning up the old one (mochi-mqtt/server#483): let it finish first.
		if err := v.adm.waitNoneOnline(ctx, 60*time.Second); err != nil {
			return err
		}
	}
	start := time.Now()
	var err error
	if v.sim, err = startPlayers(ctx, v.srv.brokerURL(), creds, v.rc.onEvent, 64); err != nil {
		return err
	}
	if err := v.adm.waitOnline(ctx, len(creds), 120*time.Second); err != nil {
		return err
	}
	v.connected = len(creds)
	v.logf("connected %d players in %v", len(creds), time.Since(start).Round(time.Millisecond))
	return nil
}

// grow registers the rest of the devices, restarts the server to measure its idle
// memory with every device registered and none connected, then connects the first
// players again.
func (v *variant) grow(ctx context.Context) error {
	v.sim.Close()
	v.sim = nil
	more, err := v.provision(ctx, v.o.fanLarge-len(v.smallCreds), "bench-b")
	if err != nil {
		return err
	}
	// The first players' tokens are still valid: keep them.
	v.allCreds = append(slices.Clip(v.smallCreds), more...)
	if err := v.srv.restart(ctx); err != nil {
		return err
	}
	v.adm = newAdmin(v.srv.base())
	v.calls()
	v.res.Memory.Devices = v.o.fanLarge
	if err := sleepCtx(ctx, v.o.settle); err != nil {
		return err
	}
	st, err := v.srv.stat()
	if err != nil {
		return err
	}
	v.res.Memory.IdleRSSMB = mb(st.RSS)
	v.logf("idle RSS with %d devices registered, none connected: %.1f MB", v.o.fanLarge, mb(st.RSS))
	if v.o.profileDir != "" {
		v.res.Memory.IdleHeapFile = v.saveProfile(ctx, "heap", "idle-heap", 0)
	}
	resetPeakRSS(v.srv.proc.pid())
	return v.connect(ctx, v.smallCreds)
}

// connectAll connects every player and measures the server's memory with them
// all connected and idle.
func (v *variant) connectAll(ctx context.Context) error {
	if err := v.connect(ctx, v.allCreds); err != nil {
		return err
	}
	if err := sleepCtx(ctx, v.o.settle); err != nil {
		return err
	}
	st, err := v.srv.stat()
	if err != nil {
		return err
	}
	v.res.Memory.ConnectedRSSMB = mb(st.RSS)
	v.logf("RSS with %d players connected, idle: %.1f MB", len(v.allCreds), mb(st.RSS))
	if v.o.profileDir != "" {
		v.res.Profiles = append(v.res.Profiles, v.saveProfile(ctx, "heap", "connected-heap", 0),
			v.saveProfile(ctx, "heap?debug=1", "connected-memstats", 0),
			v.saveProfile(ctx, "goroutine?debug=1", "connected-goroutines", 0))
	}
	return nil
}
