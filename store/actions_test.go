package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"devicehooks/store"
)

// The webhook path reads actions from memory; what an admin changes must still
// take effect on the next call.
func TestActionByEventIDSeesChangesAtOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		a := &store.Action{ID: "act", Name: "x", EventID: "evt", Function: "restart", TargetType: "all", Params: "{}", Enabled: true, TTLSeconds: 60, CreatedAt: now, UpdatedAt: now}
		if _, err := st.ActionByEventID(ctx, "evt"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("before create: %v", err)
		}
		if err := st.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err := st.ActionByEventID(ctx, "evt")
		if err != nil || !got.Enabled {
			t.Fatalf("after create: %+v %v", got, err)
		}
		got.Name = "changed by a caller" // what a caller does with its copy stays its own
		if again, _ := st.ActionByEventID(ctx, "evt"); again.Name != "x" {
			t.Fatalf("the cached action was changed through a returned copy: %q", again.Name)
		}

		err = st.EditAction(ctx, a.ID, func(a *store.Action) error {
			a.Enabled, a.Function = false, "pause_loop"
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err = st.ActionByEventID(ctx, "evt")
		if err != nil || got.Enabled || got.Function != "pause_loop" {
			t.Fatalf("after update: %+v %v", got, err)
		}

		if err := st.DeleteAction(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ActionByEventID(ctx, "evt"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

// Another process sharing the database (a second Store here) sees a change within
// ActionCacheTTL.
func TestActionCacheExpiresForOtherInstances(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "shared.db")
	open := func() *store.Store {
		st, err := store.Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := open(), open()
	now := time.Now().UTC()
	act := &store.Action{ID: "act", Name: "x", EventID: "evt", Function: "restart", TargetType: "all", Params: "{}", Enabled: true, TTLSeconds: 60, CreatedAt: now, UpdatedAt: now}
	if err := a.CreateAction(ctx, act); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ActionByEventID(ctx, "evt"); err != nil || !got.Enabled {
		t.Fatalf("other instance, after create: %+v %v", got, err)
	}
	if err := a.EditAction(ctx, act.ID, func(act *store.Action) error { act.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	// Within the TTL the other instance still serves the action it read: the
	// webhook path does not ask the database on every call.
	if got, err := b.ActionByEventID(ctx, "evt"); err != nil || !got.Enabled {
		t.Fatalf("another instance, right after the change: %+v %v (want the cached, enabled action)", got, err)
	}
	deadline := changed.Add(store.ActionCacheTTL + 2*time.Second)
	for {
		got, err := b.ActionByEventID(ctx, "evt")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Enabled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another instance still used the old action %v after the change", time.Since(changed))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
