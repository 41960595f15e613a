package actions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// IdempotencyWindow is how long a repeat with the same idempotency key and API key
// answers with the first call's response.
const IdempotencyWindow = 24 * time.Hour

// Trigger is one call of a webhook, authenticated and matched to its action.
type Trigger struct {
	Action         *store.Action
	APIKeyID       string // empty for a test fired from the admin UI
	APIKeyPrefix   string
	Method         string
	Source         string
	SensorData     map[string]any // the request's sensor_data, for sensor_event actions
	IdempotencyKey string
	Wait           time.Duration // how long to wait for the devices' acks (0: do not wait)
}

// Accepted is the success answer of a webhook call (CONTRACT §1).
type Accepted struct {
	Message    string `json:"message"`
	DispatchID string `json:"dispatch_id"`
	EventID    string `json:"event_id"`
	Function   string `json:"function"`
	Targets    int    `json:"targets"`
}

// Outcome is what Trigger did: the answer, whether it replays an earlier call, and,
// if the caller waited, the commands' states when the wait ended.
type Outcome struct {
	Accepted
	Replayed bool
	Commands []store.Command // only when Trigger.Wait > 0: nil if they could not be read, empty for no devices
	Settled  bool            // every command reached a final state within the wait
}

// CommandSink takes committed commands for delivery; it must not block.
type CommandSink interface {
	Enqueue(cmds []store.Command)
	DesiredChanged(deviceIDs []string)
}

// DispatcherConfig tunes a Dispatcher.
type DispatcherConfig struct {
	MaxTargets int           // refuse a trigger that would reach more devices (0: no cap)
	QueueWait  time.Duration // how long a trigger may wait for the writer before 503
	// MaxBatch bounds the jobs (triggers, mark, ack or request-log batches) of
	// one round (default 32). Under many concurrent triggers, rounds of 32 go
	// in turn: one round's callers are answered and call again while the next
	// round commits, rather than all of them waiting on one round and coming
	// back together (measured with 64 connections: +14 % triggers a second
	// against 256, the same p99; see docs/benchmark-history.md). A fan-out is one job
	// whatever its size.
	MaxBatch int
	// Linger is how long the writer, when busy, waits for more jobs before it
	// commits (default 2ms; negative: never). A commit costs about as much as
	// writing a dozen triggers, so under load fuller rounds mean more triggers per
	// CPU second (measured: -20% CPU per trigger, +35% throughput at 3ms against
	// none). The wait ends early once no job has come for lingerGap: the burst
	// that made the writer busy is over. A call after a quiet round never waits,
	// and the linger counts from when the round's oldest job came, so no job
	// waits more than Linger for company: jobs that queued while the last round
	// was written have waited already (at 6,500 triggers/s: p50 -10 %, the p99
	// lower, +2 % CPU per trigger).
	Linger time.Duration
}

// jobQueue is how many jobs may wait for the writer; past it, a trigger waits
// for room (QueueWait at most, then 503).
const jobQueue = 1024

// lingerGap ends the writer's linger when no job has come for that long: below
// about 2,500 triggers a second, company is no longer likely. Measured against
// no gap (three pairs of short benchmark runs): the half-rate median 4.1-4.2 ms
// against 4.8-5.5 ms, with the same CPU per trigger and throughput.
const lingerGap = 400 * time.Microsecond

