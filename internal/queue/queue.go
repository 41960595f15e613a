// Package queue hands items from many goroutines to one consumer, up to a bound,
// with memory that follows what it holds.
package queue

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Queue is a FIFO of at most a bound of waiting items, for one consumer.
//
// A buffered channel of the same bound reserves memory for all of it from the
// start and keeps it; the server's hand-over queues are sized for bursts (a
// fan-out to every device, a reconnect storm, a stalled database) thousands of
// times what they usually hold. A Queue links each item onto a list, which the
// consumer detaches whole: its memory is what waits.
//
// Pushing takes no lock, only compare-and-swaps: the pushers can be thousands
// of runnable goroutines (the broker's client loops in a fan-out), and behind a
// mutex they formed a convoy (see docs/benchmark-history.md, the seventh session).
//
// The bound is on what waits: what the consumer has taken is its own.
type Queue[T any] struct {
	bound int64
	n     atomic.Int64            // items pushed and not yet taken; never above bound
	head  atomic.Pointer[node[T]] // the newest item; each links to the one before
	ready chan struct{}

	// Only Take and a PushWait that found the queue full take mu.
	mu    sync.Mutex
	space chan struct{} // closed by the next Take
}

type node[T any] struct {
	v     T
	next  *node[T]
	depth int // items in the list from this one on
}

// Keep is a sensible limit for Reuse: the largest buffer a consumer keeps
// between bursts, enough for usual traffic to go through without allocating.
const Keep = 1024

// New returns a queue of at most bound waiting items.
func New[T any](bound int) *Queue[T] {
	return &Queue[T]{bound: int64(bound), ready: make(chan struct{}, 1)}
}

// Push adds v and reports whether there was room; it never blocks.
func (q *Queue[T]) Push(v T) bool {
	for { // take a place, so that n counts only pushes that succeed
		c := q.n.Load()
		if c >= q.bound {
			return false
		}
		if q.n.CompareAndSwap(c, c+1) {
			break
		}
	}
	nd := &node[T]{v: v}
	for {
		old := q.head.Load()
		nd.next, nd.depth = old, 1
		if old != nil {
			nd.depth += old.depth
		}
		if q.head.CompareAndSwap(old, nd) {
			if old == nil { // the first since the last Take: the others signalled
				q.signal()
			}
			return true
		}
	}
}

// PushWait adds v, waiting while the queue is full, for what must not be
// dropped. Waiters are woken together by the next Take, in no set order; once
// the consumer has stopped taking, a PushWait on a full queue waits for ever.
func (q *Queue[T]) PushWait(v T) {
	for !q.Push(v) {
		q.mu.Lock()
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		// A Take between the failed Push and now closed an earlier channel:
		// its room shows in n.
		if q.n.Load() < q.bound {
			continue
		}
		<-space
	}
}

func (q *Queue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default: // already signalled
	}
}

// Ready receives once the queue has gone from empty to holding items: after a
// receive, call Take, as no further signal comes until a Take has emptied the
// queue. Take may then find nothing: the items went with an earlier Take.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Take removes every waiting item, oldest first, and appends them to dst.
func (q *Queue[T]) Take(dst []T) []T {
	first := q.head.Swap(nil)
	if first == nil {
		return dst
	}
	k := first.depth
	q.n.Add(-int64(k))
	start := len(dst)
	dst = slices.Grow(dst, k)[:start+k]
	i := start + k
	for nd := first; nd != nil; nd = nd.next { // newest first
		i--
		dst[i] = nd.v
	}
	q.mu.Lock()
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
	q.mu.Unlock()
	return dst
}

// Reuse returns a consumer's buffer emptied for the next Take: its items
// cleared, or nil if its capacity has grown past limit (a burst's memory goes
// with the burst).
func Reuse[T any](buf []T, limit int) []T {
	if cap(buf) > limit {
		return nil
	}
	clear(buf)
	return buf[:0]
}
