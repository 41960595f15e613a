package actions

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// recorder is a Publisher that notes the order of what it is given, per topic.
type recorder struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *recorder) Publish(topic string, payload []byte, _ bool, done func(error)) {
	r.mu.Lock()
	r.got[topic] = append(r.got[topic], string(payload))
	r.mu.Unlock()
	done(nil)
}

func (r *recorder) Connected() bool { return true }

// recordingDelivery is a Delivery on a new store, whose publishes rec notes.
func recordingDelivery(t *testing.T) (*Delivery, *store.Store, *Presence, *recorder) {
	t.Helper()
	st := tempStore(t)
	log := slog.New(slog.DiscardHandler)
	presence := NewPresence(st, log, true)
	rec := &recorder{got: map[string][]string{}}
	return NewDelivery(st, rec, Topics{Prefix: "dh"}, presence, log), st, presence, rec
}

// startMarker runs dl's marker until the test ends.
func startMarker(t *testing.T, dl *Delivery) {
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { dl.runMarker(context.Background(), stop); close(stopped) }()
	t.Cleanup(func() { close(stop); <-stopped })
}

// TestLargeBatchKeepsEachDevicesOrder: a batch large enough to go out on several
// goroutines still hands each device's commands to the broker in their order,
// and once it has, its marks are written.
func TestLargeBatchKeepsEachDevicesOrder(t *testing.T) {
	dl, _, presence, rec := recordingDelivery(t)
	var marked sync.Map
	dl.Marker = markerFunc(func(ids []string) {
		for _, id := range ids {
			marked.Store(id, true)
		}
	})
	startMarker(t, dl)

	const devices, each = 100, 3 // 300 commands: more than one goroutine sends
	now := time.Now().UTC()
	var cmds []store.Command
	for k := range each {
		for d := range devices {
			id := fmt.Sprintf("d%03d", d)
			presence.Subscribed(id)
			cmds = append(cmds, store.Command{ID: fmt.Sprintf("%s-%d", id, k), DeviceID: id,
				Payload: fmt.Sprint(k), ExpiresAt: now.Add(time.Minute)})
		}
	}
	if len(cmds) < sendersFrom {
		t.Fatalf("%d commands go out on one goroutine", len(cmds))
	}
	dl.sendAll(cmds, false, now)

	for d := range devices {
		topic := fmt.Sprintf("dh/devices/d%03d/commands", d)
		if got := fmt.Sprint(rec.got[topic]); got != "[0 1 2]" {
			t.Fatalf("%s got %s, want [0 1 2]", topic, got)
		}
	}
	for _, c := range cmds {
		if _, ok := marked.Load(c.ID); !ok {
			t.Fatalf("%s not marked published when the batch had gone out", c.ID)
		}
	}
}

