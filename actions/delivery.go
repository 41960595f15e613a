package actions

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"devicehooks/internal/queue"
	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// Publisher is the MQTT side as delivery needs it. Both the embedded broker's
// inline client and the external-broker client satisfy it.
type Publisher interface {
	// Publish sends payload at QoS 1 and calls done once the broker has taken it
	// (nil) or it failed; done may run on another goroutine, or before Publish returns.
	Publish(topic string, payload []byte, retained bool, done func(error))
	// Connected reports whether publishing can succeed now.
	Connected() bool
}

// Unconfirmed is implemented by a Publisher that can tell how many messages a
// device's player has been sent and not yet acknowledged at the MQTT level: the
// embedded broker. Delivery then keeps each device within sendWindow.
type Unconfirmed interface {
	Unconfirmed(device string) int
}

// Delivery sends committed commands to online devices and records what the broker
// acknowledged. The database is the outbox: a command that cannot be sent now stays
// queued there, and goes out when its device comes online or the broker is back,
// unless it expires first. Each device's commands go out in order (a large batch
// is spread over a few goroutines, by device), at most sendWindow of them
// unacknowledged where the broker tells; what the broker took is marked
// published in batches.
type Delivery struct {
	st       *store.Store
	pub      Publisher
	topics   Topics
	presence *Presence
	log      *slog.Logger
	clock    func() time.Time

	work  *queue.Queue[work]
	marks *queue.Queue[mark]
	// flushMarks asks the marker to write the marks it holds, and is answered
	// by closing the channel sent.
	flushMarks chan chan struct{}
	// Marker writes the published marks: the Dispatcher, whose writer commits
	// them with the triggers (set it before Run); the store if nil.
	Marker PublishedMarker
	// sent remembers when each command handed over by its trigger went out, so
	// a command reaches one session of a device once even if a resync and a
	// reconnect both pick it up before it is marked published. Only the sender
	// goroutine uses it (and picked). A command is
	// forgotten once its mark is committed, from when its published_at tells
	// the same (see due), or after sentFor if the mark failed: at 7,000
	// triggers a second, keeping every send for sentFor made this map and its
	// ids 45 % of the live heap, and the garbage collector's every cycle that
	// much longer.
	sent map[string]time.Time
	// picked remembers, until sentFor, the recent commands sent from a read
	// of the database (a resync, a device come online, a retry) rather than
	// from their trigger's hand-over: the hand-over may come after such a read,
	// with the command as it was committed (queued). Forgotten with its mark,
	// it went out twice: 278 times in a benchmark run on PostgreSQL, each
	// time a resync fell between a round's commit and delivery taking it.
	picked    map[string]time.Time
	lastPrune time.Time
	// landed takes, from the marker, the commands whose marks it has
	// written, a batch at a time. A batch it has no room for only stays in
	// sent until sentFor.
	landed *queue.Queue[[]string]
	missed atomic.Bool // a work item was dropped: resynchronise from the database
	// forgets holds deleted devices whose retained messages the sender has
	// yet to clear: Forget never waits for room in work.
	forgetMu sync.Mutex
	forgets  []string

	// OnPublished, if set, is called when the broker has taken a command.
	OnPublished func(commandID string, at time.Time)
	// reads are the reads of what waits in the database that have pages
	// left to send (sendPending), sent a page at a time by Run between its
	// other work; page is how many commands a page holds (pendingPage).
	reads []*pendingRead
	page  int

	// AcksHeld, if set, tells whether the tracker holds acks the database
	// refused (a full disk). Meanwhile no send is forgotten: a command whose
	// mark failed with them may have its ack among them, and is not sent
	// again to the session that acked it.
	AcksHeld func() bool
	// failed takes the commands the broker did not take; the sender forgets
	// having sent them and sends their devices' queued commands again shortly.
	failed  chan failedSend
	lastErr atomic.Value // publishError: the last publish failure, for the log
	// fanOut holds a channel closed once the large batch being sent has gone to
	// the broker and been marked published (nil when none is being sent).
	fanOut atomic.Pointer[chan struct{}]

	// window is pub's Unconfirmed, if it has one (nil: nothing is held). held
	// keeps, in order, each device's commands that wait for room in its
	// window, and heldIDs their ids; heldMu guards both, since a large
	// batch's senders hold on several goroutines. heldDevices is len(held)
	// and heldCommands len(heldIDs), read without the lock: a fan-out's
	// senders skip it while none is held, and the metrics read Held.
	window       Unconfirmed
	heldMu       sync.Mutex
	held         map[string][]heldCmd
	heldIDs      map[string]struct{}
	heldDevices  atomic.Int32
	heldCommands atomic.Int64
}

