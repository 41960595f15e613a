package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/broker"
	"devicehooks/handlers"
	"devicehooks/internal/wallclock"
	"devicehooks/metrics"
	"devicehooks/secrets"
	"devicehooks/store"
)

// App is a running devicehooks server: database, MQTT side, background workers and
// HTTP. Tests start one on 127.0.0.1:0 with a temp database.
type App struct {
	Config Config
	Log    *slog.Logger
	// Stdout receives the one-time first-start notice (the admin token).
	Stdout io.Writer

	store      *store.Store
	keys       *auth.Keys
	admins     *auth.Admins
	devices    *auth.Devices
	users      *auth.Users
	presence   *actions.Presence
	delivery   *actions.Delivery
	tracker    *actions.Tracker
	dispatcher *actions.Dispatcher
	waiters    *actions.AckWaiters
	embedded   *broker.Embedded
	external   *broker.External

	httpLn     net.Listener
	httpSrv    *http.Server
	privateSrv []*http.Server // pprof, metrics
	// waitingMetrics serves metrics while Open waits (WaitingHandler).
	waitingMetrics *http.Server
	reqlog         *handlers.RequestLog
	metrics        *metrics.Metrics

	failed chan error // Failed

	sending        workers // the dispatcher's writer
	delivering     workers // delivery
	sendingStopped sync.Once
	active         atomic.Bool // serving and sending: devicehooks_active
	recording      workers     // tracker, presence, key uses, sweeper, request log
	closed         sync.Once
}

// mqttSide is what the App needs from either broker.
type mqttSide interface {
	actions.Publisher
	Subscribe(filter string, handler func(topic string, payload []byte, retained bool)) error
}

// Open starts everything; on error it closes what it had opened.
func (a *App) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	cfg := &a.Config
	if err := cfg.validate(); err != nil {
		return err
	}
	kr, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	if err := holdFromRecorded(ctx, a.store, wallclock.System(), a.Log); err != nil {
		return err
	}
	if err := a.startAuth(ctx, kr); err != nil {
		return err
	}
	topics := actions.Topics{Prefix: cfg.MQTTTopicPrefix}
	if err := a.wire(ctx, topics); err != nil {
		return err
	}
	a.startWorkers(ctx)
	if a.embedded != nil {
		a.delivery.BrokerConnected()
	} else {
		a.external.Start()
	}

	a.active.Store(true)
	a.closeWaitingMetrics()
	if err := a.servePrivateEndpoints(); err != nil {
		return err
	}
	// The port is taken before first-start credentials are made: a start that
	// fails on it must not leave credentials that were never printed.
	if a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen http %s: %w", cfg.HTTPAddr, err)
	}
	if err := a.firstStart(ctx); err != nil {
		return err
	}
	return a.serveHTTP(topics)
}

