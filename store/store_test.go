package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// eachBackend runs f on a fresh SQLite file and on a fresh PostgreSQL database.
func eachBackend(t *testing.T, f func(t *testing.T, st *store.Store)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "test.db")
			if name == "postgres" {
				dsn = testenv.Postgres(t)
			}
			st, err := store.Open(context.Background(), dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			f(t, st)
		})
	}
}

func TestSQLitePragmasTakeEffect(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "1",
		"wal_autocheckpoint": "16384", "journal_size_limit": "67108864", // checkpoints in the background
	} {
		if got, err := st.Pragma(context.Background(), pragma); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q (%v), want %q", pragma, got, err, want)
		}
	}
}

// With the automatic checkpoint pushed back, the store's own must keep the WAL
// small: after a burst of writes, it is copied into the database within seconds.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dbSize := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if err := st.Checkpoint(ctx); err != nil { // the migrations' pages, out of the way
		t.Fatal(err)
	}
	before := dbSize()
	for i := range 20 {
		nd := newDispatch(fmt.Sprintf("disp%02d", i), nil, "")
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if err := st.CreateDevice(ctx, device(fmt.Sprintf("d%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for dbSize() == before {
		if time.Now().After(deadline) {
			t.Fatalf("the database file stayed at %d bytes for 5 s after 220 commits: nothing checkpointed the WAL", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func device(id string) *store.Device {
	now := time.Now().UTC()
	return &store.Device{ID: id, Name: id, TokenHash: "hash-" + id, MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}
}

// Every time is read back in UTC, on PostgreSQL too, where pgx read them in
// the machine's zone: a server run with TZ=America/New_York answered its
// API's times at -05:00, which api.md says are in UTC.
func TestTimesAreReadInUTC(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		expires := time.Now().UTC().Add(time.Hour)
		if err := st.CreateDevice(ctx, device("d1")); err != nil {
			t.Fatal(err)
		}
		key := &store.APIKey{ID: "k1", Name: "k", Prefix: "p", LookupHash: "h", CreatedAt: time.Now().UTC(), ExpiresAt: &expires}
		if err := st.CreateAPIKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch("disp", []string{"d1"}, "")}); err != nil {
			t.Fatal(err)
		}
		d, err := st.Device(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		k, err := st.APIKey(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		disp, err := st.Dispatch(ctx, "disp")
		if err != nil {
			t.Fatal(err)
		}
		cmds, err := st.DispatchCommands(ctx, "disp")
		if err != nil || len(cmds) != 1 {
			t.Fatal(cmds, err)
		}
		for _, v := range []any{d, k, disp, &cmds[0]} {
			rv := reflect.ValueOf(v).Elem()
			for i := range rv.NumField() {
				f := rv.Field(i)
				if f.Kind() == reflect.Pointer && !f.IsNil() {
					f = f.Elem()
				}
				if tm, ok := f.Interface().(time.Time); ok && tm.Location() != time.UTC {
					t.Errorf("%T.%s = %v, read in %q rather than UTC", v, rv.Type().Field(i).Name, tm, tm.Location())
				}
			}
		}
	})
}

// A start holds recorded times from the latest the database has: a
// trigger's, or a device's presence or last message.
func TestLatestRecorded(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if at, err := st.LatestRecorded(ctx); err != nil || !at.IsZero() {
			t.Fatalf("an empty database: %v, %v", at, err)
		}
		base := time.Now().UTC().Truncate(time.Microsecond) // as PostgreSQL keeps it
		if err := st.CreateDevice(ctx, device("d1")); err != nil {
			t.Fatal(err)
		}
		nd := newDispatch("disp", []string{"d1"}, "")
		nd.Dispatch.CreatedAt = base.Add(time.Minute)
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			presence store.Presence
			want     time.Time
		}{
			{store.Presence{DeviceID: "d1", Online: true, At: base, LastSeen: base}, base.Add(time.Minute)},
			{store.Presence{DeviceID: "d1", Online: true, At: base.Add(2 * time.Minute), LastSeen: base}, base.Add(2 * time.Minute)},
			{store.Presence{DeviceID: "d1", Online: true, At: base.Add(2 * time.Minute), LastSeen: base.Add(3 * time.Minute)}, base.Add(3 * time.Minute)},
		} {
			if err := st.SavePresence(ctx, []store.Presence{c.presence}); err != nil {
				t.Fatal(err)
			}
			if at, err := st.LatestRecorded(ctx); err != nil || !at.Equal(c.want) {
				t.Errorf("with presence at %v, last seen %v: %v, %v; want %v", c.presence.At, c.presence.LastSeen, at, err, c.want)
			}
		}
	})
}

func TestCRUDAndReferences(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"a", "b"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.CreateDevice(ctx, device("a")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate device: %v", err)
		}
		now := time.Now().UTC()
		g := &store.Group{ID: "g1", Name: "lobby", CreatedAt: now, UpdatedAt: now, DeviceIDs: []string{"a", "b"}}
		if err := st.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		bad := &store.Group{ID: "g2", Name: "bad", CreatedAt: now, UpdatedAt: now, DeviceIDs: []string{"a", "ghost"}}
		if err := st.CreateGroup(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("group with unknown member: %v", err)
		}
		if _, err := st.Group(ctx, "g2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("a failed group create left the group behind")
		}
		a := &store.Action{ID: "act", Name: "x", EventID: "evt_1", Function: "restart", TargetType: "group", TargetID: "g1", Params: "{}", Enabled: false, TTLSeconds: 60, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err := st.ActionByEventID(ctx, "evt_1")
		if err != nil || got.Enabled {
			t.Fatalf("action read back: %+v %v (a disabled action must stay disabled)", got, err)
		}
		if err := st.DeleteGroup(ctx, "g1"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("deleting a targeted group: %v", err)
		}
		if _, err := st.DeleteDevice(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		ids, _ := st.GroupDeviceIDs(ctx, "g1")
		if len(ids) != 1 || ids[0] != "b" {
			t.Fatalf("members after deleting a: %v", ids)
		}
		if _, err := st.DeleteDevice(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}
	})
}

// UpdateGroup's check sees the group as it is when the update holds it, and
// its refusal changes nothing.
func TestUpdateGroupChecksTheGroupAsItIs(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"b", "a"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC()
		if err := st.CreateGroup(ctx, &store.Group{ID: "g", Name: "lobby", CreatedAt: now, UpdatedAt: now, DeviceIDs: []string{"b", "a"}}); err != nil {
			t.Fatal(err)
		}
		refused := errors.New("refused")
		var seen store.Group
		err := st.UpdateGroup(ctx, &store.Group{ID: "g", Name: "renamed"}, func(cur *store.Group) error {
			seen = *cur
			return refused
		})
		if err != refused {
			t.Fatalf("the check's error came back as %v", err)
		}
		if seen.Name != "lobby" || strings.Join(seen.DeviceIDs, ",") != "a,b" {
			t.Fatalf("the check saw %q with %v, want lobby with a,b", seen.Name, seen.DeviceIDs)
		}
		if g, err := st.Group(ctx, "g"); err != nil || g.Name != "lobby" || len(g.DeviceIDs) != 2 {
			t.Fatalf("after a refused update: %+v %v", g, err)
		}
		err = st.UpdateGroup(ctx, &store.Group{ID: "g", Name: "renamed", DeviceIDs: []string{"a"}}, func(*store.Group) error { return nil })
		if g, _ := st.Group(ctx, "g"); err != nil || g.Name != "renamed" || len(g.DeviceIDs) != 1 {
			t.Fatalf("after an accepted update: %+v %v", g, err)
		}
		if err := st.UpdateGroup(ctx, &store.Group{ID: "nope", Name: "x"}, func(*store.Group) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a missing group: %v", err)
		}
	})
}

