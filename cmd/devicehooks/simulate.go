package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"devicehooks/simulator"
)

// runSimulate runs `devicehooks simulate`: it connects simulated signage players to
// the MQTT broker, prints what they receive and ack, and on ctx's end disconnects
// them and prints a summary. It returns the process exit code: 0 after a clean stop,
// 2 for a usage error, 1 for any other failure.
func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseSimulateFlags(args, stderr, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "simulate: %v\nRun 'devicehooks simulate -h' for help.\n", err)
		return 2
	}

	creds := opts.devices
	if len(creds) == 0 {
		creds, err = simulator.Provision(ctx, opts.api, opts.adminToken, opts.players, opts.namePrefix)
		if err != nil {
			return simulateFailure(ctx, stdout, stderr, "provisioning players through "+opts.api, err)
		}
		if !opts.quiet {
			printCredentials(stdout, creds)
		}
	}

	out := &eventPrinter{w: stdout, noAck: opts.noAck}
	cfg := simulator.Config{
		BrokerURL:          opts.mqtt,
		TopicPrefix:        opts.topicPrefix,
		Players:            creds,
		AckDelay:           opts.ackDelay,
		FailureRate:        opts.failureRate,
		Seed:               opts.seed,
		NoAck:              opts.noAck,
		ConnectConcurrency: opts.connectConcurrency,
	}
	if !opts.quiet {
		cfg.OnEvent = out.print
	}
	sim, err := simulator.Start(ctx, cfg)
	if err != nil {
		created := len(opts.devices) == 0
		if created && opts.quiet && ctx.Err() == nil {
			printCredentials(stdout, creds) // the devices stay: their tokens are needed to try again
		}
		code := simulateFailure(ctx, stdout, stderr, "connecting players to "+opts.mqtt, err)
		if code != 0 && errors.Is(err, simulator.ErrNotAuthorized) {
			explainRefusal(stderr, created)
		}
		return code
	}
	if !opts.quiet {
		out.printf("%d player(s) connected to %s (topic prefix %q). Press Ctrl-C to stop.\n",
			len(creds), opts.mqtt, opts.topicPrefix)
	}

	<-ctx.Done()
	// Players say offline and disconnect; those in the middle of reconnecting
	// to a broker that is away do not let go at once (paho waits out the
	// attempt): an interrupt must not wait for them.
	closed := make(chan struct{})
	go func() {
		sim.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeWait):
		out.printf("simulate: stopping without waiting for players still reconnecting\n")
	}
	st := sim.Stats()
	out.printf("simulate: %d player(s); %d command(s) received (%d duplicate, %d expired); %d ack(s) sent (%d failed); %d desired state(s) applied\n",
		st.Players, st.Commands, st.Duplicates, st.Expired, st.Acked, st.Failed, st.Desired)
	return 0
}

// closeWait is how long an interrupted simulate waits for its players to close.
const closeWait = 3 * time.Second

// simulateFailure reports err, unless it only says that the user interrupted us.
func simulateFailure(ctx context.Context, stdout, stderr io.Writer, doing string, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "simulate: interrupted")
		return 0
	}
	fmt.Fprintf(stderr, "simulate: %s: %v\n", doing, err)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		fmt.Fprintln(stderr, "simulate: is `devicehooks serve` running there? Set --api / --mqtt if it listens elsewhere.")
	}
	return 1
}

// explainRefusal says why a broker may refuse players: the embedded broker
// knows every device at once, Mosquitto only once its password file has them.
func explainRefusal(stderr io.Writer, created bool) {
	then := "then run simulate again with --device id:token for the devices it created, as shown above."
	if !created {
		then = "then run simulate again. A rotated token no longer works: check each --device id:token."
	}
	fmt.Fprintln(stderr, "simulate: an external broker (Mosquitto) knows a device only once its account is exported:"+
		" run `devicehooks mosquitto-passwd` and reload the broker (docs/operations.md, \"External broker\"), "+then)
}

