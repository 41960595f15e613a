// Package metrics exposes devicehooks' operational figures in the Prometheus
// format: webhook calls by verdict, how long triggers take to reach the broker and
// to be acked, commands by state, devices online and the broker connection.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"devicehooks/store"
)

// Sources are read at scrape time.
type Sources struct {
	OnlineDevices   func() int
	Devices         func() int // registered
	BrokerConnected func() bool
	// CommandStates counts the commands in these states by state
	// (a database query, cached).
	CommandStates func(ctx context.Context, states []string) (map[string]int, error)
	// WriteFailures counts the trigger path's writes the database refused.
	WriteFailures func() int64
	// RefusedLogins counts MQTT logins the embedded broker refused (nil with
	// an external broker, which logs its own).
	RefusedLogins func() int64
	// HeldAcks is how many acks wait for the database to take writes again,
	// past their retries; DroppedAcks counts those dropped for want of room.
	HeldAcks    func() int64
	DroppedAcks func() int64
	// HeldCommands is how many commands wait for their players to
	// acknowledge earlier ones (the embedded broker's send window).
	HeldCommands func() int64
	// Denied counts what the embedded broker refused of logged-in players:
	// wills, subscriptions and publishes on topics they may not use (nil with
	// an external broker).
	Denied func() int64
	// Active tells whether the instance serves and sends (false once it has
	// lost its claim on the database, while it stops).
	Active  func() bool
	Version string // the build, for devicehooks_build_info
	Log     *slog.Logger
}

// Metrics is the process's registry and the instruments devicehooks updates.
type Metrics struct {
	reg       *prometheus.Registry
	calls     *prometheus.CounterVec
	callTime  prometheus.Histogram
	toPublish prometheus.Histogram
	toAck     *prometheus.HistogramVec
}

// latencyBuckets span a loopback publish (sub-millisecond) to a slow player (minutes).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// New registers every instrument.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devicehooks_webhook_requests_total",
			Help: "Webhook calls by verdict: success or the error code.",
		}, []string{"code"}),
		callTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "devicehooks_webhook_request_duration_seconds", Help: "Time to answer a webhook call.", Buckets: latencyBuckets,
		}),
		toPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "devicehooks_trigger_to_publish_seconds", Help: "From the trigger to the broker's acknowledgement of the command.", Buckets: latencyBuckets,
		}),
		toAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "devicehooks_trigger_to_ack_seconds", Help: "From the trigger to the device's ack, by ack status.", Buckets: latencyBuckets,
		}, []string{"status"}),
	}
	m.reg.MustRegister(m.calls, m.callTime, m.toPublish, m.toAck,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_devices_online", Help: "Devices online now."},
			func() float64 { return float64(src.OnlineDevices()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_devices_registered", Help: "Devices registered (online or not)."},
			func() float64 { return float64(src.Devices()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_broker_connected", Help: "1 while the MQTT broker is reachable."},
			func() float64 {
				if src.BrokerConnected() {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicehooks_database_write_failures_total",
			Help: "Triggers, published marks and acks the database did not take."},
			func() float64 { return float64(src.WriteFailures()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_acks_held",
			Help: "Acks the database refused past their retries, held and tried again every 2 s (100,000 at most)."},
			optional(src.HeldAcks)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_commands_held",
			Help: "Commands held back, in order, until their players acknowledge earlier ones (128 unacknowledged at most per player; embedded broker)."},
			optional(src.HeldCommands)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicehooks_acks_dropped_total",
			Help: "Held acks dropped for want of room: their commands expire though their players ran them."},
			optional(src.DroppedAcks)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicehooks_mqtt_logins_refused_total",
			Help: "Connections the embedded broker refused for their username and password."},
			optional(src.RefusedLogins)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "devicehooks_mqtt_denied_total",
			Help: "Wills, subscriptions and publishes of logged-in players that the embedded broker refused (a topic prefix other than the server's, say)."},
			optional(src.Denied)),
		buildInfo(src.Version),
		activeGauge(src.Active),
		&commandCollector{src: src},
	)
	return m
}

// WaitingHandler serves the metrics of an instance that waits to start: a
// standby, or one whose database cannot be reached yet. It has its build and
// devicehooks_active 0, so that a standby shows up, rather than as a target
// that is down, and an alert can ask that one instance be active.
func WaitingHandler(version string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo(version), activeGauge(func() bool { return false }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func buildInfo(version string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_build_info", Help: "1, labelled with the running build.",
		ConstLabels: prometheus.Labels{"version": version}}, func() float64 { return 1 })
}