func newDispatch(id string, devices []string, idem string) *store.NewDispatch {
	now := time.Now().UTC()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: id, ActionID: "act", ActionName: "x", EventID: "evt", Function: "restart", Method: "POST", Targets: len(devices), CreatedAt: now}}
	for _, d := range devices {
		nd.Commands = append(nd.Commands, store.Command{
			ID: id + "-" + d, DispatchID: id, DeviceID: d, State: store.StateQueued, Function: "restart",
			Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute),
		})
	}
	if idem != "" {
		nd.Idempotency = &store.Idempotency{APIKeyID: "k", Key: idem, DispatchID: id, Response: `{"dispatch_id":"` + id + `"}`, CreatedAt: now}
	}
	return nd
}

// An action's target must exist when it is saved, and an action saved while
// its target is being deleted never ends up pointing at nothing: one of the
// two is refused.
func TestActionTargetsExist(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		action := func(id, targetType, target string) *store.Action {
			return &store.Action{ID: id, Name: id, EventID: "evt_" + id, Function: "restart", TargetType: targetType, TargetID: target,
				Params: "{}", Enabled: true, TTLSeconds: 60, CreatedAt: now, UpdatedAt: now}
		}
		if err := st.CreateAction(ctx, action("a0", "device", "ghost")); !errors.Is(err, store.ErrNoTarget) {
			t.Fatalf("action to a missing device: %v", err)
		}
		if err := st.CreateAction(ctx, action("a0", "group", "ghost")); !errors.Is(err, store.ErrNoTarget) {
			t.Fatalf("action to a missing group: %v", err)
		}
		st.CreateDevice(ctx, device("d0"))
		a := action("a0", "device", "d0")
		if err := st.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAction(ctx, action("a1", "all", "")); err != nil {
			t.Fatal(err)
		}
		if got, err := st.ActionsTargeting(ctx, "device", "d0"); err != nil || len(got) != 1 || got[0].ID != "a0" {
			t.Fatalf("actions targeting d0: %+v, %v", got, err)
		}
		err := st.EditAction(ctx, a.ID, func(a *store.Action) error { a.TargetID = "ghost"; return nil })
		if !errors.Is(err, store.ErrNoTarget) {
			t.Fatalf("action moved to a missing device: %v", err)
		}
		for i := range 40 {
			id := fmt.Sprintf("race-%d", i)
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var createErr, deleteErr error
			wg.Go(func() { createErr = st.CreateAction(ctx, action(id, "device", id)) })
			wg.Go(func() { _, deleteErr = st.DeleteDevice(ctx, id) })
			wg.Wait()
			if (createErr == nil) == (deleteErr == nil) {
				t.Fatalf("round %d: create %v, delete %v: want exactly one refused", i, createErr, deleteErr)
			}
		}
	})
}

func TestDispatchBatchAndCommandLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"d1", "d2"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		dup, err := st.WriteDispatches(ctx, []*store.NewDispatch{
			newDispatch("x1", []string{"d1", "d2"}, "same"),
			newDispatch("x2", []string{"d1"}, "same"), // loses to x1 in the same batch
			newDispatch("x3", []string{"d2"}, ""),
		})
		if err != nil || dup[0] || !dup[1] || dup[2] {
			t.Fatalf("dup = %v, err = %v", dup, err)
		}
		if _, err := st.Dispatch(ctx, "x2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("the duplicate's dispatch was written")
		}
		rec, err := st.IdempotentResponse(ctx, "k", "same", time.Now().Add(-time.Hour))
		if err != nil || rec.DispatchID != "x1" {
			t.Fatalf("idempotency record: %+v %v", rec, err)
		}

		now := time.Now().UTC()
		// An ack may overtake the published mark; the mark must not undo it.
		applied, err := st.ApplyAcks(ctx, []store.Ack{
			{CommandID: "x1-d1", DeviceID: "d1", State: store.StateSucceeded, At: now},
			{CommandID: "x1-d2", DeviceID: "d1", State: store.StateSucceeded, At: now}, // wrong device
		})
		if err != nil || !applied[0] || applied[1] {
			t.Fatalf("applied = %v, %v", applied, err)
		}
		if err := st.MarkPublished(ctx, []string{"x1-d1", "x1-d2"}, now); err != nil {
			t.Fatal(err)
		}
		cmds, _ := st.DispatchCommands(ctx, "x1")
		if cmds[0].State != store.StateSucceeded || cmds[1].State != store.StatePublished || cmds[0].PublishedAt == nil {
			t.Fatalf("states: %s %s", cmds[0].State, cmds[1].State)
		}
		// A second ack for a settled command changes nothing.
		if applied, _ := st.ApplyAcks(ctx, []store.Ack{{CommandID: "x1-d1", DeviceID: "d1", State: store.StateFailed, At: now}}); applied[0] {
			t.Fatal("a settled command was acked again")
		}
		// Nor does an ack that comes after the command's expiry, though the
		// sweeper has not yet marked it expired (it expires in a minute).
		late := now.Add(time.Minute + time.Millisecond)
		if applied, _ := st.ApplyAcks(ctx, []store.Ack{{CommandID: "x1-d2", DeviceID: "d2", State: store.StateSucceeded, At: late}}); applied[0] {
			t.Fatal("an ack after the command's expiry settled it")
		}
		pending, err := st.PendingCommands(ctx, []string{"d2"}, []string{store.StateQueued}, now, store.PendingAfter{}, 100)
		if err != nil || len(pending) != 1 || pending[0].ID != "x3-d2" {
			t.Fatalf("pending queued for d2: %v %v", pending, err)
		}
		n, err := st.ExpireCommands(ctx, now.Add(2*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("expired %d (%v), want 2", n, err)
		}
		counts, _ := st.CommandCounts(ctx, []string{"x1", "x3"})
		if counts["x1"][store.StateSucceeded] != 1 || counts["x1"][store.StateExpired] != 1 || counts["x3"][store.StateExpired] != 1 {
			t.Fatalf("counts: %v", counts)
		}
		// The detail says whether the player ever had the command.
		x1, _ := st.DispatchCommands(ctx, "x1")
		x3, _ := st.DispatchCommands(ctx, "x3")
		if x1[1].Detail != store.DetailExpiredUnacked || x3[0].Detail != store.DetailExpiredUndelivered {
			t.Fatalf("details: published %q, queued %q", x1[1].Detail, x3[0].Detail)
		}
	})
}

func TestDesiredStateVersions(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		paused := true
		nd := newDispatch("y1", []string{"d1"}, "")
		nd.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: true, Message: "evacuate"}}
		nd2 := newDispatch("y2", []string{"d1"}, "")
		nd2.Desired = &store.DesiredChange{LoopPaused: &paused}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd, nd2}); err != nil {
			t.Fatal(err)
		}
		ds, err := st.DevicesWithDesired(ctx, []string{"d1"})
		if err != nil || len(ds) != 1 || ds[0].DesiredVersion != 2 || !ds[0].EmergencyEnabled || ds[0].EmergencyMessage != "evacuate" || !ds[0].LoopPaused {
			t.Fatalf("desired: %+v %v", ds, err)
		}
	})
}

