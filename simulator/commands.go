package simulator

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxHandled bounds the per-player memory of handled command ids.
const maxHandled = 1024

// outcome is how a handled command was acked, so that a redelivery is acked the same.
type outcome struct{ status, detail string }

// ack is the document a player publishes on its acks topic (CONTRACT §3).
type ack struct {
	ID     string    `json:"id"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// onCommand handles one command message:
//   - a repeated id is not applied again; it is acked again at once with the first
//     outcome, since acks are idempotent;
//   - a command whose expires_at has passed is not applied; it is acked at once with
//     status "rejected" and detail "expired";
//   - otherwise it is applied (unless FailureRate picks it to fail, or its params are
//     invalid) and acked after AckDelay.
func (p *player) onCommand(payload []byte, at time.Time) {
	var cmd Command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		p.sim.emit(Event{DeviceID: p.id, Kind: KindInvalid, Detail: "command: " + err.Error()})
		return
	}
	if cmd.ID == "" {
		p.sim.emit(Event{DeviceID: p.id, Kind: KindInvalid, Detail: "command without an id"})
		return
	}
	p.sim.commands.Add(1)

	p.mu.Lock()
	if prev, seen := p.handled.get(cmd.ID); seen {
		p.mu.Unlock()
		p.sim.duplicates.Add(1)
		p.sim.emit(Event{DeviceID: p.id, Kind: KindDuplicate, Command: &cmd, At: at})
		p.scheduleAck(&cmd, prev, 0)
		return
	}
	if cmd.ExpiresAt != nil && !time.Now().Before(*cmd.ExpiresAt) {
		// Not remembered as handled: a redelivery is just as expired.
		p.mu.Unlock()
		p.sim.expired.Add(1)
		p.sim.emit(Event{DeviceID: p.id, Kind: KindExpired, Command: &cmd, At: at})
		p.scheduleAck(&cmd, outcome{StatusRejected, "expired"}, 0)
		return
	}
	out := outcome{status: StatusSucceeded}
	if simulatedFailure(p.sim.cfg.Seed, p.id, cmd.ID, p.sim.cfg.FailureRate) {
		out = outcome{StatusFailed, "simulated failure"}
	} else if err := p.apply(&cmd); err != nil {
		out = outcome{StatusFailed, err.Error()}
	}
	p.handled.add(cmd.ID, out)
	p.mu.Unlock()

	p.sim.emit(Event{DeviceID: p.id, Kind: KindCommand, Command: &cmd, At: at})
	p.scheduleAck(&cmd, out, p.sim.cfg.AckDelay)
}

// apply changes the local state as a player would; functions without a lasting
// effect on what the simulator tracks are only recorded. Callers hold p.mu.
func (p *player) apply(cmd *Command) error {
	switch cmd.Function {
	case "load_url":
		u, _ := cmd.Params["url"].(string)
		if u == "" {
			return errors.New("invalid params: url is required")
		}
		p.lastURL = u
	case "set_emergency":
		enabled, ok := cmd.Params["enabled"].(bool)
		if !ok {
			return errors.New("invalid params: enabled must be a boolean")
		}
		msg, _ := cmd.Params["message"].(string)
		u, _ := cmd.Params["url"].(string)
		p.emergency = Emergency{Enabled: enabled, Message: msg, URL: u}
	case "pause_loop":
		p.loopPaused = true
	case "resume_loop":
		p.loopPaused = false
	}
	return nil
}

// onDesired applies a desired state only if it is newer than the last one applied;
// a retained copy seen again after a reconnect is therefore ignored.
func (p *player) onDesired(payload []byte, at time.Time) {
	var d Desired
	if err := json.Unmarshal(payload, &d); err != nil {
		p.sim.emit(Event{DeviceID: p.id, Kind: KindInvalid, Detail: "desired: " + err.Error()})
		return
	}
	p.mu.Lock()
	if p.desired != nil && d.Version <= p.desired.Version {
		p.mu.Unlock()
		p.sim.emit(Event{DeviceID: p.id, Kind: KindDesiredIgnored, Desired: &d, At: at})
		return
	}
	applied := d
	p.desired = &applied
	p.emergency = d.Emergency
	p.loopPaused = d.LoopPaused
	p.mu.Unlock()

	p.sim.desired.Add(1)
	p.sim.emit(Event{DeviceID: p.id, Kind: KindDesired, Desired: &d, At: at})
}

// scheduleAck publishes the ack now, or after delay on a timer goroutine, so that
// the message goroutine never blocks; the broker's acknowledgement is awaited on
// the player's ack goroutine.
func (p *player) scheduleAck(cmd *Command, out outcome, delay time.Duration) {
	if p.sim.cfg.NoAck {
		return
	}
	if delay <= 0 {
		p.publishAck(cmd, out)
		return
	}
	time.AfterFunc(delay, func() { p.publishAck(cmd, out) })
}

func (p *player) publishAck(cmd *Command, out outcome) {
	if p.sim.closed.Load() || p.dropped.Load() {
		return
	}
	payload, _ := json.Marshal(ack{ID: cmd.ID, Status: out.status, Detail: out.detail, At: time.Now().UTC()})
	tok := p.client.Publish(p.topics.acks, 1, false, payload)
	select {
	case p.sim.acks[p.shard] <- pendingAck{p: p, cmd: cmd, out: out, tok: tok}:
	case <-p.sim.stop:
	}
}

// ackDone counts and reports an ack once the broker has acknowledged it.
func (p *player) ackDone(cmd *Command, out outcome, tok paho.Token) {
	if err := wait(tok, "publish ack "+cmd.ID); err != nil {
		if p.sim.closed.Load() || p.dropped.Load() {
			return // raced with Close or Drop: not worth reporting
		}
		p.sim.emit(Event{DeviceID: p.id, Kind: KindError, Command: cmd, Detail: err.Error()})
		return
	}
	p.sim.acked.Add(1)
	if out.status == StatusFailed {
		p.sim.failed.Add(1)
	}
	p.sim.emit(Event{DeviceID: p.id, Kind: KindAck, Command: cmd, AckStatus: out.status, Detail: out.detail})
}

// simulatedFailure decides from (seed, device, command id) alone whether a command
// fails, so that a run is reproducible whatever order messages arrive in.
func simulatedFailure(seed int64, deviceID, commandID string, rate float64) bool {
	switch {
	case rate <= 0:
		return false
	case rate >= 1:
		return true
	}
	h := fnv.New64a()
	_ = binary.Write(h, binary.LittleEndian, seed)
	h.Write([]byte(deviceID))
	h.Write([]byte{0})
	h.Write([]byte(commandID))
	x := h.Sum64()
	// splitmix64 finalizer: FNV's low-entropy high bits become uniform.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < rate
}

// handledSet remembers the outcome of the last maxHandled command ids of one player.
// Its memory is allocated on the first command.
type handledSet struct {
	ring     []string
	next     int // oldest entry once the ring is full
	outcomes map[string]outcome
}

func (h *handledSet) get(id string) (outcome, bool) {
	o, ok := h.outcomes[id]
	return o, ok
}

func (h *handledSet) add(id string, o outcome) {
	if h.outcomes == nil {
		h.outcomes = make(map[string]outcome)
	}
	if len(h.ring) < maxHandled {
		h.ring = append(h.ring, id)
	} else {
		delete(h.outcomes, h.ring[h.next])
		h.ring[h.next] = id
		h.next = (h.next + 1) % maxHandled
	}
	h.outcomes[id] = o
}

// list returns the remembered ids, oldest first.
func (h *handledSet) list() []string {
	out := make([]string, 0, len(h.ring))
	out = append(out, h.ring[h.next:]...)
	return append(out, h.ring[:h.next]...)
}