// heldCmd is a command held back for its device's session since.
type heldCmd struct {
	cmd   store.Command
	since time.Time
}

// mark says the broker took a command at a time.
type mark struct {
	id string
	at time.Time
}

// PublishedMarker records that the broker took commands.
type PublishedMarker interface {
	MarkPublished(ctx context.Context, ids []string, at time.Time) error
}

type work struct {
	cmds       []store.Command
	desired    []string          // device ids whose desired state changed
	devices    []string          // devices that came online: send what waits, unacked too
	resync     bool              // broker (re)connected or work was dropped: send all that waits
	retry      map[string]string // commands the broker did not take, and their devices: send them and their devices' queued ones again
	allDesired bool              // publish every device's desired state again
}

// NewDelivery returns a Delivery; Run starts it.
func NewDelivery(st *store.Store, pub Publisher, topics Topics, presence *Presence, log *slog.Logger) *Delivery {
	dl := &Delivery{
		st: st, pub: pub, topics: topics, presence: presence, log: log,
		clock:      wallclock.Now,
		work:       queue.New[work](8192),
		marks:      queue.New[mark](markQueue),
		flushMarks: make(chan chan struct{}),
		sent:       map[string]time.Time{},
		picked:     map[string]time.Time{},
		page:       pendingPage,
		landed:     queue.New[[]string](markQueue),
		failed:     make(chan failedSend, 4096),
		held:       map[string][]heldCmd{},
		heldIDs:    map[string]struct{}{},
	}
	dl.window, _ = pub.(Unconfirmed)
	return dl
}

// failedSend is a command the broker did not take.
type failedSend struct{ id, device string }

// publishError wraps an error so that atomic.Value always holds one type.
type publishError struct{ err error }

// The sender waits retryFirst before it sends again what the broker did not
// take: a slow client's full write queue drains meanwhile (mochi's 256 commands
// at 10,000 a second go out in 25 ms; a whole second made the benchmark's
// single player see some commands 1 s late). Each retry in a row waits twice as
// long as the last, up to retryMax, so a broker that keeps refusing is tried
// once a second; a failure more than retryMax after the last retry starts again
// from retryFirst.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = time.Second
)

// backoff spaces the sender's retries (retryFirst, retryMax).
type backoff struct {
	wait time.Duration // before the next retry
	last time.Time     // when the last retry went out
}

// next is how long to wait before retrying a failure seen at now.
func (b *backoff) next(now time.Time) time.Duration {
	if b.wait == 0 || now.Sub(b.last) > retryMax {
		b.wait = retryFirst
	}
	return b.wait
}

// retried records a retry sent at now.
func (b *backoff) retried(now time.Time) {
	b.last = now
	b.wait = min(2*b.wait, retryMax)
}

// Enqueue takes committed commands. It never blocks: if the queue is full the
// commands stay queued in the database and the next resync sends them.
func (dl *Delivery) Enqueue(cmds []store.Command) { dl.offer(work{cmds: cmds}) }

// DesiredChanged publishes the desired state of these devices again.
func (dl *Delivery) DesiredChanged(ids []string) { dl.offer(work{desired: ids}) }

