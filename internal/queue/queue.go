// Package queue hands items from many goroutines to one consumer, up to a bound,
// with memory that follows what it holds.
package queue

import "sync"

// Queue is a FIFO of at most a bound of items, for one consumer. A buffered
// channel of the same bound reserves memory for all of it from the start and
// keeps it: the server's hand-over queues are sized for bursts (a fan-out to
// every device, a reconnect storm, a stalled database) thousands of times what
// they usually hold, and as channels they took 9 MB of an idle server's 16 MB
// of heap. A Queue holds its items in a slice that grows with a burst and is
// let go once the consumer has taken them.
type Queue[T any] struct {
	max   int
	ready chan struct{}

	mu    sync.Mutex
	items []T
}

// keep is the largest backing array kept between bursts: enough for the usual
// traffic to go through without allocating.
const keep = 1024

// New returns a queue of at most max items.
func New[T any](max int) *Queue[T] {
	return &Queue[T]{max: max, ready: make(chan struct{}, 1)}
}

// Push adds v and reports whether there was room; it never blocks.
func (q *Queue[T]) Push(v T) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // already signalled
	}
	return true
}

// Ready receives once items have been pushed since the last receive. After a
// receive, Take may still find nothing: the items went with an earlier Take.
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Take removes every queued item, oldest first, and appends them to dst.
func (q *Queue[T]) Take(dst []T) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	if cap(q.items) > keep {
		q.items = nil
	} else {
		clear(q.items) // let go of what the items refer to
		q.items = q.items[:0]
	}
	return dst
}

// Reuse returns buf emptied for the next Take: its items cleared, or nil if a
// burst made it larger than the queue keeps.
func Reuse[T any](buf []T) []T {
	if cap(buf) > keep {
		return nil
	}
	buf = buf[:cap(buf)]
	clear(buf)
	return buf[:0]
}

// Len returns how many items wait.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
