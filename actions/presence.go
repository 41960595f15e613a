package actions

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"devicehooks/internal/logevery"
	"devicehooks/internal/queue"
	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// Presence tracks which devices are online, in memory for the delivery path and
// flushed to the database in batches for the API and UI.
//
// With the embedded broker, connection events are authoritative: a device is online
// from the moment it subscribes to its commands topic until its last connection
// closes. With an external broker, the retained status topic is the source: a live
// message applies in arrival order, while a retained one (replayed when we
// subscribe) applies only if its "at" is not older than what we know, so a late
// or stale message never overwrites a newer state.
type Presence struct {
	st            *store.Store
	log           *slog.Logger
	authoritative bool
	cameOnline    *queue.Queue[string]
	clock         func() time.Time
	failures      *logevery.Limiter // "save presence" lines: one every 10 s while the database refuses them

	mu    sync.Mutex
	devs  map[string]*devicePresence
	dirty map[string]store.Presence
}

type devicePresence struct {
	online   bool
	since    time.Time // when it last came online: the start of its current session
	at       time.Time // when the current state was observed (never goes back)
	statusAt time.Time // the at of the last status message applied, by the device's clock (after a will, just past it)
	lastSeen time.Time
	written  time.Time // the last-seen time last queued for the database
	conns    int       // embedded broker: subscribed connections
}

// NewPresence returns a tracker. authoritative is true for the embedded broker.
func NewPresence(st *store.Store, log *slog.Logger, authoritative bool) *Presence {
	return &Presence{
		st: st, log: log, authoritative: authoritative, cameOnline: queue.New[string](65536),
		clock: wallclock.Now, failures: logevery.New(10 * time.Second),
		devs: map[string]*devicePresence{}, dirty: map[string]store.Presence{},
	}
}

// Load starts every device offline, keeping when its state was last observed.
// Nobody can be connected to an embedded broker that was not running; with an
// external broker, the retained status messages replayed when we subscribe (and
// the players' live ones) tell who is really there.
func (p *Presence) Load(ctx context.Context) error {
	if err := p.st.ResetPresence(ctx); err != nil {
		return err
	}
	states, err := p.st.PresenceStates(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range states {
		p.devs[s.DeviceID] = &devicePresence{at: s.At, lastSeen: s.LastSeen, statusAt: s.StatusAt, written: s.LastSeen}
	}
	return nil
}

// BrokerLost marks every device offline when the connection to an external broker
// drops: while it is down nobody can be reached, and after it, a device counts as
// online again only once its status says so, so that nothing is sent before the
// device has resubscribed.
func (p *Presence) BrokerLost() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, d := range p.devs {
		if d.online {
			d.online = false
			p.markDirty(id, d)
		}
	}
}

// Online reports whether a device is online now.
func (p *Presence) Online(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.devs[id]
	return d != nil && d.online
}

// OnlineSince returns when the device's current session began, if it is online.
func (p *Presence) OnlineSince(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.devs[id]; d != nil && d.online {
		return d.since, true
	}
	return time.Time{}, false
}

// State returns a device's current presence and when it was last seen (zero if
// never), fresher than the database, which is written in batches.
func (p *Presence) State(id string) (online bool, lastSeen time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.devs[id]; d != nil {
		return d.online, d.lastSeen
	}
	return false, time.Time{}
}

// Of returns a stored device's presence as it is now: online or not, and the
// later of its stored last-seen time and the one in memory (the database is
// written in batches, a last-seen time from an ack alone every 10 s at most).
func (p *Presence) Of(d *store.Device) (online bool, lastSeen *time.Time) {
	online, seen := p.State(d.ID)
	lastSeen = d.LastSeen
	if !seen.IsZero() && (lastSeen == nil || seen.After(*lastSeen)) {
		lastSeen = &seen
	}
	return online, lastSeen
}