// A device deleted and created again under the same id gets desired states
// with versions above the old device's: a player that kept running through it
// applies only a higher version.
func TestDesiredVersionsOutliveADeletedDevice(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		version := func() int64 {
			t.Helper()
			ds, err := st.DevicesWithDesired(ctx, []string{"d1"})
			if err != nil || len(ds) != 1 {
				t.Fatalf("desired: %+v %v", ds, err)
			}
			return ds[0].DesiredVersion
		}
		change := func(id string, devices ...string) {
			t.Helper()
			nd := newDispatch(id, devices, "")
			nd.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: true, Message: id}}
			if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
				t.Fatal(err)
			}
		}
		st.CreateDevice(ctx, device("d1"))
		st.CreateDevice(ctx, device("d2"))
		change("e1", "d1")
		change("e2", "d1", "d2")
		change("e3", "d1")
		old := version()
		expired, err := st.DeleteDevice(ctx, "d1")
		if slices.Sort(expired); err != nil || strings.Join(expired, " ") != "e1-d1 e2-d1 e3-d1" {
			t.Fatalf("deleting d1: expired %v, %v", expired, err)
		}
		if err := st.CreateDevice(ctx, device("d1")); err != nil {
			t.Fatal(err)
		}
		change("e4", "d1")
		if v := version(); v <= old {
			t.Fatalf("the new d1's first desired state has version %d, not above the deleted d1's %d", v, old)
		}
	})
}

// A desired-state change marks the open commands it makes obsolete expired,
// on its devices only, and leaves other functions' commands alone.
func TestDesiredChangeSupersedesOpenCommands(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		st.CreateDevice(ctx, device("d2"))
		write := func(id, function string, devices ...string) {
			t.Helper()
			nd := newDispatch(id, devices, "")
			for i := range nd.Commands {
				nd.Commands[i].Function = function
			}
			if function == "set_emergency" {
				nd.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: true}, Supersedes: []string{"set_emergency"}}
			}
			if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
				t.Fatal(err)
			}
		}
		write("e1", "set_emergency", "d1", "d2")
		write("r1", "restart", "d1")
		write("e2", "set_emergency", "d1")
		for dispatch, want := range map[string]map[string]string{
			"e1": {"d1": store.StateExpired, "d2": store.StateQueued},
			"r1": {"d1": store.StateQueued},
			"e2": {"d1": store.StateQueued},
		} {
			cmds, err := st.DispatchCommands(ctx, dispatch)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cmds {
				if c.State != want[c.DeviceID] {
					t.Errorf("%s to %s: %s, want %s", dispatch, c.DeviceID, c.State, want[c.DeviceID])
				}
				if c.State == store.StateExpired && c.Detail != "superseded by dispatch e2" {
					t.Errorf("%s to %s: detail %q", dispatch, c.DeviceID, c.Detail)
				}
			}
		}
	})
}

func TestPresenceNeverGoesBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		t1 := time.Now().UTC()
		t0 := t1.Add(-time.Minute)
		if err := st.SavePresence(ctx, []store.Presence{{DeviceID: "d1", Online: true, At: t1, LastSeen: t1}}); err != nil {
			t.Fatal(err)
		}
		st.SavePresence(ctx, []store.Presence{{DeviceID: "d1", Online: false, At: t0, LastSeen: t0}})
		d, _ := st.Device(ctx, "d1")
		if !d.Online {
			t.Fatal("an older presence overwrote a newer one")
		}
		near := func(t *time.Time) bool { return t != nil && t.Sub(t1).Abs() < time.Microsecond } // PostgreSQL keeps µs
		if !near(d.LastSeen) || !near(d.PresenceAt) {
			t.Fatalf("last seen %v, presence at %v; want both %v", d.LastSeen, d.PresenceAt, t1)
		}
	})
}

// TestConcurrentWriters runs read-then-write transactions from many goroutines:
// with immediate transactions SQLite waits instead of failing with "locked".
func TestConcurrentWriters(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		var wg sync.WaitGroup
		errs := make(chan error, 16*25)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					id := fmt.Sprintf("c%d-%d", g, i)
					if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch(id, []string{"d1"}, id)}); err != nil {
						errs <- err
					}
					if _, err := st.ApplyAcks(ctx, []store.Ack{{CommandID: id + "-d1", DeviceID: "d1", State: store.StateSucceeded, At: time.Now()}}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		_, total, _ := st.Dispatches(ctx, store.DispatchFilter{}, store.Page{})
		if total != 400 {
			t.Fatalf("dispatches: %d, want 400", total)
		}
	})
}