// Dispatcher turns triggers into durable dispatches and commands. One writer
// goroutine commits the triggers that arrived while the previous commit ran in a
// single transaction (group commit), so the durable write per call is shared
// without any caller getting its 200 before its own rows are on disk.
//
// The same writer records what the broker took (published marks, from Delivery)
// and what devices acked (from the Tracker, if it is given the Dispatcher as its
// Writer), and the request log's records (if it is its Writer): the whole trigger
// path then commits once per round, and its writers never wait on each other's
// database locks.
type Dispatcher struct {
	st    *store.Store
	sink  CommandSink
	acks  *AckWaiters
	log   *slog.Logger
	cfg   DispatcherConfig
	jobs  chan *writeJob
	clock func() time.Time
	gap   time.Duration // lingerGap; a field so that a test can lengthen it

	// closed is set once Run has stopped taking jobs; later ones are written
	// directly. Submitters hold the read lock while they hand a job over.
	mu     sync.RWMutex
	closed bool

	// The writes' outcomes, for health and metrics.
	writeFailures atomic.Int64 // jobs whose write failed
	// Writes are failing while failedRounds is past clearedAt: a round that
	// works, or a probe that does (WriteFailing), moves clearedAt up to the
	// failures it saw, never past a newer one.
	failedRounds atomic.Int64
	clearedAt    atomic.Int64
	probedAt     atomic.Int64 // the last probe's start, as time.Since(processStart); 0: none yet
}

// WriteFailures counts the jobs (triggers, marks, acks) the database did not take;
// the request log's are its own to count.
func (d *Dispatcher) WriteFailures() int64 { return d.writeFailures.Load() }

// processStart is what probes are timed from, on the monotonic clock, which
// no step of the wall clock moves (one back held them off for as long).
var processStart = time.Now()

