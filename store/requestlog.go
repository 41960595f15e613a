package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// InsertRequestLogs writes a batch of webhook call records, all or none.
func (s *Store) InsertRequestLogs(ctx context.Context, rs []RequestLog) error {
	if len(rs) == 0 {
		return nil
	}
	return wrap("insert request logs", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return s.insertRequestLogs(tx, rs)
	}))
}

// insertRequestLogs writes records in tx: InsertRequestLogs's, and a WriteBatch's.
func (s *Store) insertRequestLogs(tx *gorm.DB, rs []RequestLog) error {
	if len(rs) == 0 {
		return nil
	}
	if !columnsMatch(tx, &RequestLog{}, requestLogColumns) {
		return tx.CreateInBatches(rs, 200).Error
	}
	return s.stmts.insertRows(tx, "request_logs", requestLogColumns, len(rs), func(i int, args []any) []any {
		r := &rs[i]
		return append(args, r.ID, r.At, r.Method, r.KeyID, r.KeyPrefix, r.Source, r.UserAgent,
			r.EventID, r.Status, r.Code, r.DispatchID, r.LatencyUS)
	})
}

// requestLogColumns are RequestLog's columns, in the order InsertRequestLogs binds them.
var requestLogColumns = []string{"id", "at", "method", "key_id", "key_prefix", "source", "user_agent",
	"event_id", "status", "code", "dispatch_id", "latency_us"}

// RequestFilter narrows a request-log listing; empty fields match everything.
type RequestFilter struct {
	Code   string
	KeyID  string
	Source string
	Method string
	Since  time.Time
	Until  time.Time
}

// requestLogIndexes serve the request log's filters in its order, newest
// first: each filter's index ends with the order's columns, so that a page
// of one code, key or source is read off the index's end, not sorted out of
// every matching call (0.6–1 s with 375,000 of one code, and growing with
// the retention). They replace single-column indexes of earlier builds.
var requestLogIndexes = []string{
	`CREATE INDEX IF NOT EXISTS idx_request_logs_code_at ON request_logs (code, at, id)`,
	`CREATE INDEX IF NOT EXISTS idx_request_logs_key_at ON request_logs (key_id, at, id)`,
	`CREATE INDEX IF NOT EXISTS idx_request_logs_source_at ON request_logs (source, at, id)`,
	`DROP INDEX IF EXISTS idx_request_logs_code`,
	`DROP INDEX IF EXISTS idx_request_logs_key_id`,
	`DROP INDEX IF EXISTS idx_request_logs_source`,
}

// RequestLogs lists webhook calls, newest first.
func (s *Store) RequestLogs(ctx context.Context, f RequestFilter, p Page) ([]RequestLog, int64, error) {
	q := s.db.WithContext(ctx).Model(&RequestLog{})
	q = equalTo(q, "code", f.Code)
	q = equalTo(q, "key_id", f.KeyID)
	q = equalTo(q, "source", f.Source)
	q = equalTo(q, "method", f.Method)
	q = within(q, "at", f.Since, f.Until)
	return listPage[RequestLog](q, p, "at DESC, id DESC", "request logs")
}

// SourceCount is how many calls came from one address.
type SourceCount struct {
	Source string `json:"source"`
	Calls  int64  `json:"calls"`
	Denied int64  `json:"denied"`
}

// The request log's codes of calls that were not refused: one that fired, and
// those that fire nothing by design. Any other code is an error's, a refusal.
const (
	CallSuccess  = "success"
	CallHead     = "head"      // a HEAD request
	CallPrefetch = "prefetch"  // a browser's prefetch or prerender
	CallPreview  = "preview"   // a link preview (a chat app's, Outlook's)
	CallConfirm  = "confirm"   // a confirm link's page, before its button
	CallFollowUp = "follow_up" // a caller's follow-up of its dispatch
)

// notRefused are the codes above: TopSources counts the others as denied.
var notRefused = []string{CallSuccess, CallHead, CallPrefetch, CallPreview, CallConfirm, CallFollowUp}

// TopSources lists the addresses with the most webhook calls since a time, so an
// operator sees who is hammering the endpoint, with how many were refused.
func (s *Store) TopSources(ctx context.Context, since time.Time, limit int) ([]SourceCount, error) {
	var out []SourceCount
	err := s.db.WithContext(ctx).Model(&RequestLog{}).
		Select("source, COUNT(*) AS calls, SUM(CASE WHEN code IN ? THEN 0 ELSE 1 END) AS denied", notRefused).
		Where("at >= ?", since.UTC()).Group("source").Order("calls DESC").Limit(limit).Scan(&out).Error
	return out, wrap("top sources", err)
}

// PurgeRequestLogs deletes records older than before, a few hundred at a time.
func (s *Store) PurgeRequestLogs(ctx context.Context, before time.Time) (int64, error) {
	return s.inChunks(ctx, "purge request logs",
		`DELETE FROM request_logs WHERE id IN (SELECT id FROM request_logs WHERE at < ? LIMIT ?)`, before)
}
