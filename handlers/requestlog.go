package handlers

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"devicehooks/actions"
	"devicehooks/internal/logevery"
	"devicehooks/internal/queue"
	"devicehooks/store"
)

// RequestLog records every webhook call, accepted or not, in the database: off the
// request's path, in batches, and kept for a configurable number of days.
type RequestLog struct {
	st    *store.Store
	log   *slog.Logger
	queue *queue.Queue[store.RequestLog]
	// Writer stores the records: in transactions of their own unless set (before
	// Run) to the Dispatcher, whose writer commits them with the triggers.
	Writer   RequestLogWriter
	dropped  atomic.Int64
	anon     *anonLimit   // records of calls without a valid key
	unlogged atomic.Int64 // such records over their limit
	unshed   atomic.Int64 // of which calls refused with 503 before their key was checked

	// While writes fail (every flush, 5 a second), the error is logged every
	// 10 s, with the records dropped meanwhile. Only Run's goroutine uses these.
	writeErrs *logevery.Limiter
	drops     int
}

// RequestLogWriter stores webhook call records, all or none.
type RequestLogWriter interface {
	WriteRequestLogs(ctx context.Context, rs []store.RequestLog) error
}

// flushAt is how many records make a flush before the next tick.
const flushAt = 1000

// queueBound is how many records may wait for the writer: 2 s of calls at
// 8,000 a second. While the database fails, Run holds as many again for their
// retry.
const queueBound = 16384

// NewRequestLog returns a request log; Run writes it.
func NewRequestLog(st *store.Store, log *slog.Logger) *RequestLog {
	return &RequestLog{st: st, log: log, queue: queue.New[store.RequestLog](queueBound), anon: newAnonLimit(),
		Writer: storeWriter{st}, writeErrs: logevery.New(10 * time.Second)}
}

// Record queues one call; if the writer is far behind, the record is counted as
// dropped rather than slowing the webhook down. A call without a valid API key
// is kept only within its source's limit (anonLimit).
func (l *RequestLog) Record(r store.RequestLog) {
	// The limiter's clock is now, not the call's start: a call that began long
	// ago (a slow body) would wind the buckets back and refill them.
	if r.KeyID == "" && !l.anon.allow(r.Source, time.Now()) {
		if r.Code == string(actions.CodeUnavailable) {
			l.unshed.Add(1) // turned away before its key was checked: maybe a valid one
		} else {
			l.unlogged.Add(1)
		}
		return
	}
	if !l.queue.Push(r) {
		l.dropped.Add(1)
	}
}

// Run writes queued records until ctx ends, and deletes those older than keep.
func (l *RequestLog) Run(ctx context.Context, keep time.Duration) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	purged := make(chan struct{})
	go func() {
		defer close(purged)
		l.purge(ctx, keep)
	}()
	defer func() { <-purged }()
	var buf []store.RequestLog
	// Writes are not cancelled by shutdown mid-way: the records taken from buf
	// would be lost. Each is bounded by the database's busy timeout.
	wctx := context.WithoutCancel(ctx)
	failing := false // the last write failed: wait for the ticker to try again
	var unloggedAt time.Time
	flush := func() {
		if n := l.dropped.Swap(0); n > 0 {
			l.log.Warn("request log could not keep up; records dropped", "count", n)
		}
		if time.Since(unloggedAt) >= 10*time.Second { // at most every 10 s: what a flood looks like
			if n := l.unlogged.Swap(0); n > 0 {
				unloggedAt = time.Now()
				l.log.Warn("request log: calls without a valid API key over the per-source limit were not recorded", "count", n)
			}
			if n := l.unshed.Swap(0); n > 0 {
				unloggedAt = time.Now()
				l.log.Warn("request log: calls refused with 503 before their key was checked (too many at once, or the key could not be checked), over the per-source limit, were not recorded", "count", n)
			}
		}
		taken := buf
		buf = l.write(wctx, buf, time.Now().UTC())
		clear(taken[len(buf):]) // what was written or dropped
		failing = len(buf) > 0
		if !failing {
			// A flush is 200 ms of records or flushAt; more is a
			// backlog, whose memory goes with it.
			buf = queue.Reuse(buf, 4*flushAt)
		}
	}
	// take moves what waits into buf, unless the database is failing and buf
	// already holds a queue's worth: new records then wait in the queue, and
	// past its bound they are dropped.
	take := func() {
		if !failing || len(buf) < queueBound {
			buf = l.queue.Take(buf)
		}
	}
	for {
		select {
		case <-l.queue.Ready():
			take()
			if len(buf) >= flushAt && !failing {
				flush()
			}
		case <-t.C:
			take()
			flush()
		case <-ctx.Done():
			buf = l.queue.Take(buf)
			flush()
			// Said whatever the allowance of write errors: a database away at
			// the stop (an outage ends this instance, see operations.md) takes
			// these records with it, and those dropped but not yet said.
			if dropped := l.drops + int(l.dropped.Swap(0)); len(buf) > 0 || dropped > 0 {
				l.log.Error("request log: records not written at stop", "waiting", len(buf), "dropped", dropped)
			}
			return
		}
	}
}