// queuedDispatch registers devices d0000, d0001, ... and stores a dispatch with
// a queued command to each (id "c" + device, payload the device's id).
func queuedDispatch(t *testing.T, st *store.Store, devices int) *store.NewDispatch {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "dispatch", ActionID: "a", ActionName: "a", EventID: "evt",
		Function: LoadURL, Method: "POST", Targets: devices, CreatedAt: now}}
	for i := range devices {
		id := fmt.Sprintf("d%04d", i)
		if err := st.CreateDevice(ctx, &store.Device{ID: id, Name: id, TokenHash: "h" + id, MosquittoHash: "m",
			CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		nd.Commands = append(nd.Commands, store.Command{ID: "c" + id, DispatchID: "dispatch", DeviceID: id,
			State: store.StateQueued, Function: LoadURL, Payload: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	return nd
}

// tempStore opens a store on a new SQLite file, closed when the test ends.
func tempStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// createDevice registers a device with id in st, for commands to target.
func createDevice(t *testing.T, st *store.Store, id string) {
	t.Helper()
	now := time.Now().UTC()
	if err := st.CreateDevice(context.Background(), &store.Device{ID: id, Name: id, TokenHash: "h-" + id, MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

type markerFunc func(ids []string)

func (f markerFunc) MarkPublished(_ context.Context, ids []string, _ time.Time) error {
	f(ids)
	return nil
}

// runDelivery runs a Delivery on st that publishes to a recorder, with
// devices online (all before Run starts: it finds them come online
// together) and no resync, until stop; a page, if not 0, is its reads'.
func runDelivery(t *testing.T, st *store.Store, devices []string, page int) (dl *Delivery, rec *recorder, stop func()) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	presence := NewPresence(st, log, true)
	if err := presence.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec = &recorder{got: map[string][]string{}}
	dl = NewDelivery(st, rec, Topics{Prefix: "dh"}, presence, log)
	if page > 0 {
		dl.page = page
	}
	for _, id := range devices {
		presence.Subscribed(id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { dl.Run(ctx, time.Hour); close(ran) }()
	return dl, rec, sync.OnceFunc(func() { cancel(); <-ran })
}

// TestReconnectStormSendsWhatWaits: devices that come online together, more than
// one query's worth, each get the command that waited for them, once.
func TestReconnectStormSendsWhatWaits(t *testing.T) {
	st := tempStore(t)
	const devices = 2500
	queuedDispatch(t, st, devices)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%04d", i)
	}
	_, rec, stop := runDelivery(t, st, ids, 0)
	defer stop()

	testenv.WaitFor(t, 10*time.Second, "every device to get its command", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.got) == devices
	})
	time.Sleep(100 * time.Millisecond) // anything sent twice would show by now
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := range devices {
		id := fmt.Sprintf("d%04d", i)
		if got := rec.got["dh/devices/"+id+"/commands"]; len(got) != 1 || got[0] != id {
			t.Fatalf("%s got %q, want its command once", id, got)
		}
	}
}

// TestABacklogGoesOutPageAfterPage: what waits for devices that come online,
// more than a read's page, goes out at once, page after page, each device's
// in order and once; it waited for the next resync, 30 s later, a page at a
// time, and expired meanwhile (a backlog of 354,000 commands went out at
// 10,000 every 30 s).
func TestABacklogGoesOutPageAfterPage(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	const devices, each = 30, 20 // 600 commands, pages of 50
	now := time.Now().UTC()
	var nds []*store.NewDispatch
	for k := range each {
		nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: fmt.Sprintf("x%02d", k), ActionID: "a", ActionName: "a", EventID: "evt",
			Function: LoadURL, Method: "POST", Targets: devices, CreatedAt: now.Add(time.Duration(k) * time.Millisecond)}}
		for d := range devices {
			id := fmt.Sprintf("d%02d", d)
			if k == 0 {
				createDevice(t, st, id)
			}
			nd.Commands = append(nd.Commands, store.Command{ID: fmt.Sprintf("c%s-%02d", id, k), DispatchID: nd.Dispatch.ID, DeviceID: id,
				State: store.StateQueued, Function: LoadURL, Payload: fmt.Sprint(k), CreatedAt: nd.Dispatch.CreatedAt, ExpiresAt: now.Add(time.Hour)})
		}
		nds = append(nds, nd)
	}
	if _, err := st.WriteDispatches(ctx, nds); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, devices)
	for d := range ids {
		ids[d] = fmt.Sprintf("d%02d", d)
	}
	dl, rec, stop := runDelivery(t, st, ids, 50)
	defer stop()

	sent := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, got := range rec.got {
			n += len(got)
		}
		return n
	}
	testenv.WaitFor(t, 10*time.Second, "the backlog to go out", func() bool { return sent() >= devices*each })
	time.Sleep(100 * time.Millisecond) // anything sent twice would show by now
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := make([]string, each)
	for k := range each {
		want[k] = fmt.Sprint(k)
	}
	for d := range devices {
		topic := fmt.Sprintf("dh/devices/d%02d/commands", d)
		if got := rec.got[topic]; !slices.Equal(got, want) {
			t.Fatalf("%s got %q, want each once, in order", topic, got)
		}
	}
	stop()
	if len(dl.reads) != 0 {
		t.Fatalf("%d reads left", len(dl.reads))
	}
}

// Reads of what waits go one after the other: a resync's, of queued
// commands only, waits for a reconnected device's read, of those published
// before and never acked too, so that the device gets its older commands
// first.
func TestReadsGoOneAfterTheOther(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	createDevice(t, st, "d0")
	now := time.Now().UTC()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "x", ActionID: "a", ActionName: "a", EventID: "evt",
		Function: LoadURL, Method: "POST", Targets: 1, CreatedAt: now}}
	var published []string
	for k := range 10 {
		id := fmt.Sprintf("c%02d", k)
		nd.Commands = append(nd.Commands, store.Command{ID: id, DispatchID: "x", DeviceID: "d0", State: store.StateQueued,
			Function: LoadURL, Payload: fmt.Sprint(k), CreatedAt: now.Add(time.Duration(k) * time.Millisecond), ExpiresAt: now.Add(time.Hour)})
		if k < 5 {
			published = append(published, id)
		}
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	// The first five went to an earlier session of the player, unacked.
	if err := st.MarkPublished(ctx, published, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	dl, _, presence, rec := recordingDelivery(t)
	dl.st = st
	dl.page = 3
	presence.Subscribed("d0")
	dl.do(ctx, work{devices: []string{"d0"}}) // come online: its first page
	dl.do(ctx, work{resync: true})            // a resync meanwhile
	for len(dl.reads) > 0 {
		dl.readNext(ctx)
	}
	if got := fmt.Sprint(rec.got["dh/devices/d0/commands"]); got != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("the device got %s", got)
	}
}

