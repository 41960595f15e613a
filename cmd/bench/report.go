package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the whole run, printed as a table and written as JSON.
type report struct {
	Mode      string           `json:"mode"` // short or full
	StartedAt time.Time        `json:"started_at"`
	Seconds   float64          `json:"seconds"`
	Machine   machine          `json:"machine"`
	Database  string           `json:"database"`
	Settings  map[string]any   `json:"settings"`
	Variants  []*variantResult `json:"variants"`
	Targets   []target         `json:"targets,omitempty"`
	Problems  []string         `json:"problems,omitempty"`
	Notes     []string         `json:"notes,omitempty"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryGB  string `json:"memory"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	LoadAvg   string `json:"loadavg_at_start"`
	OpenFiles uint64 `json:"open_files_limit"`
}

// target is one goal of the issue, met or not.
type target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func newReport(o *options) *report {
	mode := "full"
	if o.short {
		mode = "short"
	}
	return &report{
		Mode: mode, StartedAt: time.Now().UTC(), Machine: machineInfo(),
		Settings: map[string]any{
			"conns": o.conns, "warmup_s": o.warmup.Seconds(), "measure_s": o.measure.Seconds(),
			"raw_window": o.rawWindow, "raw_measure_s": o.rawMeasure.Seconds(),
			"small_players": o.fanSmall, "players": o.fanLarge, "fanout_reps": o.fanReps,
			"open_loop_rate": o.rate, "profile": o.profileDir != "",
		},
	}
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadAvg: loadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		f := strings.Fields(line)
		if len(f) >= 2 {
			var kb int64
			fmt.Sscan(f[1], &kb)
			m.MemoryGB = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	return m
}

// finish evaluates the targets on the embedded variant (full run only).
func (r *report) finish() {
	r.Seconds = round2(time.Since(r.StartedAt).Seconds())
	if r.Mode != "full" {
		return
	}
	var v *variantResult
	for _, x := range r.Variants {
		if x.Name == "embedded" {
			v = x
		}
	}
	if v == nil || v.Throughput == nil || v.Raw == nil {
		return
	}
	// The targets are judged as the issue sets them: 10,000 devices registered;
	// the figures with every player connected are quoted beside them.
	tp := v.Throughput
	measured := fmt.Sprintf("%.0f/s = %.2f x %.0f/s; delivered %d of %d, %d duplicates",
		tp.PerSecond, v.Ratio, v.Raw.Rate, tp.Delivered, tp.Accepted, tp.Duplicates)
	if a := v.ThroughputAllConnected; a != nil {
		measured += fmt.Sprintf(" (all %d connected: %.0f/s = %.2f x)", a.Players, a.PerSecond, v.RatioAllConnected)
	}
	if s := v.RawSerial; s != nil {
		measured += fmt.Sprintf("; %.2f x the broker's rate one message at a time, %.0f/s", v.RatioSerial, s.Rate)
	}
	if n := v.Naive; n != nil && n.Throughput != nil {
		measured += fmt.Sprintf("; %.2f x the naive handler's %.0f/s (itself %.2f x raw, %.2f x one at a time)",
			v.VersusNaive, n.Throughput.PerSecond, n.Ratio, n.RatioSerial)
	}
	r.Targets = append(r.Targets, target{
		Name: "throughput", Goal: ">= 0.6 x raw broker rate, every trigger delivered",
		Measured: measured, Met: v.Ratio >= 0.6 && tp.Missing == 0 && tp.Accepted > 0,
	})
	if h := v.HalfRate; h != nil {
		measured := fmt.Sprintf("p99 %.2f ms at %.0f/s (p50 %.2f, max %.1f)", h.E2E.P99, h.PerSecond, h.E2E.P50, h.E2E.Max)
		if a := v.HalfRateAllConnected; a != nil {
			measured += fmt.Sprintf(" (all %d connected: p99 %.2f ms at %.0f/s)", a.Players, a.E2E.P99, a.PerSecond)
		}
		r.Targets = append(r.Targets, target{
			Name: "latency", Goal: "p99 end to end < 15 ms at half the maximum rate",
			Measured: measured, Met: h.E2E.P99 < 15 && h.Missing == 0 && h.Accepted > 0,
		})
	}
	var worst float64
	n, all := 0, true
	for _, f := range v.Fanout {
		if f.Players != r.Settings["players"] {
			continue
		}
		n++
		worst = max(worst, f.AllMs)
		all = all && f.Received == f.Players
	}
	if n > 0 {
		r.Targets = append(r.Targets, target{
			Name: "fan-out", Goal: fmt.Sprintf("%v connected players all hold an all-devices command within 1 s", r.Settings["players"]),
			Measured: fmt.Sprintf("worst of %d: %.0f ms", n, worst),
			Met:      all && worst < 1000,
		})
	}
	r.Targets = append(r.Targets, target{
		Name: "memory", Goal: fmt.Sprintf("< 60 MB RSS idle with %d devices registered", v.Memory.Devices),
		Measured: fmt.Sprintf("%.1f MB idle; %.1f MB with %d connected; peak %.1f MB under load",
			v.Memory.IdleRSSMB, v.Memory.ConnectedRSSMB, v.Memory.Devices, v.Memory.PeakRSSMB),
		Met: v.Memory.IdleRSSMB > 0 && v.Memory.IdleRSSMB < 60,
	})
}

// printReport writes the human-readable table.
func printReport(w io.Writer, r *report) {
	fmt.Fprintf(w, "\ndevicehooks benchmark (%s run), %s\n", r.Mode, r.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, Linux %s, %s, load average at start %s\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryGB, r.Machine.Kernel, r.Machine.Go, r.Machine.LoadAvg)
	fmt.Fprintf(w, "database: %s\n\n", r.Database)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	cols := "figure"
	for _, v := range r.Variants {
		cols += "\t" + v.Name
	}
	fmt.Fprintln(tw, cols+"\t")
	row := func(name string, f func(v *variantResult) string) {
		line := name
		for _, v := range r.Variants {
			line += "\t" + f(v)
		}
		fmt.Fprintln(tw, line+"\t")
	}
	row("raw broker QoS-1 rate (1 pub -> 1 sub)", func(v *variantResult) string {
		if v.Raw == nil {
			return "-"
		}
		if v.Raw.Lost > 0 {
			return fmt.Sprintf("%.0f msg/s (window %d, %d dropped)", v.Raw.Rate, v.Raw.Window, v.Raw.Lost)
		}
		return fmt.Sprintf("%.0f msg/s (window %d)", v.Raw.Rate, v.Raw.Window)
	})
	row("  one message at a time (window 1)", func(v *variantResult) string {
		if v.RawSerial == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f msg/s", v.RawSerial.Rate)
	})
	naive := func(f func(n *naiveFigures) string) func(v *variantResult) string {
		return func(v *variantResult) string {
			if n := v.Naive; n != nil && n.Throughput != nil && n.HalfRate != nil {
				return f(n)
			}
			return "-"
		}
	}
	row("naive Go handler (reference): max calls/s", naive(func(n *naiveFigures) string {
		return fmt.Sprintf("%.0f/s = %.2f x raw, %.2f x one at a time", n.Throughput.PerSecond, n.Ratio, n.RatioSerial)
	}))
	row("  delivered / accepted", naive(func(n *naiveFigures) string {
		return fmt.Sprintf("%d / %d; half rate %d / %d", n.Throughput.Delivered, n.Throughput.Accepted, n.HalfRate.Delivered, n.HalfRate.Accepted)
	}))
	row("  e2e p50 / p99 ms: max rate; half rate", naive(func(n *naiveFigures) string {
		return fmt.Sprintf("%.2f / %.2f; %.2f / %.2f", n.Throughput.E2E.P50, n.Throughput.E2E.P99, n.HalfRate.E2E.P50, n.HalfRate.E2E.P99)
	}))
	row("  its CPU per call, RSS (max rate)", naive(func(n *naiveFigures) string {
		return fmt.Sprintf("%.0f µs, %.1f MB", n.Throughput.CPU.PerTriggerMicros, n.Throughput.CPU.ServerRSSMB)
	}))
	load := func(get func(v *variantResult) *loadFigures, f func(l *loadFigures) string) func(v *variantResult) string {
		return func(v *variantResult) string {
			if l := get(v); l != nil {
				return f(l)
			}
			return "-"
		}
	}
	loadRows := func(when string, tp, hr func(v *variantResult) *loadFigures, ratio, serial func(v *variantResult) float64) {
		row("max accepted triggers/s (closed loop), "+when, load(tp, func(l *loadFigures) string {
			return fmt.Sprintf("%.0f/s (%d conns)", l.PerSecond, l.Conns)
		}))
		row("  ratio to raw broker rate", func(v *variantResult) string { return fmt.Sprintf("%.2f", ratio(v)) })
		if serial != nil {
			row("  ratio to one at a time", func(v *variantResult) string { return fmt.Sprintf("%.2f", serial(v)) })
			row("  ratio to the naive handler", func(v *variantResult) string { return fmt.Sprintf("%.2f", v.VersusNaive) })
		}
		row("  delivered / accepted, duplicates", load(tp, func(l *loadFigures) string {
			return fmt.Sprintf("%d / %d, %d dup", l.Delivered, l.Accepted, l.Duplicates)
		}))
		row("  e2e p50 / p95 / p99 / max ms", load(tp, latencyCell(func(l *loadFigures) latency { return l.E2E })))
		row("  http answer p50 / p99 ms", load(tp, func(l *loadFigures) string { return fmt.Sprintf("%.2f / %.2f", l.HTTP.P50, l.HTTP.P99) }))
		row("  server CPU per trigger", load(tp, func(l *loadFigures) string {
			return fmt.Sprintf("%.0f µs (server %.0f%%, bench %.0f%%)", l.CPU.PerTriggerMicros, l.CPU.ServerPercent, l.CPU.BenchPercent) + l.CPU.database()
		}))
		row("half rate, open loop, "+when, load(hr, func(l *loadFigures) string {
			return fmt.Sprintf("%.0f/s target, %.0f/s accepted", l.TargetRate, l.PerSecond)
		}))
		row("  delivered / accepted, duplicates", load(hr, func(l *loadFigures) string {
			return fmt.Sprintf("%d / %d, %d dup", l.Delivered, l.Accepted, l.Duplicates)
		}))
		row("  e2e p50 / p95 / p99 / max ms", load(hr, latencyCell(func(l *loadFigures) latency { return l.E2E })))
		row("  server CPU per trigger", load(hr, func(l *loadFigures) string {
			return fmt.Sprintf("%.0f µs (server %.0f%%)", l.CPU.PerTriggerMicros, l.CPU.ServerPercent) + l.CPU.database()
		}))
	}
	loadRows(fmt.Sprintf("%v players connected", r.Settings["small_players"]),
		func(v *variantResult) *loadFigures { return v.Throughput },
		func(v *variantResult) *loadFigures { return v.HalfRate },
		func(v *variantResult) float64 { return v.Ratio },
		func(v *variantResult) float64 { return v.RatioSerial })
	loadRows(fmt.Sprintf("all %v connected", r.Settings["players"]),
		func(v *variantResult) *loadFigures { return v.ThroughputAllConnected },
		func(v *variantResult) *loadFigures { return v.HalfRateAllConnected },
		func(v *variantResult) float64 { return v.RatioAllConnected }, nil)
	for _, players := range fanoutSizes(r) {
		row(fmt.Sprintf("all devices to %d: last receipt", players), fanoutCell(players, func(f fanoutFigures) float64 { return f.AllMs }))
		row("  all acks recorded", fanoutCell(players, func(f fanoutFigures) float64 { return f.AckedMs }))
		row("  answered (200)", fanoutCell(players, func(f fanoutFigures) float64 { return f.AnsweredMs }))
	}
	row("RSS idle, devices registered", func(v *variantResult) string {
		return fmt.Sprintf("%.1f MB (%d)", v.Memory.IdleRSSMB, v.Memory.Devices)
	})
	row("RSS with all players connected", func(v *variantResult) string { return fmt.Sprintf("%.1f MB", v.Memory.ConnectedRSSMB) })
	row("peak RSS under load (VmHWM)", func(v *variantResult) string { return fmt.Sprintf("%.1f MB", v.Memory.PeakRSSMB) })
	tw.Flush()
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets (embedded broker):")
		for _, t := range r.Targets {
			mark := "MISSED"
			if t.Met {
				mark = "met"
			}
			fmt.Fprintf(w, "  %-6s %-10s %s: %s\n", mark, t.Name, t.Goal, t.Measured)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	for _, v := range r.Variants {
		if len(v.ServerLog) > 0 {
			fmt.Fprintf(w, "\nserver log (%s, warnings and errors):\n", v.Name)
			for _, l := range v.ServerLog {
				fmt.Fprintln(w, "  "+l)
			}
		}
	}
}

func latencyCell(get func(l *loadFigures) latency) func(l *loadFigures) string {
	return func(l *loadFigures) string {
		x := get(l)
		return fmt.Sprintf("%.2f / %.2f / %.2f / %.1f", x.P50, x.P95, x.P99, x.Max)
	}
}

func fanoutSizes(r *report) []int {
	var out []int
	seen := map[int]bool{}
	for _, v := range r.Variants {
		for _, f := range v.Fanout {
			if !seen[f.Players] {
				seen[f.Players] = true
				out = append(out, f.Players)
			}
		}
	}
	return out
}

// fanoutCell shows the median of the repetitions and, if several, the worst.
func fanoutCell(players int, get func(f fanoutFigures) float64) func(v *variantResult) string {
	return func(v *variantResult) string {
		var xs []time.Duration
		for _, f := range v.Fanout {
			if f.Players == players {
				xs = append(xs, time.Duration(get(f)*float64(time.Millisecond)))
			}
		}
		switch len(xs) {
		case 0:
			return "-"
		case 1:
			return fmt.Sprintf("%.0f ms", ms(xs[0]))
		}
		return fmt.Sprintf("%.0f ms (worst %.0f of %d)", ms(percentile(xs, 0.5)), ms(percentile(xs, 1)), len(xs))
	}
}

// writeJSON writes the report to <results>/<timestamp>-<mode>.json.
func writeJSON(o *options, r *report) (string, error) {
	dir := o.resultsDir
	if dir == "" {
		dir = filepath.Join(moduleRoot(), "bench", "results")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.StartedAt.Format("20060102T150405Z")+"-"+r.Mode+".json")
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(raw, '\n'), 0o644)
}

// moduleRoot is the devicehooks module's folder, or "." outside it.
func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "."
	}
	return filepath.Dir(gomod)
}