// OnlineIDs lists the devices online now.
func (p *Presence) OnlineIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.devs))
	for id, d := range p.devs {
		if d.online {
			ids = append(ids, id)
		}
	}
	return ids
}

// OnlineCount returns how many devices are online.
func (p *Presence) OnlineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, d := range p.devs {
		if d.online {
			n++
		}
	}
	return n
}

// Subscribed records (embedded broker) that a connection of the device now listens
// on its commands topic. Every such connection starts a new session, even if an
// older connection is not yet seen closed (a quick reconnect): what was sent to
// the old one but never acked goes out again.
func (p *Presence) Subscribed(id string) {
	p.mu.Lock()
	// Read under the lock: delivery, which notes a send at a time it read
	// before, sees this session only from here on, so that what it sent
	// (or held) for the session before is older than this one.
	now := p.clock()
	d := p.get(id)
	d.conns++
	p.set(id, d, true, now, now)
	d.since = now
	p.mu.Unlock()
	p.notify(id)
}

// Disconnected records (embedded broker) that a subscribed connection closed.
// A device unknown here was deleted (Forget): deleting it closes its
// connections, whose events may come after.
func (p *Presence) Disconnected(id string) {
	now := p.clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.devs[id]
	if !ok {
		return
	}
	if d.conns > 0 {
		d.conns--
	}
	if d.conns == 0 {
		p.set(id, d, false, now, now)
	}
}

// Status applies a message from a device's status topic. retained is true when the
// broker replayed a stored message rather than forwarding a live one.
func (p *Presence) Status(id string, msg StatusMessage, retained bool) {
	now := p.clock()
	online := msg.State == "online"
	p.mu.Lock()
	if _, ok := p.devs[id]; !ok && !online {
		// A device unknown here is offline already: a deleted device's will,
		// or a new device's first word; an "online" adds it (it may have been
		// created after start, or by another instance).
		p.mu.Unlock()
		return
	}
	d := p.get(id)
	went := false
	switch {
	case p.authoritative:
		// Connection events decide; the message only shows the device is alive.
		// (The embedded broker keeps no status messages: every one is live.)
		d.lastSeen = now
		p.markDirty(id, d)
	case retained:
		// The broker replays a device's last status when devicehooks
		// subscribes (at start, after BrokerLost): the same message again
		// brings a device that never left back online. A replay older, by the
		// device's own clock, than the last status applied is an old message
		// published again, and loses (after a will: not newer than the status
		// before it, see below). Our times stay ours: a clock that runs ahead
		// moves neither when the state was observed nor, past now, when it
		// was last seen.
		if msg.At != nil && (d.statusAt.IsZero() || !msg.At.Before(d.statusAt)) {
			d.statusAt = msg.At.UTC()
			went = p.set(id, d, online, maxTime(now, d.at), minTime(d.statusAt, now))
		}
	default:
		if msg.At != nil {
			d.statusAt = msg.At.UTC()
		} else if !d.statusAt.IsZero() {
			// A will carries no time. A status replayed after it must be
			// newer, by the device's clock, than the one before it: a replay
			// of that one (a broker gone back to an older save) is stale.
			d.statusAt = d.statusAt.Add(time.Microsecond)
		}
		if online && d.online {
			// A player says "online" once per connection: this one connected
			// again, and no will told us its last connection ended (it left
			// with a clean DISCONNECT, or the broker dropped it without
			// sending the will, as Mosquitto does on a password change).
			// What went to that connection may be lost: a new session starts,
			// and its unacked commands go again.
			d.online = false
		}
		went = p.set(id, d, online, maxTime(now, d.at), now)
	}
	p.mu.Unlock()
	if went {
		p.notify(id)
	}
}

// seenWriteEvery bounds how often an ack alone writes a device's last-seen time to
// the database (the API reads the fresher time from memory): after a fan-out to
// 10,000 devices, 10,000 updates would otherwise compete with the triggers.
const seenWriteEvery = 10 * time.Second