// BrokerConnected sends everything that waits and republishes desired states; call
// it when the connection to the broker is (re)established.
func (dl *Delivery) BrokerConnected() { dl.offer(work{resync: true, allDesired: true}) }

func (dl *Delivery) offer(w work) {
	if !dl.work.Push(w) {
		dl.missed.Store(true)
		if len(w.desired) > 0 || w.allDesired {
			dl.log.Warn("delivery queue full; desired states will be republished on the next resync")
		}
	}
}

// Run sends until ctx ends. Every resyncEvery it also sends whatever waits in the
// database for online devices, which heals any missed hand-over.
func (dl *Delivery) Run(ctx context.Context, resyncEvery time.Duration) {
	// The marker stops after the sender, so that it writes every mark of the
	// last send, and a fan-out can ask it for its marks until the end.
	stopMarker, markerDone := make(chan struct{}), make(chan struct{})
	go func() { dl.runMarker(context.WithoutCancel(ctx), stopMarker); close(markerDone) }()
	defer func() { close(stopMarker); <-markerDone }()
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	failed := map[string]string{} // command id -> device, to send again at the retry
	var spacing backoff
	release := time.NewTimer(time.Hour) // held commands are looked at again
	release.Stop()
	releasing := false
	var (
		ws     []work
		online []string // devices that came online, not yet served
	)
	for {
		if ctx.Err() != nil {
			return
		}
		// While devices that came online wait, come back for them at once,
		// a batch at a time, between the other work.
		cameOnline := dl.presence.CameOnline()
		if len(online) > 0 {
			cameOnline = alwaysReady
		}
		if !releasing && dl.holding() {
			release.Reset(releaseEvery)
			releasing = true
		}
		// A read of what waits with pages left: the next page at once,
		// between the other work, until none is left.
		var reading chan struct{}
		if len(dl.reads) > 0 {
			reading = alwaysReady
		}
		select {
		case <-reading:
			dl.readNext(ctx)
		case <-release.C:
			releasing = false
			dl.release(dl.clock())
		case <-dl.work.Ready():
			ws = dl.work.Take(ws)
			for _, w := range ws {
				if ctx.Err() != nil {
					return
				}
				dl.do(ctx, w)
			}
			ws = queue.Reuse(ws, queue.Keep)
		case f := <-dl.failed:
			if len(failed) == 0 {
				retry.Reset(spacing.next(time.Now()))
			}
			for more := true; more; {
				delete(dl.sent, f.id) // so that it is sent again
				delete(dl.picked, f.id)
				failed[f.id] = f.device
				select {
				case f = <-dl.failed:
				default:
					more = false
				}
			}
		case <-retry.C:
			last, _ := dl.lastErr.Load().(publishError)
			dl.log.Warn("the broker did not take some commands; sending them again", "commands", len(failed), "err", last.err)
			spacing.retried(time.Now())
			dl.do(ctx, work{retry: failed})
			failed = map[string]string{}
		case <-cameOnline:
			// Send what waits for devices that just came online, including
			// commands published before but never acked (devices dedupe by
			// id), onlineBatch devices at a time: a reconnect storm's
			// commands are not loaded all at once. More are taken only
			// once fewer than a batch wait here, so that presence's
			// bound holds the backlog.
			if len(online) < onlineBatch {
				online = dl.presence.TakeCameOnline(online)
			}
			n := min(len(online), onlineBatch)
			if n > 0 {
				dl.do(ctx, work{devices: online[:n:n]})
			}
			rest := copy(online, online[n:])
			clear(online[rest:])
			if online = online[:rest]; rest == 0 {
				online = queue.Reuse(online, queue.Keep)
			}
		case <-t.C:
			missed := dl.missed.Swap(false)
			dl.do(ctx, work{resync: true, allDesired: missed})
		case <-ctx.Done():
			return
		}
	}
}

