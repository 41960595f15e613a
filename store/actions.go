package store

import (
	"context"
	"time"
)

// CreateAction inserts an action.
func (s *Store) CreateAction(ctx context.Context, a *Action) error {
	return wrap("create action", s.db.WithContext(ctx).Create(a).Error)
}

// UpdateAction replaces an action's editable fields.
func (s *Store) UpdateAction(ctx context.Context, a *Action) error {
	res := s.db.WithContext(ctx).Model(&Action{}).Where("id = ?", a.ID).Updates(map[string]any{
		"name": a.Name, "function": a.Function, "target_type": a.TargetType, "target_id": a.TargetID,
		"params": a.Params, "enabled": a.Enabled, "ttl_seconds": a.TTLSeconds, "updated_at": time.Now().UTC(),
	})
	return rowsOrNotFound("update action", res)
}

// Actions lists actions, newest first.
func (s *Store) Actions(ctx context.Context, p Page) ([]Action, int64, error) {
	var (
		as    []Action
		total int64
	)
	q := s.db.WithContext(ctx).Model(&Action{})
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, wrap("count actions", err)
	}
	err := p.apply(q).Order("created_at DESC, id DESC").Find(&as).Error
	return as, total, wrap("list actions", err)
}

// Action returns one action.
func (s *Store) Action(ctx context.Context, id string) (*Action, error) {
	var a Action
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&a).Error
	return &a, wrap("get action", err)
}

// ActionByEventID returns the action with that event id, enabled or not.
func (s *Store) ActionByEventID(ctx context.Context, eventID string) (*Action, error) {
	var a Action
	err := s.db.WithContext(ctx).Where("event_id = ?", eventID).Take(&a).Error
	return &a, wrap("get action by event id", err)
}

// DeleteAction removes an action; its past dispatches stay.
func (s *Store) DeleteAction(ctx context.Context, id string) error {
	return rowsOrNotFound("delete action", s.db.WithContext(ctx).Where("id = ?", id).Delete(&Action{}))
}
