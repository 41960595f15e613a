package queue

import (
	"slices"
	"sync"
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
	if n := q.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
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

// A burst's backing array is let go once taken; a small one is kept for reuse.
func TestQueueLetsGoOfABurst(t *testing.T) {
	q := New[int](100000)
	for i := range 10 * keep {
		q.Push(i)
	}
	if got := q.Take(nil); len(got) != 10*keep {
		t.Fatalf("took %d items, want %d", len(got), 10*keep)
	}
	if c := cap(q.items); c != 0 {
		t.Fatalf("after a burst the queue still holds an array of %d", c)
	}
	q.Push(1)
	q.Take(nil)
	if c := cap(q.items); c == 0 {
		t.Fatal("a small array was not kept for the next items")
	}
	if allocs := testing.AllocsPerRun(100, func() { q.Push(1); q.Take(nil) }); allocs > 1 {
		t.Fatalf("steady traffic allocates %.0f times per item", allocs)
	}
}

// Items pushed by many goroutines all reach a consumer that waits on Ready.
func TestQueueManyProducersOneConsumer(t *testing.T) {
	const producers, each = 8, 5000
	q := New[int](producers * each)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				if !q.Push(p*each + i) {
					t.Error("push refused below the bound")
					return
				}
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