func (dl *Delivery) do(ctx context.Context, w work) {
	now := dl.clock()
	// Marks committed before this point are seen by the reads below: what
	// they made published is no longer picked up as queued, and where it is
	// picked up as published, its published_at says which session got it.
	for _, ids := range dl.landed.Take(nil) {
		for _, id := range ids {
			delete(dl.sent, id)
		}
	}
	dl.pruneSent(now)
	dl.sendAll(w.cmds, false, now)
	if len(w.devices) > 0 {
		dl.sendPending(ctx, &pendingRead{devices: w.devices, states: queuedOrUnacked}, now)
	}
	if len(w.retry) > 0 {
		// What the broker dropped may be a command published before and sent
		// again to a new session: take the published ones too, but send only
		// those that failed, not every older one still unacked.
		devices := slices.Compact(slices.Sorted(maps.Values(w.retry)))
		dl.sendPending(ctx, &pendingRead{devices: devices, states: queuedOrUnacked, keep: func(c *store.Command) bool {
			_, dropped := w.retry[c.ID]
			return dropped || c.State == store.StateQueued
		}}, now)
	}
	if w.allDesired { // the broker is back (or work was dropped): a resync under way starts over
		dl.reads = slices.DeleteFunc(dl.reads, func(r *pendingRead) bool { return r.resync })
	}
	// Not while a resync's read still has pages: it would read those again.
	if w.resync && !slices.ContainsFunc(dl.reads, func(r *pendingRead) bool { return r.resync }) {
		dl.sendPending(ctx, &pendingRead{devices: dl.presence.OnlineIDs(), states: queued, resync: true}, now)
	}
	dl.forgetMu.Lock()
	forgets := dl.forgets
	dl.forgets = nil
	dl.forgetMu.Unlock()
	for _, id := range forgets {
		dl.clearRetained(id)
	}
	if w.allDesired {
		dl.publishDesired(ctx, nil)
	} else if len(w.desired) > 0 {
		dl.publishDesired(ctx, w.desired)
	}
}

// sendPending sends the unexpired commands that wait for r's devices in r's
// states. Its first page goes out now, unless other reads have pages left:
// Run sends those first, in turn, then the others, a page at a time between
// its other work (readNext). One after the other, a device's commands go out
// in order: a read of queued ones only (a resync) does not send newer ones
// before the unacked older ones another read is on its way to.
func (dl *Delivery) sendPending(ctx context.Context, r *pendingRead, now time.Time) {
	if len(r.devices) == 0 {
		return
	}
	if len(dl.reads) > 0 || dl.readPage(ctx, r, now) {
		r.devices = slices.Clone(r.devices) // the caller's may be reused (Run's came-online batch)
		dl.reads = append(dl.reads, r)
	}
}

// pendingRead is a read of the commands that wait for some devices, a page
// of pendingPage at a time, store.MaxPendingDevices devices at a time.
type pendingRead struct {
	devices []string                  // the devices whose commands are still to read, the first ones' being read
	states  []string                  // queued, or queuedOrUnacked for a device that reconnected
	keep    func(*store.Command) bool // which of them to send, if not all
	resync  bool                      // every online device's
	after   store.PendingAfter        // where the first devices' next page begins
}

// The states a read of what waits takes: queued commands, and for a device
// that reconnected those published before but never acked too.
var (
	queued          = []string{store.StateQueued}
	queuedOrUnacked = []string{store.StateQueued, store.StatePublished}
)

// pendingPage is how many commands a read of those that wait takes at a time.
const pendingPage = 10000