// printCredentials shows the tokens of the devices just provisioned: the server shows
// a token only once, and the user needs them to run the same players again.
func printCredentials(w io.Writer, creds []simulator.Credentials) {
	fmt.Fprintf(w, "Provisioned %d device(s). Their MQTT tokens are secrets, shown here once because simulate created the devices for you;\n", len(creds))
	fmt.Fprintln(w, "reuse them with --device id:token (or DEVICEHOOKS_DEVICE=id:token,...):")
	for _, c := range creds {
		fmt.Fprintf(w, "  %s:%s\n", c.DeviceID, c.Token)
	}
}

// eventPrinter writes one line per simulator event; events come from many goroutines.
type eventPrinter struct {
	noAck bool
	mu    sync.Mutex
	w     io.Writer
}

func (p *eventPrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func (p *eventPrinter) print(ev simulator.Event) {
	line := fmt.Sprintf("%s  %-10s  %-15s %s", ev.At.Local().Format("15:04:05.000"), ev.DeviceID, ev.Kind, describeEvent(ev, p.noAck))
	p.printf("%s\n", strings.TrimRight(line, " "))
}

// describeEvent renders the interesting part of an event on one line; with
// noAck, the players send no ack (--no-ack), and it does not claim they do.
func describeEvent(ev simulator.Event, noAck bool) string {
	acked, rejected := "acked again", "rejected"
	if noAck {
		acked, rejected = "not acked (--no-ack)", "not acked (--no-ack)"
	}
	switch ev.Kind {
	case simulator.KindCommand:
		return fmt.Sprintf("%s %s%s", ev.Command.Function, paramsJSON(ev.Command.Params), commandRef(ev.Command))
	case simulator.KindDuplicate:
		return fmt.Sprintf("%s%s already handled: %s, not re-applied", ev.Command.Function, commandRef(ev.Command), acked)
	case simulator.KindExpired:
		return fmt.Sprintf("%s%s expired at %s: %s", ev.Command.Function, commandRef(ev.Command), ev.Command.ExpiresAt.Format(time.RFC3339), rejected)
	case simulator.KindAck:
		status := ev.AckStatus
		if ev.Detail != "" {
			status += " (" + ev.Detail + ")"
		}
		return fmt.Sprintf("%s for %s%s", status, ev.Command.Function, commandRef(ev.Command))
	case simulator.KindDesired:
		return describeDesired(ev.Desired)
	case simulator.KindDesiredIgnored:
		return fmt.Sprintf("v%d ignored: not newer than the applied version", ev.Desired.Version)
	default:
		return ev.Detail
	}
}

func commandRef(c *simulator.Command) string {
	if c.DispatchID == "" {
		return fmt.Sprintf(" [id %s]", c.ID)
	}
	return fmt.Sprintf(" [id %s, dispatch %s]", c.ID, c.DispatchID)
}

func paramsJSON(params map[string]any) string {
	if len(params) == 0 {
		return "{}"
	}
	b, err := json.Marshal(params)
	if err != nil {
		return fmt.Sprint(params)
	}
	return string(b)
}

func describeDesired(d *simulator.Desired) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v%d emergency ", d.Version)
	if !d.Emergency.Enabled {
		b.WriteString("off")
	} else {
		b.WriteString("ON")
		if d.Emergency.Message != "" {
			fmt.Fprintf(&b, " %q", d.Emergency.Message)
		}
		if d.Emergency.URL != "" {
			b.WriteString(" " + d.Emergency.URL)
		}
	}
	if d.LoopPaused {
		b.WriteString(", loop paused")
	} else {
		b.WriteString(", loop running")
	}
	return b.String()
}

// simulateOptions are the parsed flags of `devicehooks simulate`.
type simulateOptions struct {
	mqtt, api, adminToken   string
	players                 int
	namePrefix, topicPrefix string
	devices                 deviceCredsFlag
	ackDelay                time.Duration
	failureRate             float64
	seed                    int64
	noAck, quiet            bool
	connectConcurrency      int
}

