package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"devicehooks/internal/logevery"
	"devicehooks/internal/queue"
	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// Tracker follows what players say: acks settle commands, status messages move
// presence. HandleMessage only parses and hands over, because the embedded broker
// calls it on the sending client's goroutine; Run writes acks in batches.
type Tracker struct {
	st       *store.Store
	topics   Topics
	presence *Presence
	waiters  *AckWaiters
	log      *slog.Logger
	acks     *queue.Queue[store.Ack]
	clock    func() time.Time
	ignored  *logevery.Limiter // "ignored ack/status" lines, per device: a player in a loop must not flood the log
	held     []store.Ack       // acks whose write failed past its retries (keepForLater); Run's alone
	holding  bool              // held has had acks since its last retry that wrote them all
	stopping bool              // Run's last tries: nothing is tried again after them
	heldNow  atomic.Int64      // len(held), for the metrics
	dropped  atomic.Int64      // held acks dropped for want of room

	// OnAck, if set, is called for every ack that settled a command.
	OnAck func(a store.Ack)
	// Writer, if set, writes the acks: give it the Dispatcher, whose writer then
	// commits acks, triggers and published marks together. Default: the store.
	Writer AckWriter
	// Hold, if set, returns a channel to wait on before writing acks, or nil to
	// write them now: Delivery.Sending, so that the acks of a fan-out's first
	// players are written once the commands of the last have gone out, rather
	// than competing with them. Acks keep being taken meanwhile, and wait
	// MaxHold at most.
	Hold func() <-chan struct{}
}

// AckWriter settles commands from acks; applied[i] tells whether acks[i] changed
// anything. *store.Store and *Dispatcher are AckWriters.
type AckWriter interface {
	ApplyAcks(ctx context.Context, acks []store.Ack) (applied []bool, err error)
}

// ackQueue is how many acks may wait for Run, which takes them as they come
// (also while a fan-out goes out) except while it hands them to the writer:
// past it, HandleMessage waits, and with it the acking client's goroutine on
// the embedded broker, or every incoming message on an external one.
const ackQueue = 16384

// NewTracker returns a Tracker; call Run to start its writer.
func NewTracker(st *store.Store, topics Topics, presence *Presence, waiters *AckWaiters, log *slog.Logger) *Tracker {
	return &Tracker{
		st: st, topics: topics, presence: presence, waiters: waiters, log: log,
		acks:    queue.New[store.Ack](ackQueue),
		clock:   wallclock.Now,
		ignored: logevery.New(10 * time.Second),
	}
}

// Filters are the topic filters the tracker must be subscribed to.
func (t *Tracker) Filters() []string {
	return []string{t.topics.All(KindAcks), t.topics.All(KindStatus)}
}

// HandleMessage takes a message from a device's acks or status topic.
func (t *Tracker) HandleMessage(topic string, payload []byte, retained bool) {
	deviceID, kind, ok := t.topics.Parse(topic)
	if !ok {
		return
	}
	switch kind {
	case KindAcks:
		a, err := ParseAck(payload)
		if err != nil {
			t.ignore("ignored ack", deviceID, err)
			return
		}
		t.acks.PushWait(store.Ack{CommandID: a.ID, DeviceID: deviceID, State: a.Status, Detail: a.Detail, At: t.clock()})
	case KindStatus:
		if len(payload) == 0 { // clears a retained status: nothing to read
			return
		}
		st, err := ParseStatus(payload)
		if err != nil {
			t.ignore("ignored status", deviceID, err)
			return
		}
		t.presence.Status(deviceID, st, retained)
	}
}

// ignore logs a device's unreadable message, once per device and kind every
// 10 s, with how many were left out since.
func (t *Tracker) ignore(msg, deviceID string, err error) {
	ok, skipped := t.ignored.Allow(msg+"\x00"+deviceID, time.Now())
	if !ok {
		return
	}
	if skipped > 0 {
		t.log.Warn(msg, "device", deviceID, "err", err, "more_since_last", skipped)
		return
	}
	t.log.Warn(msg, "device", deviceID, "err", err)
}