// readPage sends r's next page, and tells whether r has more. A read whose
// broker is away ends: the broker's return sends everything again.
func (dl *Delivery) readPage(ctx context.Context, r *pendingRead, now time.Time) (more bool) {
	if !dl.pub.Connected() {
		return false
	}
	chunk := r.devices[:min(len(r.devices), store.MaxPendingDevices)]
	cmds, err := dl.st.PendingCommands(ctx, chunk, r.states, now, r.after, dl.page)
	if err != nil {
		// Cut short by shutdown, it is no error: they stay queued in the
		// store, and the next start sends them.
		if ctx.Err() == nil {
			dl.log.Error("load pending commands", "err", err)
		}
		return false
	}
	if len(cmds) == dl.page { // these devices have more
		r.after = store.AfterCommand(&cmds[len(cmds)-1])
	} else {
		r.devices, r.after = r.devices[len(chunk):], store.PendingAfter{}
	}
	if r.keep != nil {
		cmds = slices.DeleteFunc(cmds, func(c store.Command) bool { return !r.keep(&c) })
	}
	dl.sendAll(cmds, true, now)
	return len(r.devices) > 0
}

// readNext sends the next page of the first read that has more.
func (dl *Delivery) readNext(ctx context.Context) {
	if !dl.readPage(ctx, dl.reads[0], dl.clock()) {
		dl.reads[0] = nil
		dl.reads = dl.reads[1:]
	}
}

// onlineBatch is how many devices that came online Run serves at a time.
const onlineBatch = 1000

// alwaysReady is a closed channel: a select case on it is always ready.
var alwaysReady = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// sendersFrom is the batch size from which sendAll publishes on several
// goroutines, and senders how many. One goroutine alone gets a small share of the
// CPU against the embedded broker's thousands of client goroutines: in a fan-out
// to 10,000 players on two cores, four brought the mean time until the last
// player had the command from 0.95 to 0.83 s (nine fan-outs each).
const (
	sendersFrom = 256
	senders     = 4
)

// sendAll publishes the commands due now. Each device's commands go out in their
// order in cmds, on one goroutine; a large batch is spread over senders
// goroutines by device, and sendAll returns when all are handed to the broker
// and, for a large batch, marked published (it runs under Run, whose marker
// writes the marks). read tells whether cmds were read from the database, or
// handed over by their triggers.
func (dl *Delivery) sendAll(cmds []store.Command, read bool, now time.Time) {
	due := make([]*store.Command, 0, len(cmds))
	for i := range cmds {
		if dl.due(&cmds[i], read, now) {
			due = append(due, &cmds[i])
		}
	}
	if len(due) < sendersFrom {
		for _, c := range due {
			dl.publish(c)
		}
		return
	}
	done := make(chan struct{})
	dl.fanOut.Store(&done)
	defer func() {
		// The marks first: an ack written in the same round or later then
		// finds its command's publish time recorded.
		reply := make(chan struct{})
		dl.flushMarks <- reply
		<-reply
		dl.fanOut.Store(nil)
		close(done)
	}()
	var shards [senders][]*store.Command
	for _, c := range due {
		k := maphash.String(deviceSeed, c.DeviceID) % senders
		shards[k] = append(shards[k], c)
	}
	var wg sync.WaitGroup
	for _, shard := range shards {
		wg.Go(func() {
			for _, c := range shard {
				dl.publish(c)
			}
		})
	}
	wg.Wait()
}

var deviceSeed = maphash.MakeSeed()

// Sending returns a channel closed once the large batch (a fan-out) being sent
// now has gone to the broker and been marked published, or nil if none is being
// sent. The writes a fan-out brings about (its published marks, its acks) wait
// for it, MaxHold at most: two cores are better spent getting the commands out
// first.
func (dl *Delivery) Sending() <-chan struct{} {
	if p := dl.fanOut.Load(); p != nil {
		return *p
	}
	return nil
}

// MaxHold bounds how long a write waits for a fan-out to go out.
const MaxHold = 2 * time.Second

// markQueue is how many published marks may wait for the marker, which takes
// them as they come except while it hands what it holds to the writer (during
// a long fan-out, round after round): past it, the publish's callback waits.
const markQueue = 65536

// markResolution: marks this close in time are written as one, with the first
// one's time.
const markResolution = 20 * time.Millisecond