// parseSimulateFlags reads flags, then DEVICEHOOKS_* variables for flags not given.
func parseSimulateFlags(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (simulateOptions, error) {
	var o simulateOptions
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mqtt, "mqtt", "tcp://127.0.0.1:1883", "MQTT broker URL: tcp://host:port or ws://host:port/path")
	fs.StringVar(&o.api, "api", "http://127.0.0.1:8080", "management API base URL, used to provision players")
	fs.StringVar(&o.adminToken, "admin-token", "", "admin token for the management API (needed unless --device is given)")
	fs.IntVar(&o.players, "players", 3, "how many players to provision (ignored with --device)")
	fs.StringVar(&o.namePrefix, "prefix-name", "sim", "device id prefix for provisioned players: <prefix>-00001, ...")
	fs.Var(&o.devices, "device", "`id:token` of an existing device to simulate instead of provisioning (repeatable; comma-separated in the variable)")
	fs.DurationVar(&o.ackDelay, "ack-delay", 200*time.Millisecond, "delay before a player acks a command")
	fs.Float64Var(&o.failureRate, "failure-rate", 0, "share of commands acked \"failed\", 0 to 1")
	fs.Int64Var(&o.seed, "seed", 1, "seed deciding which commands fail, for reproducible runs")
	fs.BoolVar(&o.noAck, "no-ack", false, "receive commands but never ack them")
	fs.StringVar(&o.topicPrefix, "topic-prefix", "devicehooks", "MQTT topic prefix (falls back to DEVICEHOOKS_MQTT_TOPIC_PREFIX, as serve uses)")
	fs.IntVar(&o.connectConcurrency, "connect-concurrency", 64, "how many players connect at once")
	fs.BoolVar(&o.quiet, "quiet", false, "print only the summary at exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: devicehooks simulate [flags]

Connects simulated signage players to the MQTT broker, prints every command and
desired state they receive, and acks commands like a real player. Without --device
it first creates the devices through the management API. Stop with Ctrl-C.

Every flag can also be set with DEVICEHOOKS_<FLAG> (upper case, - as _), e.g.
DEVICEHOOKS_ADMIN_TOKEN; --mqtt also falls back to DEVICEHOOKS_MQTT_URL.

Flags:`)
		fs.PrintDefaults()
	}

	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	aliases := map[string][]string{
		"mqtt":         {"DEVICEHOOKS_MQTT_URL"},
		"topic-prefix": {"DEVICEHOOKS_MQTT_TOPIC_PREFIX"},
	}
	if err := applySimulateEnv(fs, lookupEnv, aliases); err != nil {
		return o, err
	}

	switch {
	case o.mqtt == "":
		return o, errors.New("--mqtt is empty")
	case o.failureRate < 0 || o.failureRate > 1:
		return o, fmt.Errorf("--failure-rate %v is not between 0 and 1", o.failureRate)
	case o.ackDelay < 0:
		return o, fmt.Errorf("--ack-delay %v is negative", o.ackDelay)
	case len(o.devices) > 0:
		return o, nil
	case o.players < 1:
		return o, fmt.Errorf("--players %d: need at least one", o.players)
	case o.namePrefix == "":
		return o, errors.New("--prefix-name is empty")
	case o.adminToken == "":
		return o, errors.New("provisioning players needs --admin-token (or DEVICEHOOKS_ADMIN_TOKEN); or pass existing devices with --device id:token")
	}
	return o, nil
}

// applySimulateEnv sets each flag not given on the command line from DEVICEHOOKS_<FLAG>, or
// else from its aliases, with the flag's own parser.
func applySimulateEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool), aliases map[string][]string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		names := append([]string{envName(f.Name)}, aliases[f.Name]...)
		for _, name := range names {
			if v, ok := lookupEnv(name); ok && v != "" {
				if e := fs.Set(f.Name, v); e != nil {
					shown := fmt.Sprintf("%q", v)
					if f.Name == "device" {
						shown = "(value hidden: it holds tokens)"
					}
					err = fmt.Errorf("%s=%s: %v", name, shown, e)
				}
				return
			}
		}
	})
	return err
}

// deviceCredsFlag collects --device id:token values; one value may hold several, comma-separated.
type deviceCredsFlag []simulator.Credentials

func (d *deviceCredsFlag) String() string {
	ids := make([]string, len(*d))
	for i, c := range *d {
		ids[i] = c.DeviceID // never echo tokens
	}
	return strings.Join(ids, ",")
}

func (d *deviceCredsFlag) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		id, token, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || id == "" || token == "" {
			return errors.New("want id:token")
		}
		*d = append(*d, simulator.Credentials{DeviceID: id, Token: token})
	}
	return nil
}