// openStore opens the database with the server secret (made on a first
// start), as the one active instance: while another is, it waits as a
// standby. It checks the secret against the database and returns its keyring.
func (a *App) openStore(ctx context.Context) (*secrets.Keyring, error) {
	cfg := &a.Config
	secret, created, err := a.secret()
	if err != nil {
		return nil, err
	}
	// A secret made by this start, when the database does not open (a wrong
	// password, TLS refused, a newer build's schema this build refuses) or
	// was made with another secret (a start from another directory finds no
	// secret file next to it, as on PostgreSQL, whose file is in the working
	// directory): nothing is tied to it yet. The start fails, and the new
	// file goes, so that nobody backs it up instead of the right one, and the
	// start that makes it again says so.
	openFailed := func(err error) error {
		if !created {
			return err
		}
		wrong := errors.Is(err, auth.ErrWrongSecret)
		path := absPath(a.Config.secretPath())
		// Only the file as this start wrote it: one put there meanwhile (the
		// right secret, copied while this start waited) stays.
		removed := secrets.RemoveSecretFile(path, secret)
		if !wrong {
			if removed {
				a.Log.Info("removed the secret file this start made: the database did not open", "file", path)
			}
			return err
		}
		return fmt.Errorf("%w; no secret file was at %s, and the one this start made there (removed again) cannot be this database's", err, path)
	}
	kr, err := secrets.NewKeyring(secret)
	if err != nil {
		return nil, err
	}
	// While it waits (a standby, or for the database), the metrics address
	// already answers: devicehooks_active 0. Unless it is taken: by the
	// active instance, for a standby on the same machine (SQLite's always
	// are), which binds it once it takes over.
	if cfg.MetricsAddr != "" {
		srv, err := a.servePrivate("metrics (waiting)", cfg.MetricsAddr, metricsMux(metrics.WaitingHandler(buildVersion())))
		if err != nil {
			a.Log.Warn("metrics address taken (by the active instance?): served once this instance starts", "err", err)
		}
		a.waitingMetrics = srv
	}
	// One instance at a time delivers a database's commands: another start
	// on the same database waits here, as a standby, until this one stops.
	// A standby with the wrong secret is refused as soon as the database is
	// pinned to the right one, not at takeover.
	standby := func(st *store.Store, first bool) error {
		if auth.SecretMismatch(ctx, st, kr) {
			return auth.ErrWrongSecret
		}
		if first {
			a.Log.Warn("another devicehooks instance is active on this database: waiting as a standby until it stops", "database", secrets.RedactURL(cfg.DB))
		}
		return nil
	}
	if a.store, err = store.Open(ctx, cfg.DB, a.Log, store.AsTheActiveInstance(standby), store.WaitForServer()); err != nil {
		return nil, openFailed(err)
	}
	pinned, err := auth.CheckSecret(ctx, a.store, kr)
	switch {
	case errors.Is(err, auth.ErrWrongSecret):
		return nil, openFailed(err)
	case err != nil:
		// Kept: its fingerprint may have been written before the error
		// (a reply lost after the commit), and the database tied to it.
		return nil, err
	}
	if created {
		a.Log.Info("created server secret; back it up with the database", "file", absPath(a.Config.secretPath()))
	}
	if !pinned {
		a.Log.Warn("cannot check the server secret against this database (it has no API key to check it with): " +
			"if devices, tokens and passwords fail, start with the secret the database was made with")
	}
	return kr, nil
}

// startAuth makes the services that check keys, admins, devices and users,
// and loads the devices' credentials.
func (a *App) startAuth(ctx context.Context, kr *secrets.Keyring) error {
	cfg := &a.Config
	a.keys = auth.NewKeys(a.store, kr, a.Log)
	a.admins = auth.NewAdmins(a.store, kr, cfg.AdminToken)
	a.devices = auth.NewDevices(a.store, kr)
	if cfg.MQTTURL != "" {
		a.devices.Reserved = cfg.MQTTUsername
	}
	a.users = auth.NewUsers(a.store, kr)
	return a.devices.Load(ctx)
}

// wire makes the MQTT side (the embedded broker, or a client of the
// external one) and the trigger path on it: presence, delivery, the ack
// tracker, the dispatcher, whose writer the others share, the request log and
// the metrics. Nothing runs yet: see startWorkers.
func (a *App) wire(ctx context.Context, topics actions.Topics) (err error) {
	cfg := &a.Config
	embedded := cfg.MQTTURL == ""
	a.presence = actions.NewPresence(a.store, a.Log, embedded)
	a.devices.OnDelete = func(id string, expired []string) {
		a.presence.Forget(id)
		a.delivery.Forget(id)
		for _, cmd := range expired { // final: a call waiting for its ack stops waiting
			a.waiters.Settled(cmd)
		}
	}
	if err := a.presence.Load(ctx); err != nil {
		return err
	}
	var mq mqttSide
	if embedded {
		if a.embedded, err = a.startEmbedded(topics); err != nil {
			return err
		}
		a.devices.OnRevoke = a.embedded.Disconnect
		mq = a.embedded
	} else {
		a.external = broker.NewExternal(broker.ExternalConfig{
			URL: cfg.MQTTURL, Username: cfg.MQTTUsername, Password: cfg.MQTTPassword, Logger: a.Log,
			OnConnect:            func() { a.delivery.BrokerConnected() },
			OnSubscriptionsReset: a.presence.BrokerLost,
		})
		mq = a.external
	}
	a.delivery = actions.NewDelivery(a.store, mq, topics, a.presence, a.Log)
	a.waiters = actions.NewAckWaiters()
	a.tracker = actions.NewTracker(a.store, topics, a.presence, a.waiters, a.Log)
	for _, f := range a.tracker.Filters() {
		if err := mq.Subscribe(f, a.tracker.HandleMessage); err != nil {
			return fmt.Errorf("subscribe %s: %w", f, err)
		}
	}
	a.dispatcher = actions.NewDispatcher(a.store, a.delivery, a.waiters, a.Log, actions.DispatcherConfig{MaxTargets: cfg.MaxTargets})
	a.tracker.Writer = a.dispatcher  // acks join the triggers' group commit
	a.delivery.Marker = a.dispatcher // and so do the published marks
	a.tracker.Hold = a.delivery.Sending
	a.delivery.AcksHeld = func() bool { return a.tracker.HeldAcks() > 0 }
	a.reqlog = handlers.NewRequestLog(a.store, a.Log)
	a.reqlog.Writer = a.dispatcher         // one writer: the request log's records join the round too
	var refusedLogins, denied func() int64 // the external broker logs its own
	if a.embedded != nil {
		refusedLogins, denied = a.embedded.RefusedLogins, a.embedded.Denied
	}
	a.metrics = metrics.New(metrics.Sources{
		OnlineDevices: a.presence.OnlineCount, Devices: a.devices.Count, BrokerConnected: a.brokerConnected, Log: a.Log,
		CommandStates: func(ctx context.Context, states []string) (map[string]int, error) {
			return a.store.CountCommandsByState(ctx, states...)
		},
		WriteFailures: a.dispatcher.WriteFailures, Version: buildVersion(), RefusedLogins: refusedLogins, Denied: denied,
		Active: a.active.Load, HeldAcks: a.tracker.HeldAcks, DroppedAcks: a.tracker.DroppedAcks,
		HeldCommands: a.delivery.Held,
	})
	a.tracker.OnAck = func(ack store.Ack) { a.metrics.Acked(ack.CommandID, ack.State, ack.At) }
	a.delivery.OnPublished = a.metrics.Published
	return nil
}