// due tells whether to send c now: it is unexpired, its device is online, the
// broker is reachable, and this session of the device has not been sent it yet.
// It notes c as sent, in picked if it was read from the database.
func (dl *Delivery) due(c *store.Command, read bool, now time.Time) bool {
	since, online := dl.presence.OnlineSince(c.DeviceID)
	if !c.ExpiresAt.After(now) || !online || !dl.pub.Connected() {
		return false
	}
	if at, ok := dl.sent[c.ID]; ok && !at.Before(since) {
		return false // already sent to this session of the device
	}
	pickedAt, picked := dl.picked[c.ID]
	if picked && !pickedAt.Before(since) {
		return false
	}
	if c.State == store.StatePublished && c.PublishedAt != nil && !c.PublishedAt.Before(since) {
		// Published to this session, and forgotten by sent once its mark
		// landed: a device served as come online, or a retry, finds it. (A mark
		// carries the first time of its 20 ms group: a session that began
		// within those may get the command twice, which players drop by id.)
		return false
	}
	// A read's send is kept in picked while its trigger's hand-over may
	// still come (the command is recent; a backlog of older ones is not), and
	// so is a hand-over's send of a command a read sent to an earlier
	// session: the database keeps the first publish time, so nothing else
	// would tell, once the mark landed, that this session had it too.
	if picked || read && now.Sub(c.CreatedAt) < sentFor {
		dl.picked[c.ID] = now
	} else {
		dl.sent[c.ID] = now
	}
	return true
}

// sendWindow is how many commands a device's player may have unacknowledged
// (no PUBACK yet) before delivery holds its next ones back, where the broker
// tells (Unconfirmed). mochi queues at most 256 messages for a connection and
// drops what comes past that: a backlog sent at once to a player come back
// online, or a burst faster than its player reads, lost some, which were sent
// again after newer commands. Held, they go out in order as the player
// acknowledges what it has. Below 256, to leave room for the device's other
// messages (its desired state).
const sendWindow = 128

// maxHeld bounds the commands held for one device (a player that never
// acknowledges): past it, a command stays queued in the database, and a
// resync sends it once sent forgets it (sentFor).
const maxHeld = 10000

// releaseEvery is how often held commands are looked at while there are some:
// a player acknowledges 128 commands in a few milliseconds.
const releaseEvery = 5 * time.Millisecond

// publish hands c to the broker, or holds it (hold); safe on several
// goroutines at once, for different devices.
func (dl *Delivery) publish(c *store.Command) {
	if dl.window != nil && dl.hold(c) {
		return
	}
	dl.send(c)
}

// hold keeps c back, after the device's commands already held, if there are
// some or its player has sendWindow commands unacknowledged, and reports
// whether it did. Commands held for an earlier session of the device are let
// go first: they are still queued or unacked in the database, and the read for
// the new session sends them.
func (dl *Delivery) hold(c *store.Command) bool {
	// Only this goroutine holds for c's device now (sendAll's senders split
	// the devices; release runs apart from them).
	if dl.heldDevices.Load() == 0 && dl.window.Unconfirmed(c.DeviceID) < sendWindow {
		return false
	}
	dl.heldMu.Lock()
	defer dl.heldMu.Unlock()
	q := dl.held[c.DeviceID]
	if len(q) == 0 && dl.window.Unconfirmed(c.DeviceID) < sendWindow {
		return false
	}
	since, _ := dl.presence.OnlineSince(c.DeviceID)
	if len(q) > 0 && !q[0].since.Equal(since) {
		dl.letGo(c.DeviceID, q)
		q = nil
	}
	if _, ok := dl.heldIDs[c.ID]; ok {
		return true // held already: a read found it queued again
	}
	if len(q) >= maxHeld {
		return true
	}
	dl.held[c.DeviceID] = append(q, heldCmd{*c, since})
	dl.heldIDs[c.ID] = struct{}{}
	dl.counted()
	if len(q)+1 == maxHeld {
		dl.log.Warn("a player does not acknowledge its commands; its next ones wait in the database",
			"device", c.DeviceID, "held", maxHeld, "unacknowledged", dl.window.Unconfirmed(c.DeviceID))
	}
	return true
}

