package actions

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"devicehooks/store"
)

// When a round fails and its jobs are written one by one, a job may
// supersede another's command in the database: that trigger must not send it
// (its command is marked expired in memory too), as within a round that works.
func TestSupersedeSurvivesARetriedRound(t *testing.T) {
	st := tempStore(t)
	now := time.Now().UTC()
	createDevice(t, st, "d1")
	d := NewDispatcher(st, nopSink{}, NewAckWaiters(), slog.New(slog.DiscardHandler), DispatcherConfig{})
	job := func(id, function string) *writeJob {
		nd := &store.NewDispatch{
			Dispatch: store.Dispatch{ID: id, ActionID: "a", ActionName: "a", EventID: "e", Function: function, Method: "POST", Targets: 1, CreatedAt: now},
			Commands: []store.Command{{ID: id + "-c", DispatchID: id, DeviceID: "d1", State: store.StateQueued, Function: function,
				Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}},
		}
		if function != "restart" {
			nd.Desired, _ = DesiredChange(function, nil)
		}
		return &writeJob{nd: nd, done: make(chan struct{})}
	}
	// A dispatch id already taken makes the third job, and so the round, fail.
	taken := job("taken", "restart")
	d.commit([]*writeJob{taken})
	pause, resume, poison := job("pause", PauseLoop), job("resume", ResumeLoop), job("taken", "restart")
	d.commit([]*writeJob{pause, resume, poison})
	if pause.err != nil || resume.err != nil || poison.err == nil {
		t.Fatalf("outcomes: pause %v, resume %v, poison %v", pause.err, resume.err, poison.err)
	}
	if got := pause.nd.Commands[0].State; got != store.StateExpired {
		t.Fatalf("the superseded pause command is %s in memory, want expired (its trigger would send it)", got)
	}
	if got := resume.nd.Commands[0].State; got != store.StateQueued {
		t.Fatalf("the resume command is %s", got)
	}
}

// While the writer's queue is full, a published mark gives up after QueueWait
// (a trigger would be answered 503), but the request log's records wait their
// turn: refused, it would try each record alone through the same full queue.
func TestRequestLogWaitsForAFullWriter(t *testing.T) {
	st := tempStore(t)
	d := NewDispatcher(st, nil, NewAckWaiters(), slog.New(slog.DiscardHandler),
		DispatcherConfig{QueueWait: 20 * time.Millisecond, MaxBatch: 1})
	for range cap(d.jobs) { // the writer is behind: its queue is full
		d.jobs <- &writeJob{marks: &store.Published{IDs: []string{"none"}, At: time.Now()}, done: make(chan struct{})}
	}
	ctx := context.Background()
	if err := d.MarkPublished(ctx, []string{"c1"}, time.Now()); err == nil {
		t.Fatal("a mark queued behind a full writer")
	}
	written := make(chan error, 1)
	go func() {
		written <- d.WriteRequestLogs(ctx, []store.RequestLog{{ID: "r1", At: time.Now().UTC(), Method: "POST", Status: 200, Code: "success"}})
	}()
	select {
	case err := <-written:
		t.Fatalf("the request log gave up on a full writer: %v", err)
	case <-time.After(10 * d.cfg.QueueWait):
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { d.Run(runCtx); close(ran) }()
	defer func() { cancel(); <-ran }()
	if err := <-written; err != nil {
		t.Fatalf("once the writer caught up: %v", err)
	}
	if rs, _, err := st.RequestLogs(ctx, store.RequestFilter{}, store.Page{Limit: 10}); err != nil || len(rs) != 1 {
		t.Fatalf("request logs: %v %v", rs, err)
	}
}

// markJob is a published mark of no command, handed to the writer at queued.
func markJob(queued time.Time) *writeJob {
	return &writeJob{marks: &store.Published{IDs: []string{"none"}, At: time.Now()}, queued: queued, done: make(chan struct{})}
}

// runBusy starts d's writer after a round with company (two jobs queued
// together), so that it lingers for the next one; it stops at the test's end.
func runBusy(t *testing.T, d *Dispatcher) {
	burst := []*writeJob{markJob(time.Now()), markJob(time.Now())}
	for _, j := range burst {
		d.jobs <- j
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { d.Run(ctx); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran })
	for _, j := range burst {
		<-j.done
	}
}

// A busy writer waits for company (Linger), but not once the jobs stop coming:
// a trigger after a burst is committed lingerGap after the last job, not a
// whole Linger later.
func TestLingerEndsWhenJobsStopComing(t *testing.T) {
	d := NewDispatcher(tempStore(t), nil, NewAckWaiters(), slog.New(slog.DiscardHandler),
		DispatcherConfig{Linger: 30 * time.Second})
	runBusy(t, d)
	late := markJob(time.Now())
	d.jobs <- late
	select {
	case <-late.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer lingered for company that did not come")
	}
}

// The linger counts from when the round's oldest job came: a job that waited
// behind the last round is not held another Linger.
func TestLingerCountsFromTheOldestJob(t *testing.T) {
	d := NewDispatcher(tempStore(t), nil, NewAckWaiters(), slog.New(slog.DiscardHandler),
		DispatcherConfig{Linger: 30 * time.Second})
	d.gap = time.Minute // only the linger's deadline can end a round
	runBusy(t, d)
	old := markJob(time.Now().Add(-d.cfg.Linger)) // it has waited a whole Linger already
	d.jobs <- old
	select {
	case <-old.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a job that had waited a whole Linger was held for another")
	}
}

type nopSink struct{}

func (nopSink) Enqueue([]store.Command) {}
func (nopSink) DesiredChanged([]string) {}

// d1Dispatcher is a Dispatcher, not running, on a store with the device d1,
// that hands its commands to the returned sink.
func d1Dispatcher(t *testing.T) (*Dispatcher, *recordingSink) {
	st := tempStore(t)
	createDevice(t, st, "d1")
	sink := &recordingSink{}
	return NewDispatcher(st, sink, NewAckWaiters(), slog.New(slog.DiscardHandler), DispatcherConfig{}), sink
}

// d1Action is an enabled action of function on the device d1.
func d1Action(id, function, params string, ttlSeconds int) *store.Action {
	now := time.Now().UTC()
	return &store.Action{ID: id, Name: id, EventID: id, Function: function, TargetType: TargetDevice, TargetID: "d1",
		Params: params, Enabled: true, TTLSeconds: ttlSeconds, CreatedAt: now, UpdatedAt: now}
}

// recordingSink remembers the commands handed to delivery, in order.
type recordingSink struct {
	mu   sync.Mutex
	sent []store.Command
}

func (r *recordingSink) Enqueue(cmds []store.Command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, cmds...)
}