// startWorkers starts the trigger path's goroutines in two stages, stopped in
// order by Close: what sends (before the broker closes), then what records
// (after it, so acks already taken are written).
func (a *App) startWorkers(ctx context.Context) {
	cfg := &a.Config
	sending, delivering, records := a.sending.start(ctx), a.delivering.start(ctx), a.recording.start(ctx)
	a.sending.run(func() { a.dispatcher.Run(sending) })
	a.delivering.run(func() { a.delivery.Run(delivering, 30*time.Second) })
	a.recording.run(func() { a.tracker.Run(records) })
	a.recording.run(func() { a.presence.Run(records, 250*time.Millisecond) })
	a.recording.run(func() { a.keys.Run(records, 5*time.Second) })
	a.recording.run(func() {
		actions.RunSweeper(records, a.store, a.Log, time.Second, time.Duration(cfg.DispatchDays)*24*time.Hour)
	})
	a.recording.run(func() { a.reqlog.Run(records, time.Duration(cfg.RequestLogDays)*24*time.Hour) })
	holding := wallclock.System().Held() > time.Second // from the start's holdFromRecorded
	a.recording.run(func() { watchClock(records, wallclock.System(), a.Log, time.Second, holding) })
	a.failed = make(chan error, 1)
	a.recording.run(func() {
		select {
		case <-a.store.Lost():
			// Another instance may be active now, or about to be (it waits
			// for this one to notice): stop sending at once, while Close
			// lets the calls in flight finish, so that no command goes out
			// twice and the two do not take turns on the broker.
			a.failed <- errors.New("lost the connection that holds this instance's claim on the database: another instance may be active now")
			a.stopSending()
			a.Log.Warn("stopped sending commands: this instance's claim on the database is lost")
		case <-records.Done():
		}
	})
}

// firstStart creates the web UI's admin account and an admin token if there
// are none, and prints each as soon as it exists: it is shown once, to the
// terminal only, never to the log, and a later failure must not lose it.
func (a *App) firstStart(ctx context.Context) error {
	password, err := a.users.EnsureFirstAdmin(ctx, a.Config.AdminUser, a.Config.AdminPassword)
	if err != nil {
		return err
	}
	if password != "" && a.Stdout != nil {
		fmt.Fprintf(a.Stdout, "\n  First start: web UI at %s/  user %q  password (shown only now):\n\n    %s\n",
			a.browseURL(), a.Config.AdminUser, password)
	}
	token, err := a.admins.EnsureFirstToken(ctx)
	if err != nil {
		return err
	}
	if token != "" && a.Stdout != nil {
		fmt.Fprintf(a.Stdout, "\n  First start: created an admin token for the management API (shown only now):\n\n    %s\n\n"+
			"  Use it as  Authorization: Bearer <token>  on %s/api/v1/...\n\n", token, a.browseURL())
	}
	return nil
}