// Request logs go in through the writer's prepared multi-row inserts (a batch of
// 100 is one chunk of 64 and three smaller ones) and come back field for field.
func TestRequestLogsRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		at := time.Now().UTC().Truncate(time.Microsecond)
		rs := make([]store.RequestLog, 100)
		for i := range rs {
			rs[i] = store.RequestLog{
				ID: fmt.Sprintf("r%03d", i), At: at.Add(time.Duration(i) * time.Millisecond), Method: "POST",
				KeyID: "k1", KeyPrefix: "dhk_ab", Source: "10.0.0.1", UserAgent: "curl/8", EventID: "evt",
				Status: 202, Code: "success", DispatchID: fmt.Sprintf("d%03d", i), LatencyUS: int64(i),
			}
		}
		if err := st.InsertRequestLogs(ctx, rs); err != nil {
			t.Fatal(err)
		}
		got, total, err := st.RequestLogs(ctx, store.RequestFilter{}, store.Page{Limit: 200})
		if err != nil || total != 100 || len(got) != 100 {
			t.Fatalf("got %d of %d, %v", len(got), total, err)
		}
		// Newest first.
		for i, g := range got {
			want := rs[99-i]
			g.At, want.At = g.At.UTC(), want.At.UTC()
			if g != want {
				t.Fatalf("record %d:\n got %+v\nwant %+v", i, g, want)
			}
		}
		// A time in another zone is the same instant (SQLite compares times
		// as text).
		tokyo := time.FixedZone("JST", 9*3600)
		since := rs[50].At.In(tokyo)
		if _, total, err := st.RequestLogs(ctx, store.RequestFilter{Since: since, Until: rs[60].At.In(tokyo)}, store.Page{Limit: 200}); err != nil || total != 10 {
			t.Fatalf("since and until in +09:00: %d records, %v; want 10", total, err)
		}
		if top, err := st.TopSources(ctx, since, 10); err != nil || len(top) != 1 || top[0].Calls != 50 {
			t.Fatalf("top sources since a time in +09:00: %+v, %v", top, err)
		}
		// Refused are the calls answered with an error, not those that fire
		// nothing by design (a confirmation page, a follow-up, a HEAD…).
		var more []store.RequestLog
		for i, code := range []string{"confirm", "follow_up", "head", "preview", "prefetch", "unauthorized", "unknown_event"} {
			more = append(more, store.RequestLog{ID: fmt.Sprintf("s%d", i), At: at, Method: "GET", Source: "10.0.0.2", Code: code})
		}
		if err := st.InsertRequestLogs(ctx, more); err != nil {
			t.Fatal(err)
		}
		if top, err := st.TopSources(ctx, at.Add(-time.Second), 10); err != nil || len(top) != 2 ||
			top[0].Source != "10.0.0.1" || top[0].Denied != 0 || top[1].Calls != 7 || top[1].Denied != 2 {
			t.Fatalf("top sources and their refused calls: %+v, %v", top, err)
		}
	})
}

// TestPresenceAndDesiredStatesDoNotDeadlock: presence writes and triggers that
// change many devices' desired state update the same device rows at once. In
// different orders, PostgreSQL would find a deadlock and fail one of them (a
// trigger answered 503).
func TestPresenceAndDesiredStatesDoNotDeadlock(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const n = 300
		now := time.Now().UTC()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf([]string{"dev-%03d", "Dev_%03d", "b.%03d"}[i%3], i) // orders differ by collation
			if err := st.CreateDevice(ctx, &store.Device{ID: ids[i], Name: ids[i], TokenHash: "h" + ids[i], MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		stop := time.Now().Add(3 * time.Second)
		errs := make(chan error, 3)
		var wg sync.WaitGroup
		wg.Go(func() { // presence, its batch in another order each time
			for k := 0; time.Now().Before(stop); k++ {
				ps := make([]store.Presence, n)
				for i, d := range rand.Perm(n) {
					at := time.Now().UTC()
					ps[i] = store.Presence{DeviceID: ids[d], Online: k%2 == 0, At: at, LastSeen: at}
				}
				if err := st.SavePresence(ctx, ps); err != nil {
					errs <- fmt.Errorf("presence: %w", err)
					return
				}
			}
		})
		wg.Go(func() { // triggers pausing every device's loop, in another order each time
			paused := true
			for k := 0; time.Now().Before(stop); k++ {
				nd := &store.NewDispatch{
					Dispatch: store.Dispatch{ID: fmt.Sprintf("disp-%d", k), ActionID: "a", ActionName: "a", EventID: "e",
						Function: "pause_loop", Method: "POST", Targets: n, CreatedAt: time.Now().UTC()},
					Desired: &store.DesiredChange{LoopPaused: &paused},
				}
				for _, d := range rand.Perm(n) {
					nd.Commands = append(nd.Commands, store.Command{ID: fmt.Sprintf("c-%d-%d", k, d), DispatchID: nd.Dispatch.ID,
						DeviceID: ids[d], State: store.StateQueued, Function: "pause_loop", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
				}
				if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
					errs <- fmt.Errorf("trigger: %w", err)
					return
				}
			}
		})
		wg.Go(func() { // another instance starting: every device offline
			for time.Now().Before(stop) {
				if err := st.ResetPresence(ctx); err != nil {
					errs <- fmt.Errorf("reset presence: %w", err)
					return
				}
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestRetriesOnTwoInstancesDoNotDeadlock: two instances on one database, a
// retried call (same idempotency key) landing on each. One batch changes a
// desired state and then inserts the key that the other batch, also changing a
// desired state, has inserted first. If the desired-state counter were taken
// between the idempotency inserts, each would wait for the other (PostgreSQL
// fails one: every call in that batch answered 503).
func TestRetriesOnTwoInstancesDoNotDeadlock(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "two.db")
			if name == "postgres" {
				dsn = testenv.Postgres(t)
			}
			ctx := context.Background()
			var st [2]*store.Store
			for i := range st {
				s, err := store.Open(ctx, dsn, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				st[i] = s
			}
			st[0].CreateDevice(ctx, device("x"))
			st[0].CreateDevice(ctx, device("y"))
			paused := true
			for round := range 20 {
				k1, k2 := fmt.Sprintf("k1-%d", round), fmt.Sprintf("k2-%d", round)
				a := newDispatch(fmt.Sprintf("a-%d", round), []string{"x"}, k1)
				a.Desired = &store.DesiredChange{LoopPaused: &paused}
				first := []*store.NewDispatch{a}
				for f := range 30 {
					first = append(first, newDispatch(fmt.Sprintf("f-%d-%d", round, f), []string{"x"}, ""))
				}
				first = append(first, newDispatch(fmt.Sprintf("b-%d", round), []string{"x"}, k2))
				c := newDispatch(fmt.Sprintf("c-%d", round), []string{"y"}, k2)
				c.Desired = &store.DesiredChange{LoopPaused: &paused}
				errs := make(chan error, 2)
				var wg sync.WaitGroup
				wg.Go(func() { _, err := st[0].WriteDispatches(ctx, first); errs <- err })
				wg.Go(func() { _, err := st[1].WriteDispatches(ctx, []*store.NewDispatch{c}); errs <- err })
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
			}
		})
	}
}

// A setting is set once: a second SetSettingOnce (another instance's) keeps
// the first value and returns it.
func TestSettingsAreSetOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if _, err := st.Setting(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unset setting: %v", err)
		}
		for _, try := range []string{"first", "second"} {
			if v, err := st.SetSettingOnce(ctx, "x", try); err != nil || v != "first" {
				t.Fatalf("set %q: %q %v", try, v, err)
			}
		}
		if v, err := st.Setting(ctx, "x"); err != nil || v != "first" {
			t.Fatalf("read back: %q %v", v, err)
		}
	})
}

// Old dispatches go with their commands once every command is settled; one
// with a command still open stays, and so do newer ones.
func TestPurgeDispatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		st.CreateDevice(ctx, device("d2"))
		old := time.Now().UTC().Add(-100 * 24 * time.Hour)
		write := func(id string, at time.Time, states ...string) {
			t.Helper()
			nd := newDispatch(id, []string{"d1", "d2"}[:len(states)], "")
			nd.Dispatch.CreatedAt = at
			for i := range nd.Commands {
				nd.Commands[i].CreatedAt, nd.Commands[i].ExpiresAt, nd.Commands[i].State = at, at.Add(time.Hour), states[i]
			}
			if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
				t.Fatal(err)
			}
		}
		write("settled", old, store.StateSucceeded, store.StateExpired)
		write("empty", old)
		write("open", old, store.StateFailed, store.StateQueued)
		write("recent", time.Now().UTC(), store.StateSucceeded)
		n, err := st.PurgeDispatches(ctx, time.Now().UTC().Add(-90*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("purged %d dispatches, %v; want the settled and the empty one", n, err)
		}
		for id, want := range map[string]int{"settled": -1, "empty": -1, "open": 1, "recent": 1} {
			_, cmds, _, err := st.DispatchDetail(ctx, id)
			switch {
			case want < 0 && !errors.Is(err, store.ErrNotFound):
				t.Errorf("%s: still there (%v)", id, err)
			case want > 0 && (err != nil || len(cmds) < want):
				t.Errorf("%s: %d commands, %v", id, len(cmds), err)
			}
		}
	})
}