func (r *recordingSink) DesiredChanged([]string) {}

func (r *recordingSink) dispatches() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, c := range r.sent {
		ids = append(ids, c.DispatchID)
	}
	return ids
}

// A call that waits for its emergency's ack is answered once a newer change
// supersedes the command, even when the newer change's round commits before
// the waiting call runs on after its own round; and the superseded command,
// if it goes out at all, goes out before the newer one.
func TestWaitEndsWhenALaterRoundSupersedes(t *testing.T) {
	ctx := context.Background()
	d, sink := d1Dispatcher(t)
	action := func(id, params string) *store.Action { return d1Action(id, SetEmergency, params, 3600) }
	type result struct {
		out *Outcome
		err error
	}
	waited := make(chan result, 1)
	go func() {
		out, err := d.Trigger(ctx, Trigger{Action: action("on", `{"enabled":true,"message":"Evacuate"}`), Method: "POST", Wait: 30 * time.Second})
		waited <- result{out, err}
	}()
	// The waiting call's round is committed (what commit does before it tells
	// the call), but the call is not told yet.
	on := <-d.jobs
	if _, err := d.writeRound(ctx, []*writeJob{on}); err != nil {
		t.Fatal(err)
	}
	d.handOver(on.nd)
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { d.Run(runCtx); close(ran) }()
	defer func() { cancel(); <-ran }()
	off, err := d.Trigger(ctx, Trigger{Action: action("off", `{"enabled":false}`), Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	close(on.done)
	select {
	case r := <-waited:
		if r.err != nil || !r.out.Settled || len(r.out.Commands) != 1 || r.out.Commands[0].State != store.StateExpired {
			t.Fatalf("the superseded wait: %+v %v", r.out, r.err)
		}
		if got, want := r.out.Commands[0].Detail, "superseded by dispatch "+off.DispatchID; got != want {
			t.Fatalf("detail %q, want %q", got, want)
		}
		if got, want := strings.Join(sink.dispatches(), " "), r.out.DispatchID+" "+off.DispatchID; got != want {
			t.Fatalf("handed to delivery: %s, want %s (the superseded command first)", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call still waits after a newer change superseded its command")
	}
}

// A round's commands are handed to delivery before its calls are told, so
// before the next round: what a later round supersedes goes out first, if at
// all, never after what superseded it.
func TestCommitHandsOverBeforeTheCallRunsOn(t *testing.T) {
	ctx := context.Background()
	d, sink := d1Dispatcher(t)
	answered := make(chan error, 1)
	go func() {
		_, err := d.Trigger(ctx, Trigger{Method: "POST", Action: d1Action("a", RefreshContent, "{}", 60)})
		answered <- err
	}()
	j := <-d.jobs
	d.commit([]*writeJob{j})
	if got := len(sink.dispatches()); got != 1 { // at once: the call may not have run on yet
		t.Fatalf("%d commands handed to delivery when the round was committed, want 1", got)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if got := len(sink.dispatches()); got != 1 {
		t.Fatalf("%d commands handed to delivery, want 1", got)
	}
}

// A disabled action fires by no path: the dispatcher refuses it itself, and
// writes and sends nothing.
func TestADisabledActionDoesNotFire(t *testing.T) {
	d, sink := d1Dispatcher(t)
	a := d1Action("a", RefreshContent, "{}", 60)
	a.Enabled = false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // nothing writes: a call that reached the writer would wait
	defer cancel()
	if _, err := d.Trigger(ctx, Trigger{Method: "POST", Action: a}); ErrorCode(err) != CodeUnknownEvent {
		t.Fatalf("a disabled action: %v", err)
	}
	select {
	case j := <-d.jobs:
		t.Fatalf("a disabled action was queued for writing: %+v", j)
	default:
	}
	if got := len(sink.dispatches()); got != 0 {
		t.Fatalf("%d commands handed to delivery", got)
	}
}
