package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// loadFigures is one load phase: closed loop (max throughput) or open loop.
type loadFigures struct {
	Mode          string         `json:"mode"` // closed or open
	Conns         int            `json:"conns"`
	Devices       int            `json:"devices_registered"`
	Players       int            `json:"players_connected"`
	TargetRate    float64        `json:"target_rate,omitempty"` // open loop: calls per second
	Seconds       float64        `json:"seconds"`
	Accepted      int            `json:"accepted"`
	PerSecond     float64        `json:"accepted_per_s"`
	Statuses      map[string]int `json:"statuses"`
	Errors        int            `json:"errors"`
	FirstError    string         `json:"first_error,omitempty"`
	Unsent        int            `json:"unsent,omitempty"`
	Delivered     int            `json:"delivered"`
	Missing       int            `json:"missing"`
	Duplicates    int            `json:"duplicates"`
	E2E           latency        `json:"e2e"`             // request start (open loop: due time) -> player receipt
	HTTP          latency        `json:"http"`            // request start (open loop: due time) -> 200 read
	IssueToPlayer latency        `json:"issue_to_player"` // command's issued_at (server) -> player receipt
	CPU           cpuFigures     `json:"cpu"`
}

// cpuFigures is the CPU used during a measurement window.
type cpuFigures struct {
	ServerSeconds     float64 `json:"server_s"`
	ServerPercent     float64 `json:"server_pct"` // of one core
	PerTriggerMicros  float64 `json:"server_us_per_trigger"`
	BenchPercent      float64 `json:"bench_pct"` // load generator + players, of one core
	MosquittoPercent  float64 `json:"mosquitto_pct,omitempty"`
	ServerRSSMB       float64 `json:"server_rss_mb"`
	ServerPeakRSSMB   float64 `json:"server_peak_rss_mb"`
	LoadAverageBefore string  `json:"loadavg_before"`

	// With --postgres on this machine: its processes' CPU, apart from the server's.
	DatabasePercent          float64 `json:"postgres_pct,omitempty"`
	DatabasePerTriggerMicros float64 `json:"postgres_us_per_trigger,omitempty"`
}

// loadTarget is what a load phase drives: one webhook call, the process that
// answers it (whose CPU is measured) and the receipts of the player it commands.
type loadTarget struct {
	label            string // tells the phases' results and profiles apart
	call             *webhookCall
	proc             *process
	rc               *receipts
	devices, players int
	// reference marks the naive handler: what it loses is reported, not a
	// failure of the run, and it is not profiled.
	reference bool
}

// devicehooks is the load target of the server under test: its single-device
// action, with the players connected now.
func (v *variant) devicehooks(label string) loadTarget {
	return loadTarget{label: label, call: v.single, proc: v.srv.proc, rc: v.rc, devices: v.res.Memory.Devices, players: v.connected}
}

// loadPhases measures a target twice: the closed loop (maximum throughput),
// then the open loop at half of that (latency).
func (v *variant) loadPhases(ctx context.Context, t loadTarget) (tp, half *loadFigures, err error) {
	o := v.o
	v.logf("throughput%s: closed loop, %d connections, %d devices registered, %d players connected, %v warm-up + %v",
		t.title(), o.conns, t.devices, t.players, o.warmup, o.measure)
	if tp, err = v.load(ctx, t, "closed", 0); err != nil {
		return nil, nil, err
	}
	rate := o.rate
	if rate <= 0 {
		if tp.PerSecond <= 0 {
			return tp, nil, errors.New("half rate: no throughput measured")
		}
		rate = tp.PerSecond / 2
	}
	v.logf("latency%s: open loop at %.0f/s, %d connections, %v warm-up + %v", t.title(), rate, o.conns, o.warmup, o.measure)
	half, err = v.load(ctx, t, "open", rate)
	return tp, half, err
}

func (t loadTarget) title() string {
	if t.label == "" {
		return ""
	}
	return " (" + t.label + ")"
}