func (a *App) servePrivateEndpoints() error {
	for _, p := range []struct {
		name, addr string
		h          http.Handler
	}{{"pprof", a.Config.PprofAddr, pprofMux()}, {"metrics", a.Config.MetricsAddr, metricsMux(a.metrics.Handler())}} {
		if p.addr == "" {
			continue
		}
		srv, err := a.servePrivate(p.name, p.addr, p.h)
		if err != nil {
			return err
		}
		a.privateSrv = append(a.privateSrv, srv)
	}
	return nil
}

// secret reads the server secret, and makes one if there is no file of it
// (created).
func (a *App) secret() (s []byte, created bool, err error) {
	if a.Config.Secret != "" {
		s, err = secrets.ParseSecret(a.Config.Secret)
		return s, false, err
	}
	return secrets.LoadOrCreateSecret(a.Config.secretPath())
}

// absPath is path made absolute where it can be: a relative path says little
// in a service's log.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

func (a *App) startEmbedded(topics actions.Topics) (*broker.Embedded, error) {
	cfg := a.Config
	if cfg.MQTTAllowAnonymous {
		a.Log.Warn("--mqtt-allow-anonymous: MQTT clients without credentials are let into the embedded broker; for development only")
	}
	return broker.StartEmbedded(broker.EmbeddedConfig{
		TCPAddr: cfg.MQTTListen, WSAddr: cfg.MQTTWSListen, AllowAnonymous: cfg.MQTTAllowAnonymous,
		Authenticate: a.devices.Authenticate, PlausibleUser: actions.DeviceIDPattern.MatchString,
		Allow: topics.ClientAllowed, WillAllowed: topics.WillAllowed, WhyRefused: topics.WhyRefused, PresenceOf: topics.PresenceOf,
		Unretained: topics.Unretained, ServerOnly: topics.ServerOnly,
		OnPresent: a.presence.Subscribed, OnAbsent: a.presence.Disconnected,
		Logger: a.Log.With("component", "mqtt"),
	})
}

func (a *App) serveHTTP(topics actions.Topics) error {
	h, err := handlers.New(handlers.Deps{
		Store: a.store, Keys: a.keys, Admins: a.admins, Devices: a.devices, Users: a.users,
		Dispatcher: a.dispatcher, Presence: a.presence, Log: a.Log,
		MaxBody: a.Config.MaxBodyBytes, MaxHeader: a.Config.MaxHeaderBytes, MaxConcurrent: a.Config.MaxConcurrent,
		RequestLog: a.reqlog, Metrics: a.metrics, BrokerConnected: a.brokerConnected, WriteFailing: a.dispatcher.WriteFailing,
		TrustedProxies: a.Config.trustedProxies(), Topics: topics,
		PublicURL: a.Config.PublicURL, SecureCookies: a.Config.SecureCookies, PlayerBroker: a.playerBroker(),
	})
	if err != nil {
		return err
	}
	a.httpSrv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: a.Config.ReadHeaderTimeout,
		ReadTimeout:       a.Config.ReadTimeout,
		WriteTimeout:      a.Config.WriteTimeout,
		IdleTimeout:       a.Config.IdleTimeout,
		// Go's own hard stop (431); the webhook answers 413 from MaxHeaderBytes on.
		MaxHeaderBytes: 4 * a.Config.MaxHeaderBytes,
	}
	ln := a.httpLn
	go func() {
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("http server", "err", err)
		}
	}()
	a.announce()
	return nil
}

// announce tells the operator where the server is.
func (a *App) announce() {
	attrs := []any{"version", buildVersion(), "http", a.HTTPAddr(), "database", a.store.Driver()}
	if a.embedded != nil {
		attrs = append(attrs, "mqtt", a.embedded.Addr())
		ws := a.embedded.WSAddr()
		if ws == "" {
			// Browser players cannot connect: say so, as builds before
			// 2026-11-23 read an empty DEVICEHOOKS_MQTT_WS_LISTEN as the default.
			ws = "off (--mqtt-ws-listen is empty)"
		}
		attrs = append(attrs, "mqtt_ws", ws)
	} else {
		attrs = append(attrs, "mqtt_broker", secrets.RedactURL(a.Config.MQTTURL))
	}
	a.Log.Info("devicehooks serving", attrs...)
	if a.Config.SecureCookiesFromURL {
		a.Log.Info("web UI cookies are Secure because --public-url is https: sign in over https only (--secure-cookies=false to change)")
	}
}