// ParseAck reads and checks an ack message.
func ParseAck(payload []byte) (AckMessage, error) {
	var a AckMessage
	if len(payload) == 0 {
		return a, Errorf(CodeBadRequest, "ack is empty")
	}
	var in struct {
		AckMessage
		// For people reading the dispatch, and the player's logs: any form
		// is taken, so that a mistyped one does not void the ack (and have
		// the command sent again).
		Detail json.RawMessage `json:"detail"`
		At     json.RawMessage `json:"at"`
	}
	if notObject(payload) {
		return a, Errorf(CodeBadRequest, "ack is not a JSON object")
	}
	if err := json.Unmarshal(payload, &in); err != nil {
		return a, jsonProblem("ack", err)
	}
	a = in.AckMessage
	a.Detail = detailText(in.Detail)
	if at := parseAt(in.At); at != nil {
		a.At = *at
	}
	if a.ID == "" {
		return a, Errorf(CodeBadRequest, "ack needs the command id")
	}
	if err := CheckText("id", a.ID, 64); err != nil {
		var e *Error
		errors.As(err, &e)
		return a, Errorf(CodeBadRequest, "ack id is no command's: it %s", e.Detail)
	}
	switch a.Status {
	case store.StateSucceeded, store.StateFailed, store.StateRejected:
	default:
		return a, Errorf(CodeBadRequest, "ack status %q is not succeeded, failed or rejected", a.Status)
	}
	a.Detail = Readable(Truncate(a.Detail, 500))
	return a, nil
}

// notObject tells valid JSON that is not an object (`[1,2]`, `"x"`, `3`,
// `null`): saying of it that it is not valid JSON would send a player's
// developer looking for a syntax error.
func notObject(payload []byte) bool {
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] != '{' && json.Valid(trimmed)
}

// jsonProblem says what json.Unmarshal found wrong with a player's message
// (what: "ack" or "status") in the contract's terms: a field of the wrong
// type by its JSON name ("id" must be a string), not by Go's struct.
func jsonProblem(what string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" && te.Type != nil {
		field := te.Field[strings.LastIndex(te.Field, ".")+1:]
		return Errorf(CodeBadRequest, "%s field %q must be a %s, not a JSON %s", what, field, te.Type.Kind(), te.Value)
	}
	return Errorf(CodeBadRequest, "%s is not valid JSON: %v", what, err)
}

// ParseStatus reads and checks a status message.
func ParseStatus(payload []byte) (StatusMessage, error) {
	var s StatusMessage
	var in struct {
		StatusMessage
		At json.RawMessage `json:"at"`
	}
	if notObject(payload) {
		return s, Errorf(CodeBadRequest, "status is not a JSON object")
	}
	if err := json.Unmarshal(payload, &in); err != nil {
		return s, jsonProblem("status", err)
	}
	s = in.StatusMessage
	s.At = parseAt(in.At)
	if s.State != "online" && s.State != "offline" {
		return s, Errorf(CodeBadRequest, "status state %q is not online or offline", s.State)
	}
	return s, nil
}

// Run writes acks until ctx ends, many per transaction.
func (t *Tracker) Run(ctx context.Context) {
	// The broker has PUBACKed every ack taken: write them even while stopping.
	write := context.WithoutCancel(ctx)
	retry := time.NewTicker(retryHeldEvery)
	defer retry.Stop()
	var batch []store.Ack
	for {
		select {
		case <-t.acks.Ready():
			if batch = t.acks.Take(batch); len(batch) > 0 {
				batch = t.hold(batch)
				t.applyAll(write, batch, true)
			}
			batch = queue.Reuse(batch, queue.Keep)
		case <-retry.C:
			if held := t.held; len(held) > 0 {
				t.held = nil
				t.applyAll(write, held, false)
				if len(t.held) == 0 {
					t.holding = false
					t.log.Info("apply acks: the held acks are written", "acks", len(held))
				}
			}
		case <-ctx.Done():
			// The last tries: the acks just taken get their retries unless the
			// database already refuses, the held ones one more try; what is
			// left is lost (keepForLater does not say it will try again).
			fresh, held := t.acks.Take(batch), t.held
			t.held, t.stopping = nil, true
			t.applyAll(write, fresh, true) // apply gives no retries while holding
			t.applyAll(write, held, false)
			t.heldNow.Store(int64(len(t.held)))
			if len(t.held) > 0 {
				t.log.Error("apply acks: the database refuses them at shutdown; their commands stay published until their players reconnect", "acks", len(t.held))
			}
			return
		}
		t.heldNow.Store(int64(len(t.held)))
	}
}

