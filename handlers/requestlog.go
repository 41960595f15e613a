package handlers

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"devicehooks/store"
)

// RequestLog records every webhook call, accepted or not, in the database: off the
// request's path, in batches, and kept for a configurable number of days.
type RequestLog struct {
	st      *store.Store
	log     *slog.Logger
	ch      chan store.RequestLog
	dropped atomic.Int64
}

// NewRequestLog returns a request log; Run writes it.
func NewRequestLog(st *store.Store, log *slog.Logger) *RequestLog {
	return &RequestLog{st: st, log: log, ch: make(chan store.RequestLog, 16384)}
}

// Record queues one call; if the writer is far behind, the record is counted as
// dropped rather than slowing the webhook down.
func (l *RequestLog) Record(r store.RequestLog) {
	select {
	case l.ch <- r:
	default:
		l.dropped.Add(1)
	}
}

// Run writes queued records until ctx ends, and deletes those older than keep.
func (l *RequestLog) Run(ctx context.Context, keep time.Duration) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var (
		buf       []store.RequestLog
		lastPurge time.Time
	)
	// Writes are not cancelled by shutdown mid-way: the records taken from buf
	// would be lost. Each is bounded by the database's busy timeout.
	wctx := context.WithoutCancel(ctx)
	failing := false // the last write failed: wait for the ticker to try again
	flush := func() {
		if n := l.dropped.Swap(0); n > 0 {
			l.log.Warn("request log could not keep up; records dropped", "count", n)
		}
		buf = l.write(wctx, buf, time.Now().UTC())
		failing = len(buf) > 0
	}
	for {
		select {
		case r := <-l.ch:
			buf = append(buf, r)
			if len(buf) >= 1000 && !failing {
				flush()
			}
		case now := <-t.C:
			flush()
			if now.Sub(lastPurge) > time.Hour {
				lastPurge = now
				if _, err := l.st.PurgeRequestLogs(wctx, now.Add(-keep)); err != nil {
					l.log.Error("purge request log", "err", err)
				}
			}
		case <-ctx.Done():
			for {
				select {
				case r := <-l.ch:
					buf = append(buf, r)
				default:
					flush()
					return
				}
			}
		}
	}
}

// retryRecordsFor is how long a record the database does not take is tried again
// before it is dropped (a database away for longer, or a record it refuses).
const retryRecordsFor = time.Minute

// recordsPerTx bounds the records one transaction writes. SQLite has one writer
// at a time, and the trigger path's writer waits for this one: a busy 200 ms
// flushed in a single transaction (about 800 records at 4,000 calls/s) held it
// for 5 to 20 ms every flush. 64 records take about a millisecond.
const recordsPerTx = 64

// write stores buf, recordsPerTx records per transaction, and returns what is
// left for the next flush. If a transaction fails but its first record goes in
// alone, the database works and refuses some record of it (it has happened: a
// value PostgreSQL would not take): the others are written one by one, so that
// record cannot hold them up. If not even the first goes in, the database takes
// nothing now, and the rest waits for the next flush. What is not written is
// tried again at later flushes, for retryRecordsFor at most.
func (l *RequestLog) write(ctx context.Context, buf []store.RequestLog, now time.Time) []store.RequestLog {
	var (
		left []store.RequestLog
		err  error
	)
	for rest := buf; len(rest) > 0; {
		chunk := rest[:min(len(rest), recordsPerTx)]
		rest = rest[len(chunk):]
		refused, e := l.writeChunk(ctx, chunk)
		if e == nil {
			continue
		}
		err = e
		left = append(left, refused...)
		if len(refused) == len(chunk) {
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
	l.log.Error("write request log", "waiting", len(kept), "dropped", dropped, "err", err)
	return kept
}

// writeChunk stores chunk in one transaction, or what it can of it one by one,
// and returns the records the database refused.
func (l *RequestLog) writeChunk(ctx context.Context, chunk []store.RequestLog) ([]store.RequestLog, error) {
	err := l.st.InsertRequestLogs(ctx, chunk)
	if err == nil {
		return nil, nil
	}
	if len(chunk) == 1 || l.st.InsertRequestLogs(ctx, chunk[:1]) != nil {
		return chunk, err
	}
	var refused []store.RequestLog
	for i := 1; i < len(chunk); i++ {
		if e := l.st.InsertRequestLogs(ctx, chunk[i:i+1]); e != nil {
			err = e
			refused = append(refused, chunk[i])
		}
	}
	if len(refused) == 0 {
		return nil, nil
	}
	return refused, err
}