// Within one round too, a later desired change supersedes an earlier one's
// command (in batch order, the order of the desired versions); the round
// returns what it superseded; and a player's ack of a superseded command
// still records that it ran.
func TestSupersedeWithinARoundAndLateAcks(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		emergency := func(id string) *store.NewDispatch {
			nd := newDispatch(id, []string{"d1"}, "")
			nd.Commands[0].Function = "set_emergency"
			nd.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: id == "on"}, Supersedes: []string{"set_emergency"}}
			return nd
		}
		res, err := st.WriteBatch(ctx, &store.Batch{Dispatches: []*store.NewDispatch{emergency("on"), emergency("off")}})
		if err != nil || len(res.Superseded) != 1 || res.Superseded[0] != "on-d1" {
			t.Fatalf("round: %+v %v", res, err)
		}
		state := func(dispatch string) (string, string) {
			t.Helper()
			cmds, err := st.DispatchCommands(ctx, dispatch)
			if err != nil || len(cmds) != 1 {
				t.Fatalf("%s: %v %v", dispatch, cmds, err)
			}
			return cmds[0].State, cmds[0].Detail
		}
		if s, d := state("on"); s != store.StateExpired || d != "superseded by dispatch off" {
			t.Fatalf("on: %s %q", s, d)
		}
		if s, _ := state("off"); s != store.StateQueued {
			t.Fatalf("off: %s", s)
		}
		// The counts tell the superseded command from one that merely expired,
		// in a list's counts and in a dispatch's.
		counts, err := st.CommandCounts(ctx, []string{"on", "off"})
		if err != nil || counts["on"][store.StateExpired] != 1 || counts["on"][store.Superseded] != 1 || len(counts["off"]) != 1 {
			t.Fatalf("counts: %v %v", counts, err)
		}
		if _, _, c, err := st.DispatchDetail(ctx, "on"); err != nil || c[store.StateExpired] != 1 || c[store.Superseded] != 1 {
			t.Fatalf("the dispatch's counts: %v %v", c, err)
		}
		// "off" goes out; a third change supersedes it before its ack, which
		// then comes and is recorded all the same.
		if err := st.MarkPublished(ctx, []string{"off-d1"}, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		res, err = st.WriteBatch(ctx, &store.Batch{Dispatches: []*store.NewDispatch{emergency("again")}})
		if err != nil || len(res.Superseded) != 1 || res.Superseded[0] != "off-d1" {
			t.Fatalf("next round: %+v %v", res, err)
		}
		// Not past its expiry, though (it expires a minute after it was made).
		late := store.Ack{CommandID: "off-d1", DeviceID: "d1", State: store.StateSucceeded, At: time.Now().UTC().Add(2 * time.Minute)}
		if applied, err := st.ApplyAcks(ctx, []store.Ack{late}); err != nil || applied[0] {
			t.Fatalf("an ack of the superseded command after its expiry: %v %v", applied, err)
		}
		applied, err := st.ApplyAcks(ctx, []store.Ack{{CommandID: "off-d1", DeviceID: "d1", State: store.StateSucceeded, At: time.Now().UTC()}})
		if err != nil || !applied[0] {
			t.Fatalf("ack of the superseded command: %v %v", applied, err)
		}
		if s, _ := state("off"); s != store.StateSucceeded {
			t.Fatalf("off after its ack: %s", s)
		}
	})
}

