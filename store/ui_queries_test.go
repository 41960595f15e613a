package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"devicehooks/store"
)

// uiDispatch is a dispatch to devices, created at a given time.
func uiDispatch(id string, at time.Time, devices ...string) *store.NewDispatch {
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: id, ActionID: "act", ActionName: "x", EventID: "evt", Function: "restart", Method: "POST", Targets: len(devices), CreatedAt: at}}
	for _, d := range devices {
		nd.Commands = append(nd.Commands, store.Command{
			ID: id + "-" + d, DispatchID: id, DeviceID: d, State: store.StateQueued, Function: "restart",
			Payload: "{}", CreatedAt: at, ExpiresAt: at.Add(time.Minute),
		})
	}
	return nd
}

func TestDashboardQueries(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		for _, id := range []string{"d1", "d2"} {
			if err := st.CreateDevice(ctx, &store.Device{ID: id, Name: id, TokenHash: "h-" + id, MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := st.WriteDispatches(ctx, []*store.NewDispatch{
			uiDispatch("old", now.Add(-2*time.Hour), "d1"),       // will expire
			uiDispatch("bad", now.Add(-time.Minute), "d1", "d2"), // one device fails
			uiDispatch("good", now, "d1"),
			uiDispatch("ancient", now.Add(-48*time.Hour), "d2"), // expired, but too old to matter
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.ApplyAcks(ctx, []store.Ack{
			{CommandID: "bad-d1", DeviceID: "d1", State: store.StateSucceeded, At: now},
			{CommandID: "bad-d2", DeviceID: "d2", State: store.StateFailed, At: now},
			{CommandID: "good-d1", DeviceID: "d1", State: store.StateSucceeded, At: now},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ExpireCommands(ctx, now); err != nil {
			t.Fatal(err)
		}

		if _, n, err := st.Dispatches(ctx, store.DispatchFilter{Since: now.Add(-time.Hour)}, store.Page{Limit: 1}); err != nil || n != 2 {
			t.Fatalf("dispatches in the last hour: %d, %v", n, err)
		}
		lastDay := store.DispatchFilter{Failed: true, Since: now.Add(-24 * time.Hour)}
		failed, n, err := st.Dispatches(ctx, lastDay, store.Page{Limit: 10})
		if err != nil || n != 2 || len(failed) != 2 || failed[0].ID != "bad" || failed[1].ID != "old" {
			t.Fatalf("failed dispatches: %v (%d), %v", failed, n, err)
		}
		if ds, n, _ := st.Dispatches(ctx, lastDay, store.Page{Limit: 1}); len(ds) != 1 || ds[0].ID != "bad" || n != 2 {
			t.Fatalf("limit: %v (%d)", ds, n)
		}
		// An emergency replaced by a newer one before d2 acked it: its
		// command expires as superseded, which needs nobody's attention.
		for _, id := range []string{"emergency-1", "emergency-2"} {
			nd := uiDispatch(id, now, "d2")
			nd.Dispatch.Function, nd.Commands[0].Function = "set_emergency", "set_emergency"
			nd.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: true, Message: id}, Supersedes: []string{"set_emergency"}}
			if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
				t.Fatal(err)
			}
		}
		if _, cmds, _, err := st.DispatchDetail(ctx, "emergency-1"); err != nil || len(cmds) != 1 ||
			cmds[0].State != store.StateExpired || !strings.HasPrefix(cmds[0].Detail, "superseded by dispatch") {
			t.Fatalf("the first emergency's command: %+v, %v", cmds, err)
		}
		if ds, n, err := st.Dispatches(ctx, lastDay, store.Page{Limit: 10}); err != nil || n != 2 || len(ds) != 2 {
			t.Fatalf("failed dispatches with a superseded emergency: %v (%d), %v", ds, n, err)
		}
	})
}

func TestAdminUsersAndSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		if n, err := st.CountAdminUsers(ctx); err != nil || n != 0 {
			t.Fatalf("count: %d, %v", n, err)
		}
		u := &store.AdminUser{ID: "u1", Username: "admin", PasswordHash: "h", CreatedAt: now, UpdatedAt: now}
		if err := st.CreateAdminUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		dup := *u
		dup.ID = "u2"
		if err := st.CreateAdminUser(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate username: %v", err)
		}
		if got, err := st.AdminUserByName(ctx, "admin"); err != nil || got.ID != "u1" {
			t.Fatalf("by name: %v, %v", got, err)
		}
		if err := st.SetAdminPassword(ctx, "u1", "h2", ""); err != nil {
			t.Fatal(err)
		}
		// A sign-in that checked a hash the account no longer has (a reset
		// came in between) starts no session; one that checked the current
		// hash does, and records the sign-in.
		if err := st.StartSession(ctx, &store.Session{ID: "stale", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a session for a stale hash: %v", err)
		}
		if _, err := st.SessionByID(ctx, "stale", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the stale sign-in's session: %v", err)
		}
		if got, _ := st.AdminUser(ctx, "u1"); got.LastLoginAt != nil {
			t.Fatalf("a refused sign-in was recorded: %+v", got)
		}
		if err := st.StartSession(ctx, &store.Session{ID: "s0", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, "h2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.AdminUser(ctx, "u1"); got.PasswordHash != "h2" || got.LastLoginAt == nil {
			t.Fatalf("user %+v", got)
		}
		// A rehash keeps a hash that changed since it was read.
		if err := st.RehashAdminPassword(ctx, "u1", "h1", "h1-stronger"); err != nil {
			t.Fatal(err)
		}
		if err := st.RehashAdminPassword(ctx, "u1", "h2", "h2-stronger"); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.AdminUser(ctx, "u1"); got.PasswordHash != "h2-stronger" {
			t.Fatalf("after the rehashes: %q", got.PasswordHash)
		}
		if err := st.SetAdminPassword(ctx, "u1", "h2", ""); err != nil {
			t.Fatal(err)
		}
		if err := st.SetAdminPassword(ctx, "nobody", "h", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v", err)
		}

		for _, id := range []string{"s1", "s2", "s3"} {
			if err := st.StartSession(ctx, &store.Session{ID: id, UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, "h2"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.SessionByID(ctx, "s1", now); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SessionByID(ctx, "s1", now.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired session: %v", err)
		}
		if err := st.ExtendSession(ctx, "s1", now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SessionByID(ctx, "s1", now.Add(time.Hour)); err != nil {
			t.Fatalf("extended session: %v", err)
		}
		if err := st.SetAdminPassword(ctx, "u1", "h3", "s1"); err != nil { // ends the others
			t.Fatal(err)
		}
		if _, err := st.SessionByID(ctx, "s2", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other session kept: %v", err)
		}
		if n, err := st.PurgeSessions(ctx, now.Add(3*time.Hour)); err != nil || n != 1 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		if err := st.DeleteSession(ctx, "s1"); err != nil {
			t.Fatalf("deleting a gone session: %v", err)
		}
	})
}

func TestUIFindDevices(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		for _, id := range []string{"d1", "d2", "d3"} {
			if err := st.CreateDevice(ctx, &store.Device{ID: id, Name: id, TokenHash: "h-" + id, MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		paused := true
		on := uiDispatch("on", now, "d1", "d3")
		on.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: true, Message: "leave"}}
		pause := uiDispatch("pause", now, "d2")
		pause.Desired = &store.DesiredChange{LoopPaused: &paused}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{on, pause}); err != nil {
			t.Fatal(err)
		}
		ids := func(ds []store.Device) (out []string) {
			for _, d := range ds {
				out = append(out, d.ID)
			}
			return out
		}
		ds, n, err := st.FindDevices(ctx, store.DeviceFilter{State: store.DeviceStateEmergency}, store.Page{Limit: 1})
		if err != nil || n != 2 || len(ds) != 1 || ds[0].ID != "d1" || ds[0].EmergencyMessage != "leave" {
			t.Fatalf("emergency: %v %d %v", ids(ds), n, err)
		}
		if ds, n, err := st.FindDevices(ctx, store.DeviceFilter{State: store.DeviceStatePaused}, store.Page{Limit: 10}); err != nil || n != 1 || len(ds) != 1 || ds[0].ID != "d2" {
			t.Fatalf("paused: %v %d %v", ids(ds), n, err)
		}
		off := uiDispatch("off", now, "d1", "d3")
		off.Desired = &store.DesiredChange{Emergency: &store.Emergency{Enabled: false}}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{off}); err != nil {
			t.Fatal(err)
		}
		if _, n, err := st.FindDevices(ctx, store.DeviceFilter{State: store.DeviceStateEmergency}, store.Page{Limit: 10}); err != nil || n != 0 {
			t.Fatalf("emergency after off: %d %v", n, err)
		}
		if _, _, err := st.FindDevices(ctx, store.DeviceFilter{State: "bogus"}, store.Page{}); err == nil {
			t.Fatal("an unknown state is accepted")
		}
		// Search: in the id or the name, whatever its case; % and _ are text.
		if err := st.RenameDevice(ctx, "d2", "Lobby 50%_off"); err != nil {
			t.Fatal(err)
		}
		if err := st.RenameDevice(ctx, "d1", "ÉCOLE Hall"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			f    store.DeviceFilter
			want string
		}{
			{store.DeviceFilter{Search: "D3"}, "d3"},
			{store.DeviceFilter{Search: "lobby"}, "d2"},
			{store.DeviceFilter{Search: "50%_"}, "d2"},
			{store.DeviceFilter{Search: "%"}, "d2"},
			{store.DeviceFilter{Search: "_"}, "d2"},
			{store.DeviceFilter{Search: "d", State: store.DeviceStatePaused}, "d2"},
			{store.DeviceFilter{Search: "nothing"}, ""},
			{store.DeviceFilter{Search: "ÉCOLE"}, "d1"},
			{store.DeviceFilter{Search: "École hall"}, "d1"},
			{store.DeviceFilter{State: store.DeviceStateOffline}, "d1,d2,d3"},
			{store.DeviceFilter{State: store.DeviceStateOnline}, ""},
		} {
			ds, n, err := st.FindDevices(ctx, tc.f, store.Page{Limit: 10})
			if got := strings.Join(ids(ds), ","); err != nil || got != tc.want || int(n) != len(ds) {
				t.Errorf("%+v: %q (%d), %v; want %q", tc.f, got, n, err, tc.want)
			}
		}
		if err := st.SavePresence(ctx, []store.Presence{{DeviceID: "d3", Online: true, At: now, LastSeen: now}}); err != nil {
			t.Fatal(err)
		}
		if ds, _, err := st.FindDevices(ctx, store.DeviceFilter{State: store.DeviceStateOnline}, store.Page{Limit: 10}); err != nil || strings.Join(ids(ds), ",") != "d3" {
			t.Errorf("online: %v, %v", ids(ds), err)
		}
		if p, err := st.FirstCommandPayload(ctx, "on"); err != nil || p != "{}" {
			t.Fatalf("first command payload: %q, %v", p, err)
		}
		if p, err := st.FirstCommandPayload(ctx, "nothing"); err != nil || p != "" {
			t.Fatalf("payload of no dispatch: %q, %v", p, err)
		}
	})
}

// The dispatch list's filters: by action, by key, by time (since inclusive,
// until not) and to those that need attention, alone and together, newest
// first and counted in all.
func TestDispatchFilters(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		if err := st.CreateDevice(ctx, &store.Device{ID: "d1", Name: "d1", TokenHash: "h", MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		var nds []*store.NewDispatch
		for i, d := range []struct{ id, action, key string }{
			{"a1-k1", "a1", "k1"}, {"a2-k1", "a2", "k1"}, {"a1-k2", "a1", "k2"}, {"a1-test", "a1", ""}, {"a2-k2", "a2", "k2"},
		} {
			nd := uiDispatch(d.id, now.Add(time.Duration(i)*time.Second), "d1")
			nd.Dispatch.ActionID, nd.Dispatch.APIKeyID = d.action, d.key
			nds = append(nds, nd)
		}
		if _, err := st.WriteDispatches(ctx, nds); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ApplyAcks(ctx, []store.Ack{
			{CommandID: "a1-k1-d1", DeviceID: "d1", State: store.StateFailed, At: now},
			{CommandID: "a2-k2-d1", DeviceID: "d1", State: store.StateRejected, At: now},
			{CommandID: "a1-k2-d1", DeviceID: "d1", State: store.StateSucceeded, At: now},
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			f    store.DispatchFilter
			want []string
		}{
			{"none", store.DispatchFilter{}, []string{"a2-k2", "a1-test", "a1-k2", "a2-k1", "a1-k1"}},
			{"action", store.DispatchFilter{ActionID: "a1"}, []string{"a1-test", "a1-k2", "a1-k1"}},
			{"key", store.DispatchFilter{APIKeyID: "k2"}, []string{"a2-k2", "a1-k2"}},
			{"action and key", store.DispatchFilter{ActionID: "a1", APIKeyID: "k2"}, []string{"a1-k2"}},
			{"failed", store.DispatchFilter{Failed: true}, []string{"a2-k2", "a1-k1"}},
			{"failed of an action", store.DispatchFilter{Failed: true, ActionID: "a1"}, []string{"a1-k1"}},
			{"since, inclusive", store.DispatchFilter{Since: now.Add(2 * time.Second)}, []string{"a2-k2", "a1-test", "a1-k2"}},
			{"until, exclusive", store.DispatchFilter{Until: now.Add(2 * time.Second)}, []string{"a2-k1", "a1-k1"}},
			{"a window of a key", store.DispatchFilter{APIKeyID: "k1", Since: now, Until: now.Add(time.Second)}, []string{"a1-k1"}},
			{"an unknown action", store.DispatchFilter{ActionID: "gone"}, nil},
		} {
			ds, total, err := st.Dispatches(ctx, c.f, store.Page{Limit: 2})
			var got []string
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if err != nil || total != int64(len(c.want)) || !slices.Equal(got, c.want[:min(2, len(c.want))]) {
				t.Errorf("%s: %v (%d in all), %v; want %v", c.name, got, total, err, c.want)
			}
		}
	})
}