// WriteFailing tells whether the database refuses writes (a full disk, say)
// though it may still answer reads: whether the writer's last round failed,
// and a small write tried now fails too. Without it, a failure would last
// until the next trigger, which a load balancer that took this instance out
// for it would never send.
//
// Probes take 2 s at most and come once a second at most, however many
// health checks ask: they write while writes struggle.
func (d *Dispatcher) WriteFailing(ctx context.Context) bool {
	failed := d.failedRounds.Load()
	if d.clearedAt.Load() >= failed {
		return false
	}
	last, now := d.probedAt.Load(), int64(time.Since(processStart))
	if last != 0 && now-last < int64(time.Second) || !d.probedAt.CompareAndSwap(last, now) {
		return true // probed a moment ago, or another health check probes now
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := d.st.ProbeWrite(ctx); err != nil {
		return true
	}
	d.clear(failed)
	return d.failedRounds.Load() > failed // a round failed during the probe: newer news
}

// clear notes that writes worked after the first failed failures.
func (d *Dispatcher) clear(failed int64) {
	for {
		c := d.clearedAt.Load()
		if c >= failed || d.clearedAt.CompareAndSwap(c, failed) {
			return
		}
	}
}

// writeJob is one thing for the writer to commit: a trigger, a set of published
// marks, a batch of acks, or a batch of request-log records.
type writeJob struct {
	nd       *store.NewDispatch
	marks    *store.Published
	acks     []store.Ack
	requests []store.RequestLog
	queued   time.Time // when it was handed to the writer

	dup     bool
	applied []bool
	err     error
	done    chan struct{}
}

// weight is how many rows the job writes, to bound a round's transaction.
func (j *writeJob) weight() int {
	switch {
	case j.nd != nil:
		return 1 + len(j.nd.Commands)
	case j.marks != nil:
		return len(j.marks.IDs)
	case j.requests != nil:
		return len(j.requests)
	}
	return len(j.acks)
}

// NewDispatcher returns a Dispatcher; call Run to start its writer.
func NewDispatcher(st *store.Store, sink CommandSink, acks *AckWaiters, log *slog.Logger, cfg DispatcherConfig) *Dispatcher {
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 32
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	d := &Dispatcher{
		st: st, sink: sink, acks: acks, log: log, cfg: cfg,
		jobs:  make(chan *writeJob, jobQueue),
		clock: wallclock.Now,
		gap:   lingerGap,
	}
	return d
}

// Trigger records the trigger and its commands durably, hands the commands to
// delivery, and answers. With an idempotency key already used by the same API key
// within the window, it answers with the first response and sends nothing: the
// key is claimed in the trigger's own transaction. A caller looks for a repeat
// first (Replay), before it looks up the action: a repeat answers as the first
// call did even if the action changed since, and costs no write.
func (d *Dispatcher) Trigger(ctx context.Context, t Trigger) (*Outcome, error) {
	a := t.Action
	if !a.Enabled { // whichever way it came: the webhook and the UI's test say so first, in their words
		return nil, Errorf(CodeUnknownEvent, "the action %q is disabled", a.Name)
	}
	params, err := commandParams(t)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, targetsTimeout)
	devices, err := d.targets(tctx, a)
	cancel()
	if err != nil {
		return nil, err
	}
	if d.cfg.MaxTargets > 0 && len(devices) > d.cfg.MaxTargets {
		err := Errorf(CodeUnavailable, "this action targets %d devices, over the limit of %d per dispatch", len(devices), d.cfg.MaxTargets)
		err.Final = true
		return nil, err
	}

	now := d.clock()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{
		ID: newID(), ActionID: a.ID, ActionName: a.Name, EventID: a.EventID, Function: a.Function,
		APIKeyID: t.APIKeyID, APIKeyPrefix: t.APIKeyPrefix, Method: t.Method, Source: t.Source,
		Targets: len(devices), CreatedAt: now,
	}}
	nd.Commands, err = buildCommands(nd.Dispatch.ID, a, params, devices, now)
	if err != nil {
		return nil, err
	}
	if nd.Desired, err = DesiredChange(a.Function, params); err != nil {
		return nil, err
	}
	acc := Accepted{Message: "success", DispatchID: nd.Dispatch.ID, EventID: a.EventID, Function: a.Function, Targets: len(devices)}
	if t.IdempotencyKey != "" {
		resp, _ := json.Marshal(acc)
		nd.Idempotency = &store.Idempotency{
			APIKeyID: t.APIKeyID, Key: t.IdempotencyKey, DispatchID: nd.Dispatch.ID, Response: string(resp),
			Fingerprint: Fingerprint(a.EventID, t.SensorData), CreatedAt: now,
		}
		nd.IdempotencySince = now.Add(-IdempotencyWindow)
	}

	// Watch before the write: once committed, a later round may supersede
	// these commands at once, and settle them before this call would run on.
	var watch *AckWatch
	if t.Wait > 0 && len(nd.Commands) > 0 {
		watch = d.acks.Watch(commandIDs(nd.Commands))
		defer watch.Close()
	}
	dup, err := d.write(ctx, nd)
	if err != nil {
		return nil, err
	}
	if dup { // a concurrent call with the same key won
		out, err := d.Replay(ctx, t.APIKeyID, t.IdempotencyKey, a.EventID, t.SensorData)
		if out == nil && err == nil {
			err = unavailable("replay", fmt.Errorf("idempotency key %q taken but no record found", t.IdempotencyKey))
		}
		return out, err
	}

	// The writer has handed the commands to delivery (handOver).
	out := &Outcome{Accepted: acc}
	switch {
	case watch != nil:
		// An expired command is final too, but nothing acks it: the wait ends
		// once the sweeper has had time to mark the commands expired.
		wait := min(t.Wait, max(0, time.Until(nd.Commands[0].ExpiresAt)+expirySlack))
		out.Settled = watch.Wait(ctx, wait)
		// The trigger is stored: the answer is 200 whatever this read does,
		// without the commands if it fails, or takes longer than
		// readAfterWait (a locked table): the caller has waited enough.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readAfterWait)
		out.Commands, err = d.st.DispatchCommands(rctx, nd.Dispatch.ID)
		cancel()
		if err != nil {
			d.log.Error("read commands after wait", "dispatch", nd.Dispatch.ID, "err", err)
			out.Commands = nil // not known, rather than none
		}
		out.Settled = out.Settled || err == nil && allFinal(out.Commands)
	case t.Wait > 0:
		out.Settled, out.Commands = true, []store.Command{} // no devices: nothing to wait for
	}
	return out, nil
}

