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
	write := context.WithoutCancel(ctx)
	flush := func() {
		if n := l.dropped.Swap(0); n > 0 {
			l.log.Warn("request log could not keep up; records dropped", "count", n)
		}
		if err := l.st.InsertRequestLogs(write, buf); err != nil {
			l.log.Error("write request log", "records", len(buf), "err", err)
		}
		buf = buf[:0]
	}
	for {
		select {
		case r := <-l.ch:
			buf = append(buf, r)
			if len(buf) >= 1000 {
				flush()
			}
		case now := <-t.C:
			flush()
			if now.Sub(lastPurge) > time.Hour {
				lastPurge = now
				if _, err := l.st.PurgeRequestLogs(write, now.Add(-keep)); err != nil {
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
