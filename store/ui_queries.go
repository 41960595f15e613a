package store

import (
	"context"
	"time"
)

// CountDispatchesSince counts the triggers accepted since a time (the dashboard's
// "triggers in the last hour").
func (s *Store) CountDispatchesSince(ctx context.Context, since time.Time) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Dispatch{}).Where("created_at >= ?", since.UTC()).Count(&n).Error
	return n, wrap("count dispatches", err)
}

// failedStates are the command states that need an admin's attention.
var failedStates = []string{StateFailed, StateRejected, StateExpired}

// FailedDispatches lists, newest first, the dispatches since a time with at least
// one command that failed, was rejected or expired.
func (s *Store) FailedDispatches(ctx context.Context, since time.Time, limit int) ([]Dispatch, error) {
	var ds []Dispatch
	failed := s.db.Model(&Command{}).Select("dispatch_id").Where("state IN ?", failedStates)
	err := s.db.WithContext(ctx).
		Where("created_at >= ? AND id IN (?)", since.UTC(), failed).
		Order("created_at DESC, id DESC").Limit(max(limit, 1)).Find(&ds).Error
	return ds, wrap("list failed dispatches", err)
}

// CountFailedDispatches counts the dispatches since a time with a failed,
// rejected or expired command.
func (s *Store) CountFailedDispatches(ctx context.Context, since time.Time) (int64, error) {
	var n int64
	failed := s.db.Model(&Command{}).Select("dispatch_id").Where("state IN ?", failedStates)
	err := s.db.WithContext(ctx).Model(&Dispatch{}).
		Where("created_at >= ? AND id IN (?)", since.UTC(), failed).Count(&n).Error
	return n, wrap("count failed dispatches", err)
}