// letGo drops the commands held for a device (heldMu held).
func (dl *Delivery) letGo(device string, q []heldCmd) {
	for _, h := range q {
		delete(dl.heldIDs, h.cmd.ID)
	}
	delete(dl.held, device)
	dl.counted()
}

// counted updates heldDevices and heldCommands (heldMu held).
func (dl *Delivery) counted() {
	dl.heldDevices.Store(int32(len(dl.held)))
	dl.heldCommands.Store(int64(len(dl.heldIDs)))
}

// holding tells whether commands are held.
func (dl *Delivery) holding() bool { return dl.heldDevices.Load() > 0 }

// Held returns how many commands wait for room in their players' windows.
func (dl *Delivery) Held() int64 { return dl.heldCommands.Load() }

// release sends the held commands that their devices' windows have room for,
// in order. It runs on Run's goroutine (which owns sent), never beside
// sendAll's senders.
func (dl *Delivery) release(now time.Time) {
	dl.heldMu.Lock()
	defer dl.heldMu.Unlock()
	for device, q := range dl.held {
		since, online := dl.presence.OnlineSince(device)
		if !online || !q[0].since.Equal(since) {
			dl.letGo(device, q)
			continue
		}
		room := sendWindow - dl.window.Unconfirmed(device)
		n := 0
		for ; n < len(q) && room > 0; n++ {
			c := &q[n].cmd
			delete(dl.heldIDs, c.ID)
			if c.ExpiresAt.After(now) { // else the sweeper marks it expired
				// Noted as sent now: one held past sentFor was forgotten,
				// and a read before its mark lands would send it again.
				dl.sent[c.ID] = now
				dl.send(c)
				room--
			}
		}
		if n == len(q) {
			delete(dl.held, device)
			continue
		}
		clear(q[:n])
		dl.held[device] = q[n:]
	}
	dl.counted()
}

// send hands c to the broker; safe on several goroutines at once.
func (dl *Delivery) send(c *store.Command) {
	id, device := c.ID, c.DeviceID
	dl.pub.Publish(dl.topics.Device(device, KindCommands), []byte(c.Payload), false, func(err error) {
		if err != nil {
			dl.lastErr.Store(publishError{err})
			select {
			case dl.failed <- failedSend{id, device}:
			default: // too many at once: the periodic resync sends them
				dl.log.Warn("publish command", "command", id, "err", err)
				dl.missed.Store(true)
			}
			return
		}
		at := dl.clock()
		if dl.OnPublished != nil {
			dl.OnPublished(id, at)
		}
		dl.marks.PushWait(mark{id, at})
	})
}

// sentFor is how long a send whose mark was not written is remembered: the
// resync's interval, after which a command still queued is sent again.
const sentFor = 30 * time.Second

// pruneSent forgets sends whose marks failed, and those picked, sentFor after
// them, unless acks are held (AcksHeld).
func (dl *Delivery) pruneSent(now time.Time) {
	if now.Sub(dl.lastPrune) < 5*time.Second || dl.AcksHeld != nil && dl.AcksHeld() {
		return
	}
	dl.lastPrune = now
	for _, sent := range []map[string]time.Time{dl.sent, dl.picked} {
		for id, at := range sent {
			if now.Sub(at) > sentFor {
				delete(sent, id)
			}
		}
	}
	if len(dl.picked) == 0 {
		dl.picked = map[string]time.Time{} // a map keeps its largest size: let a burst's go
	}
}

