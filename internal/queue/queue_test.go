package queue

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQueueKeepsOrderAndBound(t *testing.T) {
	q := New[int](3)
	for i := range 3 {
		if !q.Push(i) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.Push(3) {
		t.Fatal("push over the bound was taken")
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled after pushes")
	}
	got := q.Take([]int{-1})
	if want := []int{-1, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("Take = %v, want %v", got, want)
	}
	if got := q.Take(nil); len(got) != 0 {
		t.Fatalf("second Take = %v, want nothing", got)
	}
	if !q.Push(4) {
		t.Fatal("push refused once the queue was emptied")
	}
	if got := q.Take(nil); !slices.Equal(got, []int{4}) {
		t.Fatalf("Take = %v, want [4]", got)
	}
}

// Once taken, a burst's items are the consumer's alone: the queue keeps
// nothing of them, and counts its room again.
func TestQueueLetsGoOfABurst(t *testing.T) {
	q := New[*int](10 * Keep)
	for range 10 * Keep {
		q.Push(new(int))
	}
	if q.Push(new(int)) {
		t.Fatal("push over the bound was taken")
	}
	if got := q.Take(nil); len(got) != 10*Keep {
		t.Fatalf("took %d items, want %d", len(got), 10*Keep)
	}
	if q.head.Load() != nil || q.n.Load() != 0 {
		t.Fatalf("after Take the queue still holds items (count %d)", q.n.Load())
	}
	if !q.Push(new(int)) {
		t.Fatal("push refused once the queue was emptied")
	}
}

// Concurrent pushes take exactly the places there are, each time the consumer
// has emptied the queue: none over the bound, none refused while there is room.
func TestQueueHoldsExactlyItsBound(t *testing.T) {
	const bound, pushers = 50, 400
	q := New[int](bound)
	var taken int
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range pushers {
		wg.Go(func() {
			if !q.Push(i) {
				refused.Add(1)
			}
		})
		if i%100 == 99 {
			wg.Wait() // a quiet moment: every push so far is in or refused
			got := len(q.Take(nil))
			if got > bound {
				t.Fatalf("took %d items from a queue of %d", got, bound)
			}
			taken += got
		}
	}
	wg.Wait()
	if want := 4 * bound; taken != want || refused.Load() != pushers-int64(want) {
		t.Fatalf("took %d and refused %d of %d pushes, want %d taken", taken, refused.Load(), pushers, want)
	}
}

func TestReuseKeepsASmallBufferOnly(t *testing.T) {
	small := []*int{new(int), new(int)}
	got := Reuse(small, 4)
	if len(got) != 0 || cap(got) != 2 {
		t.Fatalf("Reuse of a small buffer: len %d cap %d, want 0 and 2", len(got), cap(got))
	}
	if small[0] != nil || small[1] != nil {
		t.Fatal("Reuse left references to the items taken")
	}
	if got := Reuse(make([]*int, 5), 4); got != nil {
		t.Fatalf("Reuse kept a buffer past its bound (cap %d)", cap(got))
	}
}

// PushWait waits while the queue is full and adds its item once the consumer
// has taken what waited; nothing is dropped or reordered.
func TestPushWaitWaitsForRoom(t *testing.T) {
	q := New[int](2)
	q.PushWait(0)
	q.PushWait(1)
	added := make(chan struct{})
	go func() { q.PushWait(2); close(added) }()
	select {
	case <-added:
		t.Fatal("PushWait added to a full queue")
	case <-time.After(50 * time.Millisecond):
	}
	if got := q.Take(nil); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("Take = %v, want [0 1]", got)
	}
	select {
	case <-added:
	case <-time.After(5 * time.Second):
		t.Fatal("PushWait still waiting after a Take made room")
	}
	if got := q.Take(nil); !slices.Equal(got, []int{2}) {
		t.Fatalf("Take = %v, want [2]", got)
	}
}

// Items pushed by many goroutines through a small queue all reach a consumer
// that waits on Ready, once each.
func TestQueueManyProducersOneConsumer(t *testing.T) {
	const producers, each = 8, 5000
	q := New[int](64) // producers wait for room most of the time
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				q.PushWait(p*each + i)
			}
		})
	}
	seen := make([]bool, producers*each)
	got := 0
	timeout := time.After(10 * time.Second)
	var buf []int
	for got < producers*each {
		select {
		case <-q.Ready():
		case <-timeout:
			t.Fatalf("got %d of %d items", got, producers*each)
		}
		buf = q.Take(buf[:0])
		for _, v := range buf {
			if seen[v] {
				t.Fatalf("item %d taken twice", v)
			}
			seen[v] = true
			got++
		}
	}
	wg.Wait()
}
