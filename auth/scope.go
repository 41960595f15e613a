package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"devicehooks/actions"
	"devicehooks/store"
)

// Check checks a key's name and limits, which replace hadName and had (none,
// for a new key), as Create and Edit save them, and returns the first
// problem. It also looks up the scope's actions and groups, which Edit cannot
// do in its transaction: call it before Edit.
func (k *Keys) Check(ctx context.Context, name, hadName string, l *Limits, had Limits) error {
	ps, err := k.Problems(ctx, name, hadName, l, had)
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		return ps[0]
	}
	return nil
}

// Problems checks as Check does and returns every problem, at most one per
// field, for a form that shows them all at once; err is a failure to look the
// scope up. It normalises l as Limits.Problems does.
func (k *Keys) Problems(ctx context.Context, name, hadName string, l *Limits, had Limits) (problems []error, err error) {
	if _, err := actions.KeptName("name", name, hadName); err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, l.Problems(had)...)
	// No id that names nothing (a typo would scope the key to nothing),
	// unless the key had it already: a key read and sent back is accepted
	// after one of its actions or groups was deleted.
	for _, scope := range []struct {
		field, what string
		ids, had    []string
		find        finder
	}{
		{"actions", "action", l.Actions, had.Actions, k.actionExists},
		{"groups", "group", l.Groups, had.Groups, k.groupExists},
	} {
		for i, id := range scope.ids {
			if slices.Contains(scope.had, id) {
				continue
			}
			if err := scope.find(ctx, id); errors.Is(err, store.ErrNotFound) {
				problems = append(problems, actions.Invalid(fmt.Sprintf("%s[%d]", scope.field, i), "no %s has the id %q", scope.what, id))
				break
			} else if err != nil {
				return nil, err
			}
		}
	}
	return problems, nil
}

// ScopeRemains tells whether a scope names an existing action or group besides
// the action (or group) about to be deleted: entries deleted earlier match
// nothing, and a key whose scope names nothing that exists refuses every call.
func (k *Keys) ScopeRemains(ctx context.Context, l Limits, actionID, groupID string) (bool, error) {
	if ok, err := anyExists(ctx, l.Actions, actionID, k.actionExists); ok || err != nil {
		return ok, err
	}
	return anyExists(ctx, l.Groups, groupID, k.groupExists)
}

// ScopeLeft counts the actions and groups of a key's scope that still exist
// (the keys list says how many of its entries were deleted since).
func (k *Keys) ScopeLeft(ctx context.Context, l Limits) (int, error) {
	n := 0
	for _, e := range []struct {
		ids  []string
		find finder
	}{{l.Actions, k.actionExists}, {l.Groups, k.groupExists}} {
		for _, id := range e.ids {
			switch err := e.find(ctx, id); {
			case err == nil:
				n++
			case !errors.Is(err, store.ErrNotFound):
				return 0, err
			}
		}
	}
	return n, nil
}

// finder looks a scope entry up: nil if it exists, store.ErrNotFound if not.
type finder func(ctx context.Context, id string) error

func (k *Keys) actionExists(ctx context.Context, id string) error {
	_, err := k.st.Action(ctx, id)
	return err
}

func (k *Keys) groupExists(ctx context.Context, id string) error {
	_, err := k.st.Group(ctx, id)
	return err
}

// anyExists tells whether find finds any of ids other than skip.
func anyExists(ctx context.Context, ids []string, skip string, find finder) (bool, error) {
	for _, id := range ids {
		if id == skip {
			continue
		}
		if err := find(ctx, id); err == nil {
			return true, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}