// ratio is a throughput as a multiple of a raw broker rate.
func (v *variant) ratio(tp *loadFigures, raw *rawResult) float64 {
	if tp == nil || raw == nil || raw.Rate <= 0 {
		return 0
	}
	return round2(tp.PerSecond / raw.Rate)
}

// load runs one load phase on the target's call and matches every accepted
// call to the command its player received.
func (v *variant) load(ctx context.Context, t loadTarget, mode string, rate float64) (*loadFigures, error) {
	o := v.o
	name := v.name + "-" + mode
	if t.label != "" {
		name += "-" + t.label
	}
	profile := o.profileDir != "" && !t.reference
	t.rc.reset()
	t0 := time.Now()
	from, to := t0.Add(o.warmup), t0.Add(o.warmup+o.measure)
	window := make(chan cpuWindow, 1)
	go func() { window <- v.cpuWindow(ctx, t.proc, from, to) }()
	profiled := make(chan struct{})
	if !profile {
		close(profiled)
	} else {
		secs := max(1, int((o.measure-2*time.Second)/time.Second))
		go func() {
			defer close(profiled)
			if sleepCtx(ctx, time.Until(from.Add(time.Second))) != nil {
				return
			}
			allocs := make(chan string)
			go func() { allocs <- v.saveProfile(ctx, "allocs", name+"-allocs", secs) }()
			cpu := v.saveProfile(ctx, "profile", name+"-cpu", secs)
			v.res.Profiles = append(v.res.Profiles, cpu, <-allocs)
			// An execution trace shows where the trigger path waits.
			v.res.Profiles = append(v.res.Profiles, v.saveProfile(ctx, "trace", name+"-trace", 1))
		}()
	}
	stopSelf := v.profileSelf(name+"-bench-cpu", profile)
	var lr *loadResult
	if mode == "closed" {
		lr = closedLoop(ctx, t.call, o.conns, from, to)
	} else {
		lr = openLoop(ctx, t.call, o.conns, rate, t0, from, to)
	}
	stopSelf()
	cw := <-window
	<-profiled
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := t.proc.alive(); err != nil {
		return nil, err
	}
	ids := make([]string, len(lr.samples))
	for i, s := range lr.samples {
		ids[i] = s.dispatchID
	}
	t.rc.waitAll(ctx, ids, 1, o.drain)
	f := v.figures(t, mode, name, rate, lr, cw)
	v.logf("%s loop%s: %d accepted (%.0f/s), delivered %d, missing %d, duplicates %d; e2e p50 %.2f p99 %.2f max %.1f ms; %.0f µs CPU/call",
		mode, t.title(), f.Accepted, f.PerSecond, f.Delivered, f.Missing, f.Duplicates, f.E2E.P50, f.E2E.P99, f.E2E.Max, f.CPU.PerTriggerMicros)
	if t.reference {
		return f, nil
	}
	if f.Missing > 0 {
		v.problem("%s loop: %d of %d accepted triggers never reached the player", mode, f.Missing, f.Accepted)
	}
	if f.Duplicates > 0 {
		v.problem("%s loop: %d duplicate commands", mode, f.Duplicates)
	}
	if f.Accepted == 0 {
		v.problem("%s loop: no trigger accepted (%v, %d errors: %s)", mode, f.Statuses, f.Errors, f.FirstError)
	}
	if mode == "open" && f.Unsent > 0 {
		v.problem("open loop: %d calls were due but not sent", f.Unsent)
	}
	return f, nil
}