// ProbeWrite works on either database, however often health asks (that it
// leaves nothing behind: TestProbeWriteLeavesNothing).
func TestProbeWrite(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		for range 3 {
			if err := st.ProbeWrite(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// An ack can overtake its command's published mark (the player answers before
// the broker's PUBACK reaches delivery): the ack records its own time as the
// publish time, and the mark, coming after, puts the true one back, without
// moving the command out of its final state.
func TestAMarkAfterItsAckKeepsTheTruePublishTime(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch("p1", []string{"d1"}, "")}); err != nil {
			t.Fatal(err)
		}
		published := time.Now().UTC().Add(time.Millisecond).Truncate(time.Millisecond) // after the command's creation
		acked := published.Add(200 * time.Millisecond)
		if _, err := st.ApplyAcks(ctx, []store.Ack{{CommandID: "p1-d1", DeviceID: "d1", State: store.StateSucceeded, At: acked}}); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkPublished(ctx, []string{"p1-d1"}, published); err != nil {
			t.Fatal(err)
		}
		// A later mark (the command sent again) changes nothing.
		if err := st.MarkPublished(ctx, []string{"p1-d1"}, acked.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		cmds, err := st.DispatchCommands(ctx, "p1")
		if err != nil || len(cmds) != 1 {
			t.Fatalf("%v %v", cmds, err)
		}
		c := cmds[0]
		if c.State != store.StateSucceeded || c.PublishedAt == nil || !c.PublishedAt.Equal(published) || c.AckedAt == nil || !c.AckedAt.Equal(acked) {
			t.Fatalf("state %s, published %v, acked %v; want succeeded, %v, %v", c.State, c.PublishedAt, c.AckedAt, published, acked)
		}
	})
}

// A mark carries the first time of its group of marks (actions'
// markResolution), which may be before a command of the group was even
// created: its publish time is then its creation's, never before it, whether
// the mark comes alone or with the command's ack.
func TestPublishTimeIsNeverBeforeCreation(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		marked, batched := newDispatch("m1", []string{"d1"}, ""), newDispatch("m2", []string{"d1"}, "")
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{marked, batched}); err != nil {
			t.Fatal(err)
		}
		created := marked.Dispatch.CreatedAt.Truncate(time.Microsecond)
		groupStart := created.Add(-7 * time.Millisecond)
		if err := st.MarkPublished(ctx, []string{"m1-d1"}, groupStart); err != nil {
			t.Fatal(err)
		}
		if _, err := st.WriteBatch(ctx, &store.Batch{
			Acks:      []store.Ack{{CommandID: "m2-d1", DeviceID: "d1", State: store.StateSucceeded, At: created.Add(time.Millisecond)}},
			Published: []store.Published{{IDs: []string{"m2-d1"}, At: groupStart}},
		}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"m1", "m2"} {
			cmds, err := st.DispatchCommands(ctx, id)
			if err != nil || len(cmds) != 1 {
				t.Fatalf("%s: %v %v", id, cmds, err)
			}
			if c := cmds[0]; c.PublishedAt == nil || c.PublishedAt.Before(c.CreatedAt) || c.PublishedAt.Sub(c.CreatedAt) > time.Microsecond {
				t.Errorf("%s: created %v, published %v: want its creation's time", id, c.CreatedAt, c.PublishedAt)
			}
		}
	})
}