// Seen records that a device sent something (an ack, say) at a time; a
// last-seen time never goes back.
func (p *Presence) Seen(id string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.devs[id]
	if !ok || !at.After(d.lastSeen) {
		return
	}
	d.lastSeen = at
	if _, pending := p.dirty[id]; pending || at.Sub(d.written) >= seenWriteEvery {
		p.markDirty(id, d)
	}
}

// CameOnline receives when devices have gone from offline to online;
// TakeCameOnline returns them.
func (p *Presence) CameOnline() <-chan struct{} { return p.cameOnline.Ready() }

// TakeCameOnline appends to dst the devices that came online since the last call.
func (p *Presence) TakeCameOnline(dst []string) []string { return p.cameOnline.Take(dst) }

func (p *Presence) notify(id string) {
	if !p.cameOnline.Push(id) {
		// Delivery's periodic resync still sends this device's queued commands.
		p.log.Warn("presence: online notification dropped", "device", id)
	}
}

// Forget drops a deleted device.
func (p *Presence) Forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.devs, id)
	delete(p.dirty, id)
}

func (p *Presence) get(id string) *devicePresence {
	d, ok := p.devs[id]
	if !ok {
		d = &devicePresence{}
		p.devs[id] = d
	}
	return d
}

// set changes a device's state and reports whether it went from offline to online.
func (p *Presence) set(id string, d *devicePresence, online bool, at, seen time.Time) bool {
	went := online && !d.online
	if went {
		d.since = p.clock()
	}
	d.online, d.at = online, at
	if seen.After(d.lastSeen) {
		d.lastSeen = seen
	}
	p.markDirty(id, d)
	return went
}

func (p *Presence) markDirty(id string, d *devicePresence) {
	d.written = d.lastSeen
	p.dirty[id] = store.Presence{DeviceID: id, Online: d.online, At: d.at, LastSeen: d.lastSeen, StatusAt: d.statusAt}
}

// Run flushes presence changes to the database every interval until ctx ends.
func (p *Presence) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// Not cancelled by shutdown mid-write: the batch is already taken
			// from the dirty set, and the final flush would not see it.
			p.flush(context.WithoutCancel(ctx), false)
		case <-ctx.Done():
			p.markUnwritten()
			p.flush(context.WithoutCancel(ctx), true)
			return
		}
	}
}

// markUnwritten marks for the last flush, at shutdown, the devices whose
// last-seen time moved since it was written (Seen writes an ack's only every
// seenWriteEvery): with an external broker a player stays connected across
// a restart, and the next instance would read the older time.
func (p *Presence) markUnwritten() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, d := range p.devs {
		if d.lastSeen.After(d.written) {
			p.markDirty(id, d)
		}
	}
}

// flush writes the changes; last is the flush at shutdown, which no retry
// follows.
func (p *Presence) flush(ctx context.Context, last bool) {
	p.mu.Lock()
	if len(p.dirty) == 0 {
		p.mu.Unlock()
		return
	}
	batch := make([]store.Presence, 0, len(p.dirty))
	for _, v := range p.dirty {
		batch = append(batch, v)
	}
	p.dirty = map[string]store.Presence{}
	p.mu.Unlock()
	err := p.st.SavePresence(ctx, batch)
	if err == nil {
		return
	}
	if last {
		p.log.Error("save presence: not written at stop", "devices", len(batch), "err", err)
		return
	}
	if ok, skipped := p.failures.Allow("save", time.Now()); ok { // flushes come every 250 ms
		p.log.Error("save presence; will retry", "devices", len(batch), "err", err, "more_like_it", skipped)
	}
	// Keep the batch for the next flush, except where a newer state is already
	// waiting or the device was deleted meanwhile.
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range batch {
		_, newer := p.dirty[v.DeviceID]
		if _, known := p.devs[v.DeviceID]; known && !newer {
			p.dirty[v.DeviceID] = v
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
