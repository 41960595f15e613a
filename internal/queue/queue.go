// Package queue hands items from many goroutines to one consumer, up to a bound,
// with memory that follows what it holds.
package queue

import "sync"

// Queue is a FIFO of at most a bound of waiting items, for one consumer. A
// buffered channel of the same bound reserves memory for all of it from the
// start and keeps it; the server's hand-over queues are sized for bursts (a
// fan-out to every device, a reconnect storm, a stalled database) thousands of
// times what they usually hold. A Queue holds its items in a slice that grows
// with a burst and is let go once taken.
//
// The bound is on what waits: what the consumer has taken is its own.
type Queue[T any] struct {
	bound int
	ready chan struct{}

	mu    sync.Mutex
	items []T
	space chan struct{} // closed by the next Take; made by a PushWait that found the queue full
}

// Keep is the largest backing array a Queue keeps between bursts, and a
// sensible limit for Reuse: enough for usual traffic to go through without
// allocating.
const Keep = 1024

// New returns a queue of at most bound waiting items.
func New[T any](bound int) *Queue[T] {
	return &Queue[T]{bound: bound, ready: make(chan struct{}, 1)}
}

// Push adds v and reports whether there was room; it never blocks.
func (q *Queue[T]) Push(v T) bool {
	q.mu.Lock()
	if len(q.items) >= q.bound {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
	return true
}

// PushWait adds v, waiting while the queue is full, for what must not be
// dropped. Waiters are woken together by the next Take, in no set order; once
// the consumer has stopped taking, a PushWait on a full queue waits for ever.
func (q *Queue[T]) PushWait(v T) {
	for {
		q.mu.Lock()
		if len(q.items) < q.bound {
			q.items = append(q.items, v)
			q.mu.Unlock()
			q.signal()
			return
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		<-space
	}
}

func (q *Queue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default: // already signalled
	}
}

// Ready receives once items have been pushed since the last receive. After a
// receive, Take may still find nothing: the items went with an earlier Take.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Take removes every waiting item, oldest first, and appends them to dst.
func (q *Queue[T]) Take(dst []T) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	if cap(q.items) > Keep {
		q.items = nil
	} else {
		clear(q.items) // let go of what the items refer to
		q.items = q.items[:0]
	}
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
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