// targetsTimeout bounds the read of a group's or every device's ids: a call
// is answered 503 then, rather than held as long as a lock on the table.
const targetsTimeout = 5 * time.Second

// readAfterWait bounds the read of a dispatch's commands after a wait.
const readAfterWait = 2 * time.Second

// expirySlack is how long after its expiry a command is marked expired: the
// sweeper runs every second (RunSweeper in serve).
const expirySlack = 2 * time.Second

// allFinal tells whether every command has reached a final state.
func allFinal(cmds []store.Command) bool {
	for _, c := range cmds {
		if store.IsOpen(c.State) {
			return false
		}
	}
	return true
}

// Replay returns the first answer to a call with this idempotency key by this API
// key within the window, or nil if there was none. The key must come with the
// same request (event and sensor data), or the call is refused.
func (d *Dispatcher) Replay(ctx context.Context, apiKeyID, key, eventID string, sensor map[string]any) (*Outcome, error) {
	rec, err := d.st.IdempotentResponse(ctx, apiKeyID, key, d.clock().Add(-IdempotencyWindow))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("read idempotency record", err)
	}
	// A record written before fingerprints were kept has none: take it as
	// this request's (it expires within the window anyway). One written
	// before they were of the command's sensor data has the data as it came.
	if rec.Fingerprint != "" && rec.Fingerprint != Fingerprint(eventID, sensor) && rec.Fingerprint != fingerprint(eventID, sensor) {
		return nil, Invalid("idempotency_key", "was already used with a different request; use a new key for a new call")
	}
	out := &Outcome{Replayed: true}
	if err := json.Unmarshal([]byte(rec.Response), &out.Accepted); err != nil {
		return nil, fmt.Errorf("actions: stored response: %w", err)
	}
	return out, nil
}

// Fingerprint identifies what a call asks for (its event and sensor data), so a
// reused idempotency key can be told from a repeat of the same call. Sensor
// data is taken as the command would carry it: forms that make the same
// command ("id": 12 and "id": "12"; a value left out, null or "") are one request.
func Fingerprint(eventID string, sensor map[string]any) string {
	if p, err := SensorParams(sensor); err == nil {
		sensor = p
	}
	return fingerprint(eventID, sensor)
}

// fingerprint is Fingerprint of the sensor data as given: the fingerprint of
// builds before 2026-11-25, whose records a repeat may meet for a day after
// the upgrade (Replay takes either; the old one can go once no such build runs).
func fingerprint(eventID string, sensor map[string]any) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	if sensor != nil {
		h.Write([]byte{0})
		_ = json.NewEncoder(h).Encode(sensor) // map keys come out sorted
	}
	return hex.EncodeToString(h.Sum(nil))
}

// commandParams returns the params the commands carry, encoded: the request's
// sensor data for a sensor_event action, else the action's fixed ones as stored
// (validated and encoded when the action was saved: decoding them and encoding
// them again for each trigger would give the same text).
func commandParams(t Trigger) (json.RawMessage, error) {
	if t.Action.Function == SensorEvent {
		p, err := SensorParams(t.SensorData)
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	}
	if s := t.Action.Params; s != "" && s != "null" {
		return json.RawMessage(s), nil
	}
	return json.RawMessage("{}"), nil
}

func (d *Dispatcher) targets(ctx context.Context, a *store.Action) ([]string, error) {
	var (
		ids []string
		err error
	)
	switch a.TargetType {
	case TargetDevice:
		// Deleting a device that an action targets is refused, so it exists.
		return []string{a.TargetID}, nil
	case TargetGroup:
		ids, err = d.st.GroupDeviceIDs(ctx, a.TargetID)
	case TargetAll:
		ids, err = d.st.DeviceIDs(ctx)
	default:
		return nil, fmt.Errorf("actions: action %s has target type %q", a.ID, a.TargetType)
	}
	if err != nil {
		return nil, unavailable("resolve targets", err)
	}
	return ids, nil
}