// figures matches the accepted calls to the receipts.
func (v *variant) figures(t loadTarget, mode, name string, rate float64, lr *loadResult, cw cpuWindow) *loadFigures {
	f := &loadFigures{
		Mode: mode, Conns: v.o.conns, Devices: t.devices, Players: t.players, TargetRate: round2(rate), Seconds: round2(lr.window.Seconds()),
		Accepted: len(lr.samples), Statuses: map[string]int{}, Errors: lr.errors, FirstError: lr.firstErr, Unsent: lr.unsent,
	}
	f.PerSecond = round2(float64(f.Accepted) / lr.window.Seconds())
	for s, n := range lr.statuses {
		f.Statuses[fmt.Sprint(s)] = n
	}
	var e2e, httpLat, issue []time.Duration
	for _, s := range lr.samples {
		httpLat = append(httpLat, s.end.Sub(s.start))
		got, ok := t.rc.get(s.dispatchID)
		if !ok || got.n == 0 {
			f.Missing++
			continue
		}
		f.Delivered++
		f.Duplicates += got.dups
		e2e = append(e2e, got.first.Sub(s.start))
		issue = append(issue, got.first.Sub(got.issued))
	}
	f.E2E, f.HTTP, f.IssueToPlayer = summarize(e2e), summarize(httpLat), summarize(issue)
	if v.o.profileDir != "" && !t.reference {
		v.saveSamples(name, lr.samples)
	}
	f.CPU = cw.figures(f.Accepted)
	return f
}

// cpuWindow is CPU and memory readings at the start and end of a measurement window.
type cpuWindow struct {
	server, bench, mq [2]procStat
	db                [2]map[int]time.Duration // PostgreSQL's processes, with --postgres
	loadavg           string
	ok                bool
}

// cpuWindow reads the CPU of proc (the server), of this process, of Mosquitto
// and of PostgreSQL at from and at to.
func (v *variant) cpuWindow(ctx context.Context, proc *process, from, to time.Time) cpuWindow {
	var w cpuWindow
	w.loadavg = loadAverage()
	read := func(i int) bool {
		var err error
		if w.server[i], err = proc.stat(); err != nil {
			return false
		}
		w.bench[i], _ = readProcStat(os.Getpid())
		if v.mq != nil {
			w.mq[i], _ = readProcStat(v.mq.proc.pid())
		}
		w.db[i] = v.pg.cpu()
		return true
	}
	if sleepCtx(ctx, time.Until(from)) != nil || !read(0) {
		return w
	}
	if sleepCtx(ctx, time.Until(to)) != nil || !read(1) {
		return w
	}
	w.ok = true
	return w
}

func (w cpuWindow) figures(accepted int) cpuFigures {
	if !w.ok {
		return cpuFigures{}
	}
	wall := w.server[1].Taken.Sub(w.server[0].Taken).Seconds()
	srv := (w.server[1].CPU - w.server[0].CPU).Seconds()
	f := cpuFigures{
		ServerSeconds:     round2(srv),
		ServerPercent:     round2(100 * srv / wall),
		BenchPercent:      round2(100 * (w.bench[1].CPU - w.bench[0].CPU).Seconds() / wall),
		ServerRSSMB:       mb(w.server[1].RSS),
		ServerPeakRSSMB:   mb(w.server[1].HWM),
		LoadAverageBefore: w.loadavg,
	}
	if w.mq[1].Taken.After(w.mq[0].Taken) {
		f.MosquittoPercent = round2(100 * (w.mq[1].CPU - w.mq[0].CPU).Seconds() / wall)
	}
	if w.db[0] != nil && w.db[1] != nil {
		db := cpuBetween(w.db[0], w.db[1]).Seconds()
		f.DatabasePercent = round2(100 * db / wall)
		if accepted > 0 {
			f.DatabasePerTriggerMicros = round2(db * 1e6 / float64(accepted))
		}
	}
	if accepted > 0 {
		f.PerTriggerMicros = round2(srv * 1e6 / float64(accepted))
	}
	return f
}

// database is what PostgreSQL's processes spent, for a table's cell: "" without.
func (f cpuFigures) database() string {
	if f.DatabasePercent == 0 {
		return ""
	}
	return fmt.Sprintf("; PostgreSQL %.0f µs (%.0f%%)", f.DatabasePerTriggerMicros, f.DatabasePercent)
}
