package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"devicehooks/store"
)

// A large group's edit page reads its members a page at a time, searched by
// id or name; the id field's suggestions put the ids that start with what is
// typed first, can leave a group's members out, and read LIKE's wildcards as
// the characters typed.
func TestGroupMembersAndSuggestions(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"abc-1", "xabc", "Abc-2", "zz", "a_c", "abc%"} {
			d := device(id)
			d.Name = "Screen " + id
			if err := st.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC()
		if err := st.CreateGroup(ctx, &store.Group{ID: "g1", Name: "G", CreatedAt: now, UpdatedAt: now, DeviceIDs: []string{"abc-1", "zz"}}); err != nil {
			t.Fatal(err)
		}

		suggest := func(text, notIn string) []string {
			t.Helper()
			ds, err := st.SuggestDevices(ctx, text, notIn, 20)
			if err != nil {
				t.Fatal(err)
			}
			return deviceIDs(ds)
		}
		// Those starting with "abc" (any case) first, in some order of ids;
		// then the one that only contains it.
		got := suggest("abc", "")
		if len(got) != 4 || got[3] != "xabc" || !sameSet(got[:3], []string{"abc-1", "Abc-2", "abc%"}) {
			t.Fatalf("abc: %v", got)
		}
		if got := suggest("abc", "g1"); len(got) != 3 || got[2] != "xabc" || !sameSet(got[:2], []string{"Abc-2", "abc%"}) {
			t.Fatalf("abc outside g1: %v", got)
		}
		if got := suggest("a_c", ""); !slices.Equal(got, []string{"a_c"}) {
			t.Fatalf("a_c: %v", got)
		}
		if got := suggest("c%", ""); !slices.Equal(got, []string{"abc%"}) {
			t.Fatalf("c%%: %v", got)
		}

		members := func(group, search string) ([]string, int64) {
			t.Helper()
			ds, n, err := st.GroupMembers(ctx, group, search, store.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return deviceIDs(ds), n
		}
		if got, n := members("g1", ""); !slices.Equal(got, []string{"abc-1", "zz"}) || n != 2 {
			t.Fatalf("g1's members: %v of %d", got, n)
		}
		if got, n := members("g1", "SCREEN Z"); !slices.Equal(got, []string{"zz"}) || n != 1 {
			t.Fatalf("g1's members named like screen z: %v of %d", got, n)
		}
		if got, n := members("nope", ""); len(got) != 0 || n != 0 {
			t.Fatalf("an unknown group's members: %v of %d", got, n)
		}
	})
}

func deviceIDs(ds []store.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// An update, which writes only the members that change
// (BenchmarkUpdateGroup), ends with exactly the members asked for: one taken
// out, one put in, one named twice, the rest kept; an unknown device among
// those put in changes nothing.
func TestUpdateGroupEndsWithTheMembersAskedFor(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"a", "b", "c", "d"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC()
		if err := st.CreateGroup(ctx, &store.Group{ID: "g", Name: "G", CreatedAt: now, UpdatedAt: now, DeviceIDs: []string{"a", "b", "c"}}); err != nil {
			t.Fatal(err)
		}
		members := func() []string {
			t.Helper()
			ids, err := st.GroupDeviceIDs(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
		if err := st.UpdateGroup(ctx, &store.Group{ID: "g", Name: "G2", DeviceIDs: []string{"c", "d", "a", "d"}}, nil); err != nil {
			t.Fatal(err)
		}
		if got := members(); !slices.Equal(got, []string{"a", "c", "d"}) {
			t.Fatalf("members %v, want a c d", got)
		}
		err := st.UpdateGroup(ctx, &store.Group{ID: "g", Name: "G3", DeviceIDs: []string{"a", "nobody"}}, nil)
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an unknown device: %v", err)
		}
		if got := members(); !slices.Equal(got, []string{"a", "c", "d"}) {
			t.Fatalf("after a refused update: %v", got)
		}
		if g, err := st.Group(ctx, "g"); err != nil || g.Name != "G2" {
			t.Fatalf("after a refused update: %+v %v", g, err)
		}
	})
}

// Two updates at once go one after the other, each from the members the
// other left: the group ends with one update's name and that update's
// members, never one's name with the other's members or a mix of both.
func TestUpdateGroupsAtOnceTakeTurns(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		ids := []string{"a", "b", "c", "d", "e", "f"}
		for _, id := range ids {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC()
		if err := st.CreateGroup(ctx, &store.Group{ID: "g", Name: "A", CreatedAt: now, UpdatedAt: now, DeviceIDs: ids[:3]}); err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"A": {"a", "b", "c", "d"}, "B": {"c", "d", "e", "f"}}
		for round := range 20 {
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for name, members := range want {
				wg.Go(func() { errs <- st.UpdateGroup(ctx, &store.Group{ID: "g", Name: name, DeviceIDs: members}, nil) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			g, err := st.Group(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(g.DeviceIDs, want[g.Name]) {
				t.Fatalf("round %d: the group is named %s with the members %v", round, g.Name, g.DeviceIDs)
			}
		}
	})
}

// A device deleted while an update puts it in the group makes the update
// "not found" (or the device goes after it, with its membership), never a
// database's error that reads as a failure of the service.
func TestUpdateGroupRacingADeviceDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		if err := st.CreateGroup(ctx, &store.Group{ID: "g", Name: "G", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			id := fmt.Sprintf("d%03d", i)
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
			var (
				wg        sync.WaitGroup
				updateErr error
			)
			wg.Go(func() {
				updateErr = st.UpdateGroup(ctx, &store.Group{ID: "g", Name: "G", DeviceIDs: []string{id}}, nil)
			})
			wg.Go(func() { _, _ = st.DeleteDevice(ctx, id) })
			wg.Wait()
			if updateErr != nil && !errors.Is(updateErr, store.ErrNotFound) {
				t.Fatalf("round %d: %v", i, updateErr)
			}
			if ids, err := st.GroupDeviceIDs(ctx, "g"); err != nil || len(ids) != 0 {
				t.Fatalf("round %d: the deleted device is a member: %v %v", i, ids, err)
			}
		}
	})
}