// playerBroker is where players connect, for the UI to show.
func (a *App) playerBroker() handlers.PlayerBroker {
	if a.embedded != nil {
		return handlers.PlayerBroker{TCPAddr: a.embedded.Addr(), WSAddr: a.embedded.WSAddr()}
	}
	u, err := url.Parse(a.Config.MQTTURL)
	if err != nil {
		return handlers.PlayerBroker{}
	}
	return handlers.PlayerBroker{URL: u.Scheme + "://" + u.Host + u.Path}
}

// browseURL is where a person on this machine reaches the server: the public URL,
// or the listen address with a wildcard host replaced by localhost.
func (a *App) browseURL() string {
	if a.Config.PublicURL != "" {
		return strings.TrimRight(a.Config.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(a.HTTPAddr())
	if err != nil {
		return "http://" + a.HTTPAddr()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (a *App) brokerConnected() bool {
	if a.external != nil {
		return a.external.Connected()
	}
	return a.embedded != nil
}

// workers is a set of background goroutines stopped together.
type workers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *workers) start(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	w.cancel = cancel
	return ctx
}

func (w *workers) run(f func()) {
	w.wg.Add(1)
	go func() { defer w.wg.Done(); f() }()
}

// stop cancels the workers and waits for them to finish flushing.
func (w *workers) stop() {
	w.interrupt()
	w.wg.Wait()
}

// interrupt cancels the workers without waiting for them.
func (w *workers) interrupt() {
	if w.cancel != nil {
		w.cancel()
	}
}

// Failed receives an error if the App can no longer run safely and must stop
// (its claim on the database was lost).
func (a *App) Failed() <-chan error { return a.failed }

// closeWaitingMetrics stops serving the waiting instance's metrics, to serve
// the active one's on the same address.
func (a *App) closeWaitingMetrics() {
	if a.waitingMetrics != nil {
		_ = a.waitingMetrics.Close()
		a.waitingMetrics = nil
	}
}

// stopSending stops delivery, then the MQTT side, then the dispatcher's
// writer, which may take a while (it writes what it holds); once only. A
// trigger taken after it is still written (the writer's stop leaves it to each
// caller), and its commands wait in the database for the active instance to
// send. From then on the instance says it is not active (devicehooks_active).
func (a *App) stopSending() {
	a.sendingStopped.Do(func() {
		a.active.Store(false)
		a.sending.interrupt() // the writer starts to stop meanwhile
		a.delivering.stop()
		if a.embedded != nil {
			_ = a.embedded.Close()
		}
		if a.external != nil {
			_ = a.external.Close()
		}
		a.sending.stop()
	})
}

// HTTPAddr is the bound HTTP address.
func (a *App) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// shutdownGrace bounds how long Close lets HTTP calls in flight finish.
const shutdownGrace = 15 * time.Second

// Close stops HTTP (letting calls in flight finish, and ending waits for acks
// so that those calls are answered), then sending, then the MQTT side, then the
// writers that record acks, presence and the request log (which flush what they
// hold), then the database. It is safe to call more than once.
func (a *App) Close() {
	a.closed.Do(func() {
		if a.waiters != nil {
			a.waiters.Stop()
		}
		if a.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			if err := a.httpSrv.Shutdown(ctx); err != nil {
				// Calls still running past the grace lose their connection
				// (and their context) here, before the database closes.
				a.Log.Warn("http shutdown: closing the calls still running", "err", err)
				_ = a.httpSrv.Close()
			}
			cancel()
		} else if a.httpLn != nil {
			_ = a.httpLn.Close()
		}
		for _, srv := range a.privateSrv {
			_ = srv.Close()
		}
		a.closeWaitingMetrics()
		a.stopSending()
		a.recording.stop()
		if a.store != nil {
			if err := a.store.Close(); err != nil {
				a.Log.Warn("database close", "err", err)
			}
		}
	})
}