func (dl *Delivery) publishDesired(ctx context.Context, ids []string) {
	if !dl.pub.Connected() {
		dl.missed.Store(true)
		return
	}
	devs, err := dl.st.DevicesWithDesired(ctx, ids)
	if err != nil {
		// The next resync publishes every desired state again: a retained one
		// left stale would be applied by every player that restarts. (Cut
		// short by shutdown, it is no error: the next start publishes them all.)
		if ctx.Err() == nil {
			dl.log.Error("load desired states; publishing them all again at the next resync", "err", err)
		}
		dl.missed.Store(true)
		return
	}
	for i := range devs {
		payload, err := json.Marshal(DesiredOf(&devs[i]))
		if err != nil {
			continue
		}
		dl.pub.Publish(dl.topics.Device(devs[i].ID, KindDesired), payload, true, func(err error) {
			if err != nil {
				dl.log.Warn("publish desired state", "err", err)
				dl.missed.Store(true)
			}
		})
	}
}

// Forget clears what the broker keeps of a deleted device: its retained
// desired state (a device created again with the same id would otherwise show
// the old emergency) and its retained status (which would bring the id back
// into presence). An empty retained message is MQTT's way to clear one; if the
// broker is away, the old ones stay.
//
// It runs on delivery's goroutine, after any desired state being published
// now, which could otherwise land after the clear, with the next work it
// takes. It does not wait: with the work queue full (a large fan-out), the
// clear goes with whatever the sender does next, at the latest the periodic
// resync.
func (dl *Delivery) Forget(deviceID string) {
	dl.forgetMu.Lock()
	dl.forgets = append(dl.forgets, deviceID)
	dl.forgetMu.Unlock()
	dl.offer(work{})
}

func (dl *Delivery) clearRetained(deviceID string) {
	for _, kind := range []string{KindDesired, KindStatus} {
		dl.pub.Publish(dl.topics.Device(deviceID, kind), nil, true, func(err error) {
			if err != nil {
				dl.log.Warn("clear a deleted device's retained message", "device", deviceID, "topic", kind, "err", err)
			}
		})
	}
}

// DesiredOf returns a device's desired-state document.
func DesiredOf(d *store.Device) DesiredMessage {
	m := DesiredMessage{
		Version:    d.DesiredVersion,
		Emergency:  EmergencyDesired{Enabled: d.EmergencyEnabled, Message: d.EmergencyMessage, URL: d.EmergencyURL},
		LoopPaused: d.LoopPaused,
	}
	if d.DesiredUpdatedAt != nil {
		m.UpdatedAt = d.DesiredUpdatedAt.UTC()
	}
	return m
}

// runMarker marks the commands the broker took published, many per statement,
// every markResolution; during a fan-out it holds them (MaxHold at most) until
// the fan-out asks for them. It writes what it holds and stops when stop closes.
func (dl *Delivery) runMarker(ctx context.Context, stop <-chan struct{}) {
	const maxBatch = 2000
	var (
		held      []mark
		heldSince time.Time // monotonic: when the oldest held mark was taken
	)
	drain := func() {
		if len(held) == 0 {
			heldSince = time.Now()
		}
		held = dl.marks.Take(held)
	}
	flush := func() {
		marker := dl.Marker
		if marker == nil {
			marker = dl.st
		}
		for len(held) > 0 {
			n := 1
			for n < len(held) && n < maxBatch && held[n].at.Sub(held[0].at) < markResolution {
				n++
			}
			ids := make([]string, n)
			for i := range n {
				ids[i] = held[i].id
			}
			if err := marker.MarkPublished(ctx, ids, held[0].at); err != nil {
				dl.log.Error("mark published", "commands", n, "err", err)
			} else {
				dl.landed.Push(ids)
			}
			held = held[n:]
		}
		held = nil
	}
	hold := func() bool { return dl.Sending() != nil && time.Since(heldSince) < MaxHold }
	t := time.NewTicker(markResolution)
	defer t.Stop()
	for {
		select {
		case <-dl.marks.Ready():
			drain()
		case <-t.C:
			if !hold() {
				flush()
			}
		case reply := <-dl.flushMarks:
			drain()
			flush()
			close(reply)
		case <-stop:
			drain()
			flush()
			return
		}
	}
}
