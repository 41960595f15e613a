package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"devicehooks/simulator"
)

// receipts follows what the simulated players receive, by dispatch, so that each
// accepted webhook call can be matched to the command it caused (the webhook
// answer's dispatch_id is the command's dispatch_id).
type receipts struct {
	mu         sync.Mutex
	byDispatch map[string]*received
	seen       map[string]struct{} // command ids received, to count repeats

	commands   atomic.Int64 // distinct commands received
	duplicates atomic.Int64 // a command id received again
	acks       atomic.Int64 // acks the players published
	errors     atomic.Int64 // player errors (e.g. an ack that was not acknowledged)
}

// received is what arrived for one dispatch.
type received struct {
	first, last time.Time // first and last distinct command
	n           int       // distinct commands
	dups        int
	issued      time.Time // the command's issued_at (server clock = our clock)
}

func newReceipts() *receipts {
	return &receipts{byDispatch: map[string]*received{}, seen: map[string]struct{}{}}
}

// onEvent is the simulator's OnEvent: called from paho goroutines.
func (r *receipts) onEvent(ev simulator.Event) {
	switch ev.Kind {
	case simulator.KindCommand, simulator.KindDuplicate, simulator.KindExpired:
	case simulator.KindAck:
		r.acks.Add(1)
		return
	case simulator.KindError, simulator.KindInvalid:
		r.errors.Add(1)
		return
	default:
		return
	}
	if ev.Command == nil {
		return
	}
	at := ev.At
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.byDispatch[ev.Command.DispatchID]
	if d == nil {
		d = &received{issued: ev.Command.IssuedAt}
		r.byDispatch[ev.Command.DispatchID] = d
	}
	if _, dup := r.seen[ev.Command.ID]; dup {
		d.dups++
		r.duplicates.Add(1)
		return
	}
	r.seen[ev.Command.ID] = struct{}{}
	if d.n == 0 || at.Before(d.first) {
		d.first = at
	}
	if at.After(d.last) {
		d.last = at
	}
	d.n++
	r.commands.Add(1)
}

// get returns a copy of what arrived for a dispatch.
func (r *receipts) get(id string) (received, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.byDispatch[id]
	if d == nil {
		return received{}, false
	}
	return *d, true
}

// reset forgets everything, between phases.
func (r *receipts) reset() {
	r.mu.Lock()
	r.byDispatch = map[string]*received{}
	r.seen = map[string]struct{}{}
	r.mu.Unlock()
	r.commands.Store(0)
	r.duplicates.Store(0)
	r.acks.Store(0)
	r.errors.Store(0)
}

// waitAll waits until every dispatch in ids has want commands, or timeout. It
// returns how many dispatches are complete.
func (r *receipts) waitAll(ctx context.Context, ids []string, want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		done := 0
		r.mu.Lock()
		for _, id := range ids {
			if d := r.byDispatch[id]; d != nil && d.n >= want {
				done++
			}
		}
		r.mu.Unlock()
		if done == len(ids) || time.Now().After(deadline) || ctx.Err() != nil {
			return done
		}
		time.Sleep(20 * time.Millisecond)
	}
}