// purge deletes the records older than keep now and every hour, until ctx ends.
// It runs beside the flushes: at a sustained thousand calls a second, an hour of
// records takes most of a minute to delete, and new records must not wait for it.
// Stopped mid-way, it keeps what it deleted.
func (l *RequestLog) purge(ctx context.Context, keep time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := l.st.PurgeRequestLogs(ctx, time.Now().UTC().Add(-keep))
		if err != nil && ctx.Err() == nil {
			l.log.Error("purge request log", "err", err)
		}
		if n > 0 { // as the dispatches' purge says
			l.log.Info("old request log records purged", "count", n, "older_than", keep)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// retryRecordsFor is how long a record the database does not take is tried again
// before it is dropped (a database away for longer, or a record it refuses).
const retryRecordsFor = time.Minute

// recordsPerTx bounds the records one write takes. In the service they join a
// round of the trigger path's writer, whose triggers wait for them: a busy 200 ms
// written at once (about 800 records at 4,000 calls/s) held SQLite's one write
// lock for 5 to 20 ms every flush. 64 records add about 0.6 ms to a round
// (BenchmarkTriggerRound, requests=round against none).
const recordsPerTx = 64

// write stores buf, recordsPerTx records per transaction, and returns what is
// left for the next flush, at the start of buf's array (Run clears the rest).
// If a transaction fails, its records are written one by one: the database may
// refuse only some record (it has happened: a value PostgreSQL would not take),
// which must not hold up the others. If the first two are refused alone, the
// database takes nothing now, and the rest waits for the next flush. What is
// not written is tried again at later flushes, for retryRecordsFor at most.
func (l *RequestLog) write(ctx context.Context, buf []store.RequestLog, now time.Time) []store.RequestLog {
	var (
		left []store.RequestLog
		err  error
	)
	for rest := buf; len(rest) > 0; {
		chunk := rest[:min(len(rest), recordsPerTx)]
		rest = rest[len(chunk):]
		refused, down, e := l.writeChunk(ctx, chunk)
		if e == nil {
			continue
		}
		err = e
		left = append(left, refused...)
		if down {
			left = append(left, rest...)
			break
		}
	}
	if err == nil {
		return buf[:0]
	}
	kept, dropped := buf[:0], 0
	for _, r := range left {
		if now.Sub(r.At) < retryRecordsFor {
			kept = append(kept, r)
		} else {
			dropped++
		}
	}
	l.drops += dropped
	if ok, skipped := l.writeErrs.Allow("write", now); ok {
		l.log.Error("write request log", "waiting", len(kept), "dropped", l.drops, "err", err, "more_like_it", skipped)
		l.drops = 0
	}
	return kept
}

// writeChunk stores chunk in one transaction or, if the database refuses that,
// one record at a time, and returns the records it refused. down tells that the
// database took none of the first two alone: it is taken to be down, and the
// chunk is returned whole. A record refused before is not enough to tell, since
// it comes first at the next flush.
func (l *RequestLog) writeChunk(ctx context.Context, chunk []store.RequestLog) (refused []store.RequestLog, down bool, err error) {
	w := l.Writer
	if err = w.WriteRequestLogs(ctx, chunk); err == nil {
		return nil, false, nil
	}
	for i := range chunk {
		e := w.WriteRequestLogs(ctx, chunk[i:i+1])
		if e == nil {
			continue
		}
		err = e
		if refused = append(refused, chunk[i]); i == 1 && len(refused) == 2 {
			return chunk, true, err
		}
	}
	if len(refused) == 0 {
		return nil, false, nil
	}
	return refused, false, err
}

// storeWriter writes records in transactions of their own.
type storeWriter struct{ st *store.Store }

func (w storeWriter) WriteRequestLogs(ctx context.Context, rs []store.RequestLog) error {
	return w.st.InsertRequestLogs(ctx, rs)
}