func activeGauge(active func() bool) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devicehooks_active",
		Help: "1 while this instance serves; 0 while it waits (a standby, or for its database), or stops."},
		func() float64 {
			if active != nil && active() {
				return 1
			}
			return 0
		})
}

// optional reads a count that only some setups have (the embedded broker's):
// 0 without one.
func optional(count func() int64) func() float64 {
	return func() float64 {
		if count == nil {
			return 0
		}
		return float64(count())
	}
}

// WebhookCall counts a call with its verdict and duration.
func (m *Metrics) WebhookCall(code string, d time.Duration) {
	m.calls.WithLabelValues(code).Inc()
	m.callTime.Observe(d.Seconds())
}

// Published observes a command reaching the broker; the trigger time is in the
// command's id (a UUIDv7).
func (m *Metrics) Published(commandID string, at time.Time) {
	if t, ok := idTime(commandID); ok {
		m.toPublish.Observe(at.Sub(t).Seconds())
	}
}

// Acked observes a device's ack of a command.
func (m *Metrics) Acked(commandID, status string, at time.Time) {
	if t, ok := idTime(commandID); ok {
		m.toAck.WithLabelValues(status).Observe(at.Sub(t).Seconds())
	}
}

func idTime(id string) (time.Time, bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	sec, nsec := u.Time().UnixTime()
	return time.Unix(sec, nsec), true
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// commandCollector reports commands by state from the database. The open
// states (queued, published), which alerts watch and which are few, are
// counted at most once a second however often it is scraped; the settled
// ones, which are most of what the database keeps (millions with 90 days of
// retention: a count of seconds), at most once a minute.
type commandCollector struct {
	src     Sources
	mu      sync.Mutex
	open    counted // openStates
	settled counted // settledStates
	// loggedAt and failures limit the log of failed counts to one line a
	// minute.
	loggedAt time.Time
	failures int
}

// counted is a count of commands by state, and when it was made or failed.
type counted struct {
	counts       map[string]int
	at, failedAt time.Time
}

// The counts' query timeouts: a scrape is answered without the commands'
// series rather than held past Prometheus' own timeout (10 s by default):
// 2 s and, once a minute, 5 s more at most.
const (
	countTimeout        = 2 * time.Second
	countSettledTimeout = 5 * time.Second
)

// openStates are the states of commands on their way; settledStates the rest.
var (
	openStates    = store.OpenStates
	settledStates = slices.DeleteFunc(slices.Clone(store.States), store.IsOpen)
)

var (
	commandsDesc = prometheus.NewDesc("devicehooks_commands", "Commands by state.", []string{"state"}, nil)
	queuedDesc   = prometheus.NewDesc("devicehooks_commands_queued", "Commands waiting for their device or the broker.", nil, nil)
)

func (c *commandCollector) Describe(ch chan<- *prometheus.Desc) { ch <- commandsDesc; ch <- queuedDesc }

func (c *commandCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// No figures rather than old ones: a gap in the graph says the database
	// did not answer. A count that failed waits as long as a good one is kept.
	if !c.refresh(&c.open, openStates, time.Second, countTimeout) {
		return
	}
	for _, st := range openStates {
		ch <- prometheus.MustNewConstMetric(commandsDesc, prometheus.GaugeValue, float64(c.open.counts[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(c.open.counts[store.StateQueued]))
	if !c.refresh(&c.settled, settledStates, time.Minute, countSettledTimeout) {
		return
	}
	for _, st := range settledStates {
		ch <- prometheus.MustNewConstMetric(commandsDesc, prometheus.GaugeValue, float64(c.settled.counts[st]), st)
	}
}

// refresh counts the commands in states into n once its count is
// older than every, and tells whether n holds a count to report.
func (c *commandCollector) refresh(n *counted, states []string, every, timeout time.Duration) bool {
	if time.Since(n.at) <= every {
		return true
	}
	if time.Since(n.failedAt) < every {
		return false // failed a moment ago: no query per scrape while it fails
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	counts, err := c.src.CommandStates(ctx, states)
	cancel()
	if err != nil {
		n.failedAt, c.failures = time.Now(), c.failures+1
		if time.Since(c.loggedAt) >= time.Minute {
			c.src.Log.Error("metrics: count commands", "err", err, "failures", c.failures)
			c.loggedAt, c.failures = time.Now(), 0
		}
		return false
	}
	n.counts, n.at = counts, time.Now()
	return true
}