// An ack that came before its command's expiry counts, though the sweeper
// marked the command expired before the ack was written (the database
// refused writes meanwhile): whether it counts hangs on when it came. One
// that came after changes nothing; a deleted device's command stays expired.
func TestAnAckOnTimeCountsThoughWrittenAfterTheSweep(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.CreateDevice(ctx, device("d1"))
		nd := newDispatch("late", []string{"d1"}, "")
		expires := nd.Commands[0].ExpiresAt
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkPublished(ctx, []string{"late-d1"}, nd.Dispatch.CreatedAt); err != nil {
			t.Fatal(err)
		}
		if n, err := st.ExpireCommands(ctx, expires.Add(time.Second)); err != nil || n != 1 {
			t.Fatalf("swept %d, %v", n, err)
		}
		tooLate := store.Ack{CommandID: "late-d1", DeviceID: "d1", State: store.StateFailed, At: expires.Add(time.Millisecond)}
		onTime := store.Ack{CommandID: "late-d1", DeviceID: "d1", State: store.StateSucceeded, At: expires.Add(-100 * time.Millisecond)}
		applied, err := st.ApplyAcks(ctx, []store.Ack{tooLate, onTime})
		if err != nil || applied[0] || !applied[1] {
			t.Fatalf("applied %v, %v: want the ack on time only", applied, err)
		}
		cmds, _ := st.DispatchCommands(ctx, "late")
		if c := cmds[0]; c.State != store.StateSucceeded || c.AckedAt == nil || c.AckedAt.Sub(onTime.At).Abs() > time.Microsecond {
			t.Fatalf("state %s, acked %v", c.State, c.AckedAt)
		}

		st.CreateDevice(ctx, device("d2"))
		gone := newDispatch("gone", []string{"d2"}, "")
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{gone}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.DeleteDevice(ctx, "d2"); err != nil {
			t.Fatal(err)
		}
		applied, err = st.ApplyAcks(ctx, []store.Ack{{CommandID: "gone-d2", DeviceID: "d2", State: store.StateSucceeded, At: gone.Dispatch.CreatedAt}})
		if err != nil || applied[0] {
			t.Fatalf("applied %v, %v: a deleted device's command took an ack", applied, err)
		}
	})
}

// GroupSizes and GroupSizesByID give groups with how many members each has,
// without reading the members' ids.
func TestGroupSizes(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"a", "b", "c"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC()
		for _, g := range []*store.Group{
			{ID: "g1", Name: "lobby", DeviceIDs: []string{"a", "b", "c"}},
			{ID: "g2", Name: "empty"},
			{ID: "g3", Name: "floor", DeviceIDs: []string{"b"}},
		} {
			g.CreatedAt, g.UpdatedAt = now, now
			if err := st.CreateGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		sizes := func(gs []store.Group) string {
			var out []string
			for _, g := range gs {
				if g.DeviceIDs != nil {
					t.Fatalf("%s: members' ids read: %v", g.Name, g.DeviceIDs)
				}
				out = append(out, fmt.Sprintf("%s=%d", g.Name, g.Members))
			}
			slices.Sort(out)
			return strings.Join(out, " ")
		}
		gs, err := st.GroupSizes(ctx, store.Page{Limit: 2})
		if err != nil || sizes(gs) != "empty=0 floor=1" {
			t.Fatalf("first two by name: %s, %v", sizes(gs), err)
		}
		gs, err = st.GroupSizesByID(ctx, []string{"g1", "g3", "gone"})
		if err != nil || sizes(gs) != "floor=1 lobby=3" {
			t.Fatalf("by id: %s, %v", sizes(gs), err)
		}
	})
}

// A database setting that cannot be read is refused without being quoted:
// a PostgreSQL URL whose password has a character URLs reserve (net/url's
// complaint, which pgx quotes, held part of it), and a libpq key=value
// string, which was taken for an SQLite file's name, password and all.
func TestUnreadableDSNIsNotQuoted(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, c := range []struct{ dsn, want string }{
		{"postgres://dh:Kq7Zp3Xw9mR12%zz345@127.0.0.1:15433/devicehooks", "percent-encoded (%2F, %3F, %23, %40, %3A, %25)"},
		{"postgres://dh:Kq7Zp3Xw/9mR12345@127.0.0.1:15433/devicehooks", "percent-encoded"},
		{"postgres://dh:Kq7Zp3Xw@9mR12345@127.0.0.1:15433/devicehooks", "percent-encoded"},
		{"host=127.0.0.1 port=15433 user=dh password=Kq7Zp3Xw9mR12345 dbname=devicehooks sslmode=disable", "write it as a URL, postgres://"},
		{"host=db user=dh password=Kq7Zp3Xw9mR12345 sslmode=verify-full sslrootcert=/etc/ca.pem target_session_attrs=read-write", "write it as a URL"},
		{"dbname=devicehooks password='Kq7Zp3Xw 9mR12345'", "write it as a URL"},
		// pgx's own complaints, the password masked, say what is wrong.
		{"postgres://dh:Kq7Zp3Xw9mR12345@127.0.0.1:15433/devicehooks?sslmode=bogus", "sslmode is invalid"},
		{"postgres://dh:Kq7Zp3Xw9mR12345@127.0.0.1:15433/devicehooks?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "CA file"},
	} {
		_, err := store.Open(context.Background(), c.dsn, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "Kq7Zp3Xw") {
			t.Errorf("%s: %v", c.dsn, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("the refused settings left %v", entries)
	}
	// An SQLite path with '=' or spaces in it is still a path.
	if st, err := store.Open(context.Background(), filepath.Join(dir, "a=b c.db"), nil); err != nil {
		t.Fatal(err)
	} else {
		st.Close()
	}
}
