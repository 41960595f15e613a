package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"devicehooks/internal/wallclock"
)

// Writes to actions run to completion whatever the caller's context does: the
// cache is invalidated after the write, which must not return (cancelled) while
// the database may still commit it.

// CreateAction inserts an action.
// Its target must exist (ErrNoTarget).
func (s *Store) CreateAction(ctx context.Context, a *Action) error {
	defer s.actions.invalidate()
	return wrap("create action", s.db.WithContext(context.WithoutCancel(ctx)).Transaction(func(tx *gorm.DB) error {
		if err := targetExists(tx, a); err != nil {
			return err
		}
		return tx.Create(a).Error
	}))
}

// EditAction reads an action, lets edit change its editable fields, and saves
// them, in one transaction that holds the action (SQLite's write lock, or the
// row's lock on PostgreSQL): two edits at once are made one after the other,
// each over the other's result, and neither is lost. Its target must exist
// (ErrNoTarget). An error from edit is returned as it is, with nothing saved.
// edit must not use the store: on SQLite it would wait for a connection that
// writers queued behind this transaction may hold.
func (s *Store) EditAction(ctx context.Context, id string, edit func(*Action) error) error {
	defer s.actions.invalidate()
	var editErr error
	err := s.db.WithContext(context.WithoutCancel(ctx)).Transaction(func(tx *gorm.DB) error {
		var a Action
		if err := forUpdate(tx).Where("id = ?", id).Take(&a).Error; err != nil {
			return err
		}
		if editErr = edit(&a); editErr != nil {
			return editErr
		}
		if err := targetExists(tx, &a); err != nil {
			return err
		}
		return tx.Model(&Action{}).Where("id = ?", a.ID).Updates(map[string]any{
			"name": a.Name, "function": a.Function, "target_type": a.TargetType, "target_id": a.TargetID,
			"params": a.Params, "enabled": a.Enabled, "ttl_seconds": a.TTLSeconds, "updated_at": wallclock.Now(),
		}).Error
	})
	if editErr != nil {
		return editErr // not wrap's: its reading of a database's error must not recast the caller's
	}
	return wrap("update action", err)
}

// targetExists checks, in the transaction that saves the action, that its
// target device or group exists, and on PostgreSQL keeps it (a share lock)
// until the action is committed: DeleteDevice and DeleteGroup lock the row
// before they look for actions that target it, so one of the two sees the other.
func targetExists(tx *gorm.DB, a *Action) error {
	var model any
	switch a.TargetType {
	case TargetDevice:
		model = &Device{}
	case TargetGroup:
		model = &Group{}
	default:
		return nil
	}
	q := tx.Model(model).Where("id = ?", a.TargetID)
	if tx.Dialector.Name() == "postgres" {
		q = q.Clauses(clause.Locking{Strength: "SHARE"})
	}
	var ids []string
	if err := q.Pluck("id", &ids).Error; err != nil {
		return err
	}
	if len(ids) == 0 {
		return ErrNoTarget
	}
	return nil
}

// ActionsTargeting returns the actions whose target is this device or group
// (targetType TargetDevice or TargetGroup), by name: while there are any, it cannot
// be deleted.
func (s *Store) ActionsTargeting(ctx context.Context, targetType, id string) ([]Action, error) {
	var as []Action
	err := s.db.WithContext(ctx).Where("target_type = ? AND target_id = ?", targetType, id).Order("name, id").Find(&as).Error
	return as, wrap("actions targeting", err)
}

// Actions lists actions, newest first.
func (s *Store) Actions(ctx context.Context, p Page) ([]Action, int64, error) {
	return listPage[Action](s.db.WithContext(ctx).Model(&Action{}), p, "created_at DESC, id DESC", "actions")
}

// Action returns one action.
func (s *Store) Action(ctx context.Context, id string) (*Action, error) {
	var a Action
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&a).Error
	return &a, wrap("get action", err)
}

// ActionByEventID returns the action with that event id, enabled or not. Every
// webhook call asks for one, so found actions are kept in memory: a change made
// through this Store is seen at once, one made by another process sharing the
// database within ActionCacheTTL.
func (s *Store) ActionByEventID(ctx context.Context, eventID string) (*Action, error) {
	if a, ok := s.actions.get(eventID); ok {
		return a, nil
	}
	gen := s.actions.gen.Load()
	var a Action
	if err := s.db.WithContext(ctx).Where("event_id = ?", eventID).Take(&a).Error; err != nil {
		return nil, wrap("get action by event id", err)
	}
	s.actions.put(gen, a)
	return &a, nil
}

// DeleteAction removes an action; its past dispatches stay.
func (s *Store) DeleteAction(ctx context.Context, id string) error {
	defer s.actions.invalidate()
	return rowsOrNotFound("delete action", s.db.WithContext(context.WithoutCancel(ctx)).Where("id = ?", id).Delete(&Action{}))
}

// ActionCacheTTL bounds how long an action changed by another process sharing the
// database may still be used as it was.
const ActionCacheTTL = 5 * time.Second

// actionCache keeps actions by event id. Unknown event ids are not kept: an
// action created elsewhere is found at once, and junk ids cannot fill memory.
type actionCache struct {
	mu  sync.RWMutex
	m   map[string]cachedAction
	gen atomic.Uint64 // bumped after every write to actions
}

type cachedAction struct {
	a  Action
	at time.Time
}

// maxCachedActions bounds the cache; past it, it starts again empty.
const maxCachedActions = 10000

func (c *actionCache) get(eventID string) (*Action, bool) {
	c.mu.RLock()
	e, ok := c.m[eventID]
	c.mu.RUnlock()
	if !ok || time.Since(e.at) >= ActionCacheTTL {
		return nil, false
	}
	a := e.a // a copy: callers may change what they get
	return &a, true
}

// put keeps a, read when the generation was gen, unless a write has run since:
// the read may have seen the row before that write changed it.
func (c *actionCache) put(gen uint64, a Action) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedActions {
		c.m = make(map[string]cachedAction)
	}
	c.m[a.EventID] = cachedAction{a: a, at: time.Now()}
}

// invalidate forgets every action; it runs after each write, so a read that
// starts after the write sees it, and one that started before is not kept.
func (c *actionCache) invalidate() {
	c.mu.Lock()
	c.gen.Add(1)
	c.m = nil
	c.mu.Unlock()
}