// Acks whose write fails past apply's retries (the database refusing writes
// for longer: a full disk) are held and tried again every retryHeldEvery, at
// most maxHeldAcks of them: dropped, their commands would stay "published"
// and expire, though their screens ran them.
const (
	retryHeldEvery = 2 * time.Second
	maxHeldAcks    = 100000
)

// keepForLater holds acks whose write failed, for Run's next retry; err is
// the failure, logged when acks begin to be held.
func (t *Tracker) keepForLater(batch []store.Ack, err error) {
	if len(batch) == 0 {
		return
	}
	t.held = append(t.held, batch...)
	if over := len(t.held) - maxHeldAcks; over > 0 {
		t.log.Error("apply acks: too many held; dropping the oldest", "dropped", over, "held", maxHeldAcks)
		t.held = slices.Delete(t.held, 0, over)
		t.dropped.Add(int64(over))
	}
	if !t.holding && !t.stopping { // one line until they are written
		t.holding = true
		t.log.Error("apply acks: the database refuses them; holding them and trying again every 2 s", "acks", len(batch), "err", err)
	}
}

// HeldAcks is how many acks the database refused past their retries and
// that wait for a retry (0 while it takes writes).
func (t *Tracker) HeldAcks() int64 { return t.heldNow.Load() }

// DroppedAcks counts held acks dropped for want of room (maxHeldAcks): their
// commands expire though their screens ran them.
func (t *Tracker) DroppedAcks() int64 { return t.dropped.Load() }

// hold keeps taking acks into batch while Hold says a fan-out is going out,
// MaxHold at most.
func (t *Tracker) hold(batch []store.Ack) []store.Ack {
	if t.Hold == nil {
		return batch
	}
	out := t.Hold()
	if out == nil {
		return batch
	}
	timeout := time.NewTimer(MaxHold)
	defer timeout.Stop()
	for {
		select {
		case <-t.acks.Ready():
			batch = t.acks.Take(batch)
		case <-out:
			return batch
		case <-timeout.C:
			return batch
		}
	}
}

// applyAll writes batch, at most maxAckBatch acks per round; with retries,
// each round is tried again for a while before its acks are held for later.
// Once a round is refused, the rest are held with it, untried: while acks are
// held, the database refuses writes, and each try can take seconds.
func (t *Tracker) applyAll(ctx context.Context, batch []store.Ack, retries bool) {
	for len(batch) > 0 {
		part := batch[:min(len(batch), maxAckBatch)]
		batch = batch[len(part):]
		if !t.apply(ctx, part, retries) {
			t.keepForLater(batch, nil)
			return
		}
	}
}

// maxAckBatch bounds the acks one writer round takes.
const maxAckBatch = 1000

