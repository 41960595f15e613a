// Command bench measures devicehooks end to end: it runs the server as a child
// process with its embedded broker (and again against Mosquitto), connects
// simulated players, drives the webhook with its own load generator, and prints
// throughput, end-to-end latency, fan-out time, CPU per trigger and memory, next
// to the raw QoS-1 rate of the same broker on the same machine. See
// docs/benchmark.md.
//
//	go run ./cmd/bench           # full run (a few minutes)
//	go run ./cmd/bench --short   # CI: a few seconds per phase; fails if anything is lost
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == naiveCommand {
		os.Exit(naiveMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the benchmark's settings; --short picks small ones for CI.
type options struct {
	short      bool
	bin        string
	brokers    string // embedded, mosquitto, or both
	resultsDir string
	postgres   string // URL of a PostgreSQL role that may create databases; "": SQLite
	profileDir string
	keep       bool

	conns            int
	warmup, measure  time.Duration
	rate             float64 // open loop rate; 0: half the measured maximum
	drain            time.Duration
	rawWindow        int
	rawWarmup        time.Duration
	rawMeasure       time.Duration
	fanSmall         int
	fanLarge         int
	fanReps          int
	fanTimeout       time.Duration
	settle           time.Duration
	timeout          time.Duration
	requireMosquitto bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.short, "short", false, "short run for CI: a few seconds per phase, fewer players; exits non-zero if anything is lost")
	fs.StringVar(&o.bin, "bin", "", "devicehooks binary to measure (default: go build ./cmd/devicehooks into a temp dir)")
	fs.StringVar(&o.brokers, "brokers", "both", "which brokers: embedded, mosquitto or both (mosquitto is skipped with a note if not installed)")
	fs.StringVar(&o.resultsDir, "results", "", "folder for the JSON results (default: bench/results in the module)")
	fs.StringVar(&o.profileDir, "profile", "", "save the server's CPU profile (throughput phase) and idle heap profile into this folder (uses --pprof-addr)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp folder (databases, logs), and the PostgreSQL databases with --postgres")
	fs.StringVar(&o.postgres, "postgres", "", "run devicehooks on PostgreSQL: a `URL` (postgres://…) of a role that may create databases; each broker's run gets a new database, dropped at the end (default: a fresh SQLite file)")
	conns := fs.Int("conns", 0, "concurrent HTTP connections (default 64; short 32)")
	measure := fs.Duration("duration", 0, "measurement window of each load phase (default 15s; short 3s)")
	warmup := fs.Duration("warmup", 0, "warm-up before each load phase, not counted (default 3s; short 1s)")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop rate in calls/s (default: half the measured maximum)")
	players := fs.Int("players", 0, "players for the large fan-out and the memory figures (default 10000; short 1000)")
	small := fs.Int("small-players", 0, "players for the small fan-out (default 1000; short 200)")
	reps := fs.Int("fanout-reps", 0, "repetitions of each fan-out (default 3; short 1)")
	rawWindow := fs.Int("raw-window", 0, "raw broker rate: messages between publish and receipt at most (default 200)")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound on the whole run (default 20m; short 3m)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.short {
		o.conns, o.warmup, o.measure = 32, time.Second, 3*time.Second
		o.rawWarmup, o.rawMeasure = 500*time.Millisecond, 2*time.Second
		o.fanSmall, o.fanLarge, o.fanReps = 200, 1000, 1
		o.drain, o.fanTimeout, o.settle = 10*time.Second, 20*time.Second, time.Second
		o.timeout = 3 * time.Minute
	} else {
		o.conns, o.warmup, o.measure = 64, 3*time.Second, 15*time.Second
		o.rawWarmup, o.rawMeasure = time.Second, 5*time.Second
		o.fanSmall, o.fanLarge, o.fanReps = 1000, 10000, 3
		o.drain, o.fanTimeout, o.settle = 15*time.Second, 60*time.Second, 3*time.Second
		o.timeout = 20 * time.Minute
	}
	o.rawWindow = 200
	setIf(&o.rawWindow, *rawWindow)
	setIf(&o.conns, *conns)
	setIf(&o.measure, *measure)
	setIf(&o.warmup, *warmup)
	setIf(&o.fanLarge, *players)
	setIf(&o.fanSmall, *small)
	setIf(&o.fanReps, *reps)
	switch o.brokers {
	case "embedded", "both":
	case "mosquitto":
		o.requireMosquitto = true
	default:
		return nil, fmt.Errorf("--brokers must be embedded, mosquitto or both, not %q", o.brokers)
	}
	if o.fanSmall < 1 || o.fanLarge <= o.fanSmall {
		return nil, errors.New("--players must be more than --small-players, and both at least 1")
	}
	if o.conns < 1 || o.measure <= 0 || o.warmup < 0 || o.fanReps < 1 {
		return nil, errors.New("--conns, --duration and --fanout-reps must be positive")
	}
	return o, nil
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	rep, err := benchmark(ctx, o, stdout)
	if rep != nil {
		printReport(stdout, rep)
		if path, werr := writeJSON(o, rep); werr != nil {
			fmt.Fprintln(stderr, "bench: write results:", werr)
		} else {
			fmt.Fprintf(stdout, "\nResults: %s\n", path)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(stderr, "bench: %d problem(s): %v\n", len(rep.Problems), rep.Problems)
		return 1
	}
	return 0
}

// benchmark runs every variant; the report holds what was measured even when a
// phase failed.
func benchmark(ctx context.Context, o *options, progress io.Writer) (*report, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rep := newReport(o)
	if lim, err := raiseFileLimit(); err == nil {
		rep.Machine.OpenFiles = lim
		if lim < uint64(o.fanLarge)+1000 {
			return rep, fmt.Errorf("open files limit %d is too low for %d players: raise the hard limit (ulimit -Hn)", lim, o.fanLarge)
		}
	}
	tmp, err := os.MkdirTemp("", "devicehooks-bench-")
	if err != nil {
		return rep, err
	}
	if o.keep {
		fmt.Fprintf(progress, "temp folder (kept): %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	var pg *postgres
	rep.Database = "SQLite (a new file)"
	if o.postgres != "" {
		if pg, err = openPostgres(ctx, o.postgres); err != nil {
			return rep, err
		}
		rep.Database = "PostgreSQL " + pg.version
		if pg.postmaster == 0 {
			rep.Database += " (not on this machine: its CPU is not measured)"
		}
	}
	bin := o.bin
	if bin == "" {
		fmt.Fprintln(progress, "building ./cmd/devicehooks ...")
		if bin, err = buildServer(ctx, tmp); err != nil {
			return rep, err
		}
	}
	names := []string{"embedded", "mosquitto"}
	switch o.brokers {
	case "embedded":
		names = names[:1]
	case "mosquitto":
		names = names[1:]
	}
	for _, name := range names {
		if name == "mosquitto" && findMosquitto() == "" {
			if o.requireMosquitto {
				return rep, errors.New("mosquitto not found (Debian package mosquitto)")
			}
			rep.Notes = append(rep.Notes, "mosquitto not installed: the external-broker variant was skipped")
			continue
		}
		v := &variant{o: o, name: name, bin: bin, dir: filepath.Join(tmp, name), out: progress, pg: pg}
		err := v.run(ctx)
		rep.Variants = append(rep.Variants, v.res)
		for _, p := range v.res.Problems {
			rep.Problems = append(rep.Problems, name+": "+p)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", name, err)
		}
	}
	rep.finish()
	return rep, nil
}