// A desired state that could not be read is published again at the next
// resync, not left stale in the broker for every player that restarts.
func TestUnreadableDesiredStateIsPublishedAtTheNextResync(t *testing.T) {
	dl, _, _, _ := recordingDelivery(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the read fails
	dl.publishDesired(ctx, []string{"d1"})
	if !dl.missed.Load() {
		t.Fatal("a failed read of desired states did not ask for the next resync to publish them all")
	}
}

// Reads cut short by shutdown are no errors: what they would have sent stays
// in the store for the next start, and the log says nothing of it.
func TestShutdownCutsReadsShortQuietly(t *testing.T) {
	st := tempStore(t)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	dl := NewDelivery(st, &recorder{got: map[string][]string{}}, Topics{Prefix: "dh"}, NewPresence(st, log, true), log)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dl.sendPending(ctx, &pendingRead{devices: []string{"d1"}, states: queuedOrUnacked}, time.Now())
	dl.publishDesired(ctx, []string{"d1"})
	if logged.Len() > 0 {
		t.Fatalf("shutdown's cut-short reads were logged:\n%s", logged.String())
	}
}

// flaky is a Publisher that fails the first publish of each payload (the
// broker dropped it), and records what it took.
type flaky struct {
	mu       sync.Mutex
	failed   map[string]bool
	took     []string
	failedAt time.Time // the last failure
	tookAt   time.Time // the last publish taken
}

func (f *flaky) Publish(_ string, payload []byte, _ bool, done func(error)) {
	f.mu.Lock()
	first := !f.failed[string(payload)]
	f.failed[string(payload)] = true
	if first {
		f.failedAt = time.Now()
	} else {
		f.took = append(f.took, string(payload))
		f.tookAt = time.Now()
	}
	f.mu.Unlock()
	if first {
		done(fmt.Errorf("dropped"))
		return
	}
	done(nil)
}

func (f *flaky) Connected() bool { return true }

// TestDroppedResendIsRetried: a command published to a device's earlier
// session and never acked is sent again when the device reconnects; if the
// broker drops that send, it is retried like a queued one, not left to expire.
func TestDroppedResendIsRetried(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	now := time.Now().UTC()
	createDevice(t, st, "d1")
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "dispatch", ActionID: "a", ActionName: "a", EventID: "evt",
		Function: LoadURL, Method: "POST", Targets: 2, CreatedAt: now}}
	for _, id := range []string{"published", "queued"} {
		nd.Commands = append(nd.Commands, store.Command{ID: id, DispatchID: "dispatch", DeviceID: "d1",
			State: store.StateQueued, Function: LoadURL, Payload: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkPublished(ctx, []string{"published"}, now); err != nil { // sent to an earlier session
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	presence := NewPresence(st, log, true)
	pub := &flaky{failed: map[string]bool{}}
	dl := NewDelivery(st, pub, Topics{Prefix: "dh"}, presence, log)
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { dl.Run(runCtx, time.Hour); close(ran) }() // no resync: only the retry sends again
	defer func() { cancel(); <-ran }()
	presence.Subscribed("d1")
	testenv.WaitFor(t, 5*time.Second, "both commands sent again after the broker dropped them", func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return len(pub.took) == 2
	})
	// Sent again after retryFirst, not a whole retryMax later: a slow
	// client's write queue drains in milliseconds.
	pub.mu.Lock()
	gap := pub.tookAt.Sub(pub.failedAt)
	pub.mu.Unlock()
	if gap >= retryMax-100*time.Millisecond {
		t.Fatalf("sent again %v after the broker dropped it, want about %v", gap, retryFirst)
	}
}

// What the broker did not take is sent again soon (a slow client's write queue
// drains in milliseconds), then less often while failures go on, and soon
// again once they stopped for a while.
func TestRetriesBackOff(t *testing.T) {
	var b backoff
	now := time.Unix(1_800_000_000, 0)
	var waits []time.Duration
	for range 6 { // failures in a row: each retry's sends fail again
		w := b.next(now)
		waits = append(waits, w)
		now = now.Add(w)
		b.retried(now)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if w := b.next(now.Add(retryMax / 2)); w != retryMax {
		t.Fatalf("a failure soon after a retry waits %v, want %v", w, retryMax)
	}
	if w := b.next(now.Add(retryMax + time.Millisecond)); w != retryFirst {
		t.Fatalf("a failure after a quiet second waits %v, want %v", w, retryFirst)
	}
}

// failingMarker is a PublishedMarker whose writes fail.
type failingMarker struct{}

func (failingMarker) MarkPublished(context.Context, []string, time.Time) error {
	return fmt.Errorf("disk full")
}

// TestSentIsForgottenOnceMarked: delivery remembers a send, so that a resync, a
// device served as come online or a retry does not send a command again to the
// same session, only until the command's mark is committed (its state and
// published time then tell); while marks fail, it keeps remembering.
func TestSentIsForgottenOnceMarked(t *testing.T) {
	for _, marks := range []string{"written", "failing"} {
		t.Run(marks, func(t *testing.T) {
			ctx := context.Background()
			dl, st, presence, rec := recordingDelivery(t)
			if marks == "failing" {
				dl.Marker = failingMarker{}
			}
			const devices = 10
			nd := queuedDispatch(t, st, devices)
			for _, c := range nd.Commands {
				presence.Subscribed(c.DeviceID)
			}

			dl.sendAll(nd.Commands, false, time.Now().UTC()) // after the devices came online
			stop, stopped := make(chan struct{}), make(chan struct{})
			go func() { dl.runMarker(ctx, stop); close(stopped) }()
			close(stop) // it writes what it holds, then stops
			<-stopped
			dl.do(ctx, work{resync: true})
			// Then the same devices are served as come online (a came-online
			// batch still waiting when the trigger's commands went out), and a
			// retry of what the broker refused picks the commands up too.
			ids, retry := make([]string, 0, devices), map[string]string{}
			for _, c := range nd.Commands {
				ids, retry[c.ID] = append(ids, c.DeviceID), c.DeviceID
			}
			dl.do(ctx, work{devices: ids})
			dl.do(ctx, work{retry: retry})

			want := 0
			if marks == "failing" {
				want = devices // still queued: the resync found them, and sent none again
			}
			if len(dl.sent) != want {
				t.Errorf("delivery remembers %d sends, want %d", len(dl.sent), want)
			}
			if marks == "failing" {
				// While the tracker holds acks the database refused, no send is
				// forgotten: an acked command is not sent again after sentFor.
				held := true
				dl.AcksHeld = func() bool { return held }
				later := time.Now().Add(sentFor + time.Minute)
				dl.pruneSent(later)
				if len(dl.sent) != devices {
					t.Errorf("with acks held, delivery forgot sends: %d left of %d", len(dl.sent), devices)
				}
				held = false // written: their commands are settled now
				dl.pruneSent(later.Add(10 * time.Second))
				if len(dl.sent) != 0 {
					t.Errorf("once the acks are written, delivery still remembers %d sends past sentFor", len(dl.sent))
				}
			}
			for i := range devices {
				id := fmt.Sprintf("d%04d", i)
				if got := rec.got["dh/devices/"+id+"/commands"]; len(got) != 1 {
					t.Fatalf("%s got %q, want its command once", id, got)
				}
			}
		})
	}
}

// TestHandOverAfterAReadIsNotSentAgain: a resync (or a device come online)
// can read a trigger's commands from the database between the round's commit
// and delivery taking the trigger's hand-over. The read sends them; their marks
// land; then the hand-over comes, with the commands as committed (queued): they
// are not sent again. A new session of the device still gets them.
func TestHandOverAfterAReadIsNotSentAgain(t *testing.T) {
	ctx := context.Background()
	dl, st, presence, rec := recordingDelivery(t)
	const devices = 300 // a read this large writes its marks before it returns
	nd := queuedDispatch(t, st, devices)
	for _, c := range nd.Commands {
		presence.Subscribed(c.DeviceID)
	}
	startMarker(t, dl)
	flushMarks := func() { reply := make(chan struct{}); dl.flushMarks <- reply; <-reply }

	for _, w := range []work{{resync: true}, {cmds: nd.Commands}} {
		dl.do(ctx, w)
	}
	// A small read, whose marks the marker writes in its own time.
	nd2 := queuedDispatch2(t, st, "d0000", "second")
	dl.do(ctx, work{devices: []string{"d0000"}})
	flushMarks()
	dl.do(ctx, work{cmds: nd2.Commands})
	// d0001 connects again: its new session gets its command once more, but
	// only once, though the database keeps the first session's publish time.
	// (Here the hand-over comes after the new session began.)
	nd3 := queuedDispatch2(t, st, "d0001", "third")
	dl.do(ctx, work{devices: []string{"d0001"}})
	flushMarks()
	time.Sleep(time.Millisecond)
	presence.Subscribed("d0001")
	dl.do(ctx, work{cmds: nd3.Commands})
	flushMarks()
	dl.do(ctx, work{devices: []string{"d0001"}})

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := range devices {
		topic := fmt.Sprintf("dh/devices/d%04d/commands", i)
		want := []string{fmt.Sprintf("d%04d", i)}
		switch i {
		case 0:
			want = append(want, "second")
		case 1:
			want = []string{"d0001", "third", "third", "d0001"} // the new session's: the hand-over's, then the rest
		}
		if got := rec.got[topic]; !slices.Equal(got, want) {
			t.Fatalf("%s was sent %q, want %q", topic, got, want)
		}
	}
}

// queuedDispatch2 writes another dispatch, id, of one command to device,
// whose id and payload are id too.
func queuedDispatch2(t *testing.T, st *store.Store, device, id string) *store.NewDispatch {
	t.Helper()
	now := time.Now().UTC()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: id, ActionID: "a", ActionName: "a", EventID: "evt",
		Function: LoadURL, Method: "POST", Targets: 1, CreatedAt: now}}
	nd.Commands = []store.Command{{ID: id, DispatchID: id, DeviceID: device,
		State: store.StateQueued, Function: LoadURL, Payload: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}}
	if _, err := st.WriteDispatches(context.Background(), []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	return nd
}

// Deleting a device does not wait for room in delivery's queue (full during
// a large fan-out, or for ever once delivery has stopped): the clear of its
// retained messages goes with the next work the sender takes.
func TestForgetDoesNotWaitForAFullQueue(t *testing.T) {
	dl, _, _, rec := recordingDelivery(t)
	for dl.work.Push(work{}) { // nothing takes: the queue fills
	}
	forgot := make(chan struct{})
	go func() { dl.Forget("gone-1"); close(forgot) }()
	select {
	case <-forgot:
	case <-time.After(5 * time.Second):
		t.Fatal("Forget waited for room in a full queue")
	}
	dl.do(context.Background(), work{}) // the sender's next work
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, kind := range []string{KindDesired, KindStatus} {
		if got := rec.got["dh/devices/gone-1/"+kind]; len(got) != 1 || got[0] != "" {
			t.Errorf("%s of the deleted device: %q, want one empty retained message", kind, got)
		}
	}
}

// A sweep that fails every time (the database away) is one line in the log
// per 10 s, not one per sweep.
func TestFailingSweepsAreLoggedSparingly(t *testing.T) {
	st := tempStore(t)
	st.Close() // every sweep fails from now on
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	RunSweeper(ctx, st, log, 10*time.Millisecond, 0) // returns at ctx's end
	if n := strings.Count(logged.String(), `msg="expire commands"`); n != 1 {
		t.Fatalf("%d lines for about 30 failed sweeps:\n%s", n, logged.String())
	}
}
