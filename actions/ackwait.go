package actions

import (
	"context"
	"sync"
	"time"
)

// AckWaiters lets a webhook call wait until the commands it created are acked,
// for callers that asked to wait (Dispatcher.Trigger bounds the wait by the
// commands' expiry, since nothing acks an expired command).
type AckWaiters struct {
	mu       sync.Mutex
	byCmd    map[string]*AckWatch
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
}

// NewAckWaiters returns an empty registry.
func NewAckWaiters() *AckWaiters {
	return &AckWaiters{byCmd: map[string]*AckWatch{}, stopping: make(chan struct{})}
}

// Stop ends every wait, now and later, as unsettled: the service is shutting
// down, and a call that waits must still be answered before the database
// closes. The calls' commands are committed and are delivered all the same.
func (r *AckWaiters) Stop() { r.stopOnce.Do(func() { close(r.stopping) }) }

// AckWatch waits for a set of commands.
type AckWatch struct {
	reg     *AckWaiters
	ids     []string
	pending int
	done    chan struct{}
}

// Watch starts waiting for ids; register before the commands are written,
// since from then on they may be acked or superseded.
func (r *AckWaiters) Watch(ids []string) *AckWatch {
	w := &AckWatch{reg: r, ids: ids, pending: len(ids), done: make(chan struct{})}
	if len(ids) == 0 {
		close(w.done) // nothing to wait for
		return w
	}
	r.mu.Lock()
	for _, id := range ids {
		r.byCmd[id] = w
	}
	r.mu.Unlock()
	return w
}

// Settled tells the registry a command reached a final state.
func (r *AckWaiters) Settled(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.byCmd[id]
	if !ok {
		return
	}
	delete(r.byCmd, id)
	w.pending--
	if w.pending == 0 {
		close(w.done)
	}
}

// Wait blocks until every watched command is settled (true), or d passes, ctx
// ends or the registry stops (false).
func (w *AckWatch) Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-w.reg.stopping:
	}
	return false
}

// Close stops watching.
func (w *AckWatch) Close() {
	w.reg.mu.Lock()
	for _, id := range w.ids {
		if w.reg.byCmd[id] == w {
			delete(w.reg.byCmd, id)
		}
	}
	w.reg.mu.Unlock()
}
