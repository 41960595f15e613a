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

// write stores buf and returns what is left for the next flush. If the batch
// fails but its first record goes in alone, the database works and refuses some
// record of it (it has happened: a value PostgreSQL would not take): the others
// are written one by one, so that record cannot hold them up. What still fails is
// tried again at the next flush, for retryRecordsFor at most.
func (l *RequestLog) write(ctx context.Context, buf []store.RequestLog, now time.Time) []store.RequestLog {
	err := l.st.InsertRequestLogs(ctx, buf)
	if err == nil {
		return buf[:0]
	}
	if len(buf) > 1 && l.st.InsertRequestLogs(ctx, buf[:1]) == nil {
		var refused []store.RequestLog
		for i := 1; i < len(buf); i++ {
			if e := l.st.InsertRequestLogs(ctx, buf[i:i+1]); e != nil {
				err = e
				refused = append(refused, buf[i])
			}
		}
		buf = append(buf[:0], refused...)
	}
	kept, dropped := buf[:0], 0
	for _, r := range buf {
		if now.Sub(r.At) < retryRecordsFor {
			kept = append(kept, r)
		} else {
			dropped++
		}
	}
	l.log.Error("write request log", "waiting", len(kept), "dropped", dropped, "err", err)
	return kept
}