// encodedCommand is a CommandMessage whose params are already encoded.
type encodedCommand struct {
	ID         string          `json:"id"`
	DispatchID string          `json:"dispatch_id"`
	Function   string          `json:"function"`
	Params     json.RawMessage `json:"params"`
	IssuedAt   time.Time       `json:"issued_at"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
}

func buildCommands(dispatchID string, a *store.Action, params json.RawMessage, devices []string, now time.Time) ([]store.Command, error) {
	expires := now.Add(time.Duration(a.TTLSeconds) * time.Second)
	// Commands differ only in their id: encode the message once and splice each
	// id in (a fan-out to every device would otherwise encode it thousands of times).
	msg := encodedCommand{DispatchID: dispatchID, Function: a.Function, Params: params, IssuedAt: now, ExpiresAt: &expires}
	tmpl, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("actions: encode command: %w", err)
	}
	const head = `{"id":""`
	if !bytes.HasPrefix(tmpl, []byte(head)) {
		return nil, fmt.Errorf("actions: encode command: unexpected encoding %.40s", tmpl)
	}
	tail := string(tmpl[len(head):])
	cmds := make([]store.Command, len(devices))
	for i, dev := range devices {
		id := newID() // a UUID: nothing to escape
		cmds[i] = store.Command{
			ID: id, DispatchID: dispatchID, DeviceID: dev, State: store.StateQueued,
			Function: a.Function, Payload: `{"id":"` + id + `"` + tail, CreatedAt: now, ExpiresAt: expires,
		}
	}
	return cmds, nil
}

// write hands nd to the writer and waits until it is committed (or failed).
func (d *Dispatcher) write(ctx context.Context, nd *store.NewDispatch) (dup bool, err error) {
	j := &writeJob{nd: nd, done: make(chan struct{})}
	if err := d.submit(ctx, j); err != nil {
		return false, err
	}
	if j.err != nil {
		return false, unavailable("write dispatch", j.err)
	}
	return j.dup, nil
}

// MarkPublished records that the broker took these commands, in the writer's next
// round; it returns once they are committed.
func (d *Dispatcher) MarkPublished(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	j := &writeJob{marks: &store.Published{IDs: ids, At: at}, done: make(chan struct{})}
	if err := d.submit(ctx, j); err != nil {
		return err
	}
	return j.err
}

// WriteRequestLogs records webhook calls in the writer's next round; it returns
// once they are committed. It makes the Dispatcher the request log's writer: on
// SQLite a second writer would hold the one write lock, and the triggers waiting
// behind it, for a transaction of its own.
func (d *Dispatcher) WriteRequestLogs(ctx context.Context, rs []store.RequestLog) error {
	if len(rs) == 0 {
		return nil
	}
	j := &writeJob{requests: rs, done: make(chan struct{})}
	if err := d.submit(ctx, j); err != nil {
		return err
	}
	return j.err
}

// ApplyAcks settles commands from device acks in the writer's next round;
// applied[i] tells whether acks[i] changed anything. It makes the Dispatcher a
// Tracker's Writer.
func (d *Dispatcher) ApplyAcks(ctx context.Context, acks []store.Ack) ([]bool, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	j := &writeJob{acks: acks, done: make(chan struct{})}
	if err := d.submit(ctx, j); err != nil {
		return nil, err
	}
	return j.applied, j.err
}

// submit queues j for the writer and waits until it is done. Once Run has
// stopped, the job is written here directly.
func (d *Dispatcher) submit(ctx context.Context, j *writeJob) error {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		d.commit([]*writeJob{j})
		return nil
	}
	// Other jobs give up after QueueWait (a trigger is answered 503); the
	// request log's wait their turn, as a refusal would have it try each
	// record alone through the same full queue.
	var timeout <-chan time.Time
	if j.requests == nil {
		timer := time.NewTimer(d.cfg.QueueWait)
		defer timer.Stop()
		timeout = timer.C
	}
	j.queued = time.Now()
	select {
	case d.jobs <- j:
		d.mu.RUnlock()
	case <-timeout:
		d.mu.RUnlock()
		return Errorf(CodeUnavailable, "too many triggers in flight; try again shortly")
	case <-ctx.Done():
		d.mu.RUnlock()
		return Errorf(CodeUnavailable, "request ended before the trigger was accepted")
	}
	// Once queued, wait for the commit whatever the caller does: the write is
	// bounded by the writer's own timeout, and the caller must learn its outcome.
	<-j.done
	return nil
}

// Run commits queued jobs until ctx ends, each round in one transaction. Stop
// HTTP first, so no trigger is left waiting; jobs queued when ctx ends are still
// committed.
func (d *Dispatcher) Run(ctx context.Context) {
	linger, gap := time.NewTimer(time.Hour), time.NewTimer(time.Hour)
	linger.Stop()
	gap.Stop()
	busy := false // the last round had company: more jobs are likely coming
	for {
		var first *writeJob
		select {
		case first = <-d.jobs:
		case <-ctx.Done():
			d.stop()
			return
		}
		batch := []*writeJob{first}
		weight := first.weight()
		full := func() bool { return len(batch) >= d.cfg.MaxBatch || weight >= maxRoundRows }
	fill:
		for !full() {
			select {
			case j := <-d.jobs:
				batch = append(batch, j)
				weight += j.weight()
			default:
				break fill
			}
		}
		// The linger counts from when the round's oldest job came: jobs that
		// queued while the last round was written have waited already.
		if left := time.Until(first.queued.Add(d.cfg.Linger)); busy && d.cfg.Linger > 0 && left > 0 && !full() {
			linger.Reset(left)
			gap.Reset(d.gap)
		wait:
			for !full() {
				select {
				case j := <-d.jobs:
					batch = append(batch, j)
					weight += j.weight()
					gap.Reset(d.gap)
				case <-gap.C:
					break wait
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
			gap.Stop()
		}
		busy = len(batch) > 1
		d.commit(batch)
	}
}

// maxRoundRows bounds the rows one round writes, so that a fan-out to every
// device does not hold the database for long.
const maxRoundRows = 20000

// stop closes the writer to new jobs, committing those already queued (and any
// that arrive while it waits for submitters to leave).
func (d *Dispatcher) stop() {
	locked := make(chan struct{})
	go func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(locked)
	}()
	for {
		select {
		case j := <-d.jobs:
			d.commit([]*writeJob{j})
		case <-locked:
			for {
				select {
				case j := <-d.jobs:
					d.commit([]*writeJob{j})
				default:
					return
				}
			}
		}
	}
}

// roundTimeout bounds a round of the writer, its retries included.
const roundTimeout = 10 * time.Second

// commit writes a round in one transaction and tells each job its outcome.
func (d *Dispatcher) commit(batch []*writeJob) {
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	superseded, err := d.writeRound(ctx, batch)
	if err != nil && len(batch) > 1 {
		// One bad job must not fail the others: retry one by one, within the
		// round's deadline. If the first two fail as well, the database is down
		// (or too slow): the rest fail with them now, instead of each taking a
		// timeout of its own while the callers wait.
		for i := range batch {
			ids, err := d.writeRound(ctx, batch[i:i+1])
			superseded = append(superseded, ids...)
			if err != nil && i == 1 && batch[0].err != nil {
				for _, j := range batch[2:] {
					j.err = err
				}
				break
			}
		}
	}
	// Across the whole round, retries included: a job retried alone may
	// supersede another's command, whose trigger must not send it.
	if len(superseded) > 0 {
		d.superseded(batch, superseded)
	}
	for _, j := range batch {
		if j.nd != nil && j.err == nil && !j.dup {
			d.handOver(j.nd)
		}
	}
	// The request log's records count for neither the failures nor the
	// health: a round of them alone would otherwise clear a failure of the
	// triggers' writes that goes on.
	failed, counted := 0, 0
	for _, j := range batch {
		if j.requests == nil {
			counted++
			if j.err != nil {
				failed++
			}
		}
		close(j.done)
	}
	d.writeFailures.Add(int64(failed))
	switch {
	case counted == 0:
	case failed == counted:
		d.failedRounds.Add(1)
	default:
		d.clear(d.failedRounds.Load())
	}
}

// writeRound writes jobs in one transaction, sets each one's outcome, and
// returns the commands the jobs' desired changes superseded.
func (d *Dispatcher) writeRound(ctx context.Context, batch []*writeJob) ([]string, error) {
	var (
		b     store.Batch
		index = make([]int, len(batch)) // a trigger's index in b.Dispatches, or its acks' offset in b.Acks
	)
	for i, j := range batch {
		switch {
		case j.nd != nil:
			index[i] = len(b.Dispatches)
			b.Dispatches = append(b.Dispatches, j.nd)
		case j.marks != nil:
			b.Published = append(b.Published, *j.marks)
		case j.requests != nil:
			b.Requests = append(b.Requests, j.requests...)
		default:
			index[i] = len(b.Acks)
			b.Acks = append(b.Acks, j.acks...)
		}
	}
	res, err := d.st.WriteBatch(ctx, &b)
	if err != nil {
		res.Superseded = nil // rolled back with the rest
	}
	for i, j := range batch {
		j.err = err
		if err == nil {
			switch {
			case j.nd != nil:
				j.dup = res.Dup[index[i]]
			case j.acks != nil:
				j.applied = res.Applied[index[i] : index[i]+len(j.acks)]
			case j.requests != nil:
				j.err = res.Requests
			}
		}
	}
	return res.Superseded, err
}

// handOver gives delivery a committed trigger's commands, on the writer, so
// in the order of the rounds: a later round may supersede these commands at
// once, and its own must go out after them, not before (the trigger's call
// would run on only after that round). A command a later trigger of the same
// round superseded is final already, and not sent.
func (d *Dispatcher) handOver(nd *store.NewDispatch) {
	open := make([]store.Command, 0, len(nd.Commands))
	for _, c := range nd.Commands {
		if c.State == store.StateQueued {
			open = append(open, c)
		}
	}
	d.sink.Enqueue(open)
	if nd.Desired != nil && len(nd.Commands) > 0 {
		d.sink.DesiredChanged(deviceIDs(nd.Commands))
	}
}

// superseded settles the commands a round's desired changes replaced: a call
// waiting for their acks stops waiting, and those of this round's triggers
// are not handed to delivery (Trigger sends only queued commands).
func (d *Dispatcher) superseded(batch []*writeJob, ids []string) {
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
		d.acks.Settled(id)
	}
	for _, j := range batch {
		if j.nd == nil {
			continue
		}
		for k := range j.nd.Commands {
			if c := &j.nd.Commands[k]; gone[c.ID] {
				c.State = store.StateExpired
			}
		}
	}
}

// unavailable is a failure of the database (or another part the caller cannot
// fix) while accepting a trigger: the caller gets the coded error, and the
// handler that answers logs the cause once.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w (%s: %w)", Errorf(CodeUnavailable, "the trigger could not be accepted for delivery; try again"), op, err)
}

func deviceIDs(cmds []store.Command) []string {
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.DeviceID
	}
	return ids
}

func commandIDs(cmds []store.Command) []string {
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.ID
	}
	return ids
}

// newID returns a time-ordered UUIDv7, which keeps B-tree inserts cheap.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// NewID returns a new time-ordered id for stored objects.
func NewID() string { return newID() }