// apply writes one round of acks, and tells whether it could.
func (t *Tracker) apply(ctx context.Context, batch []store.Ack, retries bool) bool {
	var w AckWriter = t.st
	if t.Writer != nil {
		w = t.Writer
	}
	// A device does not send an ack twice (the broker PUBACKed it), so a failed
	// write is retried for a while, then held for later (keepForLater), rather
	// than dropped. While acks are held, the database refuses writes: a new
	// round is tried once, and held with them.
	retries = retries && !t.holding
	var (
		applied []bool
		err     error
	)
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		if applied, err = w.ApplyAcks(ctx, batch); err == nil {
			break
		}
		if !retries || wait > 5*time.Second || ctx.Err() != nil {
			t.keepForLater(batch, err)
			return false
		}
		if wait == 50*time.Millisecond { // one line per batch: the retries follow, or holding them
			t.log.Warn("apply acks: retrying for about 6 s", "acks", len(batch), "err", err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	for i, a := range batch {
		t.presence.Seen(a.DeviceID, a.At) // when it came: a held ack is written later
		if !applied[i] {
			continue
		}
		t.waiters.Settled(a.CommandID)
		if t.OnAck != nil {
			t.OnAck(a)
		}
	}
	return true
}

// RunSweeper expires overdue commands every interval and, hourly, purges
// idempotency records past their window and dispatches older than
// keepDispatches (0: none), until ctx ends. A purge takes purgeBudget at most
// per tick, and goes on at the next ticks until it is done: the first one
// after an upgrade may have millions of rows to delete, and must neither hold
// up the expiry of commands nor a shutdown.
func RunSweeper(ctx context.Context, st *store.Store, log *slog.Logger, interval, keepDispatches time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastPurge time.Time
	purging := false // a purge ran out of its budget and goes on
	// While the database is away the sweep fails every second: one line
	// every 10 s says so, with how many were left out.
	failures := logevery.New(10 * time.Second)
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		// An expiry sweep that has begun is not cut short by shutdown, which
		// would only turn it into an error in the log; it takes expireBudget at
		// most, and a backlog (a start after a long stop: hundreds of
		// thousands overdue, 90 s of chunks) goes on at the next ticks, so
		// that the purge and a shutdown do not wait for all of it.
		now := wallclock.Now()
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), expireBudget)
		n, err := st.ExpireCommands(ectx, now)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil // the rest at the next tick
		}
		if err != nil {
			if ok, skipped := failures.Allow("expire", time.Now()); ok {
				log.Error("expire commands", "err", err, "more_like_it", skipped)
			}
		} else if n > 0 {
			log.Info("commands expired", "count", n)
		}
		if purging || time.Since(lastPurge) > time.Hour { // on the monotonic clock, which no step of the wall's moves
			if !purging {
				lastPurge = time.Now()
			}
			purging = purge(ctx, st, log, now, keepDispatches)
		}
	}
}

// expireBudget bounds an expiry sweep's work per tick.
const expireBudget = 2 * time.Second

// purgeBudget bounds a purge's work per sweep.
const purgeBudget = 2 * time.Second

// purge deletes what is past its retention, for purgeBudget at most, and
// tells whether there is more.
func purge(ctx context.Context, st *store.Store, log *slog.Logger, now time.Time, keepDispatches time.Duration) (more bool) {
	ctx, cancel := context.WithTimeout(ctx, purgeBudget)
	defer cancel()
	out := func(what string, err error) bool {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return true // out of budget: go on at the next sweep
		}
		if err != nil && ctx.Err() == nil {
			log.Error("purge "+what, "err", err)
		}
		return false
	}
	if _, err := st.PurgeIdempotency(ctx, now.Add(-IdempotencyWindow)); err != nil {
		return out("idempotency records", err)
	}
	if keepDispatches > 0 {
		n, err := st.PurgeDispatches(ctx, now.Add(-keepDispatches))
		if n > 0 {
			log.Info("old dispatches purged", "count", n, "older_than", keepDispatches)
		}
		if err != nil {
			return out("old dispatches", err)
		}
	}
	return false
}

// detailText is an ack's detail as text: a string as it is, anything else
// (a number, an object) as its JSON, nothing for null or no detail.
func detailText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, raw) // raw is valid JSON: it was decoded
	return compact.String()
}

// parseAt reads a message's "at": an RFC 3339 time, or nil for anything else
// (absent, null, a number, another format). A player's time is only a hint
// (for the logs, and to order replayed statuses), so a message is never
// refused for it.
func parseAt(raw json.RawMessage) *time.Time {
	var at time.Time
	if len(raw) == 0 || json.Unmarshal(raw, &at) != nil || at.IsZero() {
		return nil
	}
	return &at
}
