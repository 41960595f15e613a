package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"devicehooks/store"
)

// TestWriteBatch: the trigger path's round (new dispatches, published marks and
// acks in one transaction) reads back exactly as written, on both databases.
func TestWriteBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"d1", "d2"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		pubAt := time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond)
		w0 := newDispatch("w0", []string{"d1", "d2"}, "")
		w0.Dispatch.CreatedAt = pubAt.Add(-time.Second) // a publish time is never before its command's creation
		for i := range w0.Commands {
			w0.Commands[i].CreatedAt = w0.Dispatch.CreatedAt
		}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{w0}); err != nil {
			t.Fatal(err)
		}
		ackAt := pubAt.Add(500 * time.Millisecond)
		nd := newDispatch("w1", []string{"d1", "d2"}, "")
		nd.Dispatch.APIKeyID, nd.Dispatch.APIKeyPrefix, nd.Dispatch.Source = "k1", "dhk_ab", "10.0.0.1"
		res, err := st.WriteBatch(ctx, &store.Batch{
			Dispatches: []*store.NewDispatch{nd, newDispatch("w2", []string{"d1"}, "")},
			Published:  []store.Published{{IDs: []string{"w0-d1", "w0-d2"}, At: pubAt}},
			Acks: []store.Ack{
				{CommandID: "w0-d1", DeviceID: "d1", State: store.StateSucceeded, At: ackAt},               // marked in the same batch
				{CommandID: "w0-d2", DeviceID: "d1", State: store.StateSucceeded, At: ackAt},               // wrong device
				{CommandID: "w0-d1", DeviceID: "d1", State: store.StateFailed, Detail: "again", At: ackAt}, // already settled
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Dup) != 2 || res.Dup[0] || res.Dup[1] {
			t.Fatalf("dup = %v", res.Dup)
		}
		if want := []bool{true, false, false}; len(res.Applied) != 3 || res.Applied[0] != want[0] || res.Applied[1] != want[1] || res.Applied[2] != want[2] {
			t.Fatalf("applied = %v, want %v", res.Applied, want)
		}

		cmds, err := st.DispatchCommands(ctx, "w0")
		if err != nil || len(cmds) != 2 {
			t.Fatalf("w0 commands: %v %v", cmds, err)
		}
		acked, marked := cmds[0], cmds[1]
		if acked.State != store.StateSucceeded || acked.AckedAt == nil || !acked.AckedAt.Equal(ackAt) ||
			acked.PublishedAt == nil || !acked.PublishedAt.Equal(pubAt) {
			t.Errorf("acked command: %s acked %v published %v; want succeeded, acked %v, published %v (the mark's time)",
				acked.State, acked.AckedAt, acked.PublishedAt, ackAt, pubAt)
		}
		if marked.State != store.StatePublished || marked.PublishedAt == nil || !marked.PublishedAt.Equal(pubAt) || marked.AckedAt != nil {
			t.Errorf("marked command: %s published %v acked %v", marked.State, marked.PublishedAt, marked.AckedAt)
		}

		// Rows inserted by the batch read back field by field.
		d, err := st.Dispatch(ctx, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if d.ActionID != "act" || d.EventID != "evt" || d.Function != "restart" || d.Method != "POST" || d.Targets != 2 ||
			d.APIKeyID != "k1" || d.APIKeyPrefix != "dhk_ab" || d.Source != "10.0.0.1" || !sameTime(d.CreatedAt, nd.Dispatch.CreatedAt) {
			t.Errorf("dispatch read back: %+v", d)
		}
		cmds, err = st.DispatchCommands(ctx, "w1")
		if err != nil || len(cmds) != 2 {
			t.Fatalf("w1 commands: %v %v", cmds, err)
		}
		want := nd.Commands[0]
		if c := cmds[0]; c.ID != want.ID || c.DeviceID != "d1" || c.State != store.StateQueued || c.Function != "restart" ||
			!sameTime(c.CreatedAt, want.CreatedAt) || !sameTime(c.ExpiresAt, want.ExpiresAt) || c.PublishedAt != nil || c.AckedAt != nil || c.Detail != "" {
			t.Errorf("command read back: %+v, want %+v", c, want)
		}
		pending, err := st.PendingCommands(ctx, []string{"d1"}, []string{store.StateQueued}, time.Now(), store.PendingAfter{}, 10)
		if err != nil || len(pending) != 2 || pending[0].Payload != "{}" {
			t.Fatalf("pending for d1: %+v %v", pending, err)
		}
	})
}

// TestWriteBatchLargeFanout writes one dispatch to more devices than one insert
// statement holds.
func TestWriteBatchLargeFanout(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		devices := make([]string, 150)
		for i := range devices {
			devices[i] = "dev" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		}
		if _, err := st.WriteBatch(ctx, &store.Batch{Dispatches: []*store.NewDispatch{newDispatch("big", devices, "")}}); err != nil {
			t.Fatal(err)
		}
		counts, err := st.CommandCounts(ctx, []string{"big"})
		if err != nil || counts["big"][store.StateQueued] != 150 {
			t.Fatalf("counts: %v %v", counts, err)
		}
	})
}

// sameTime compares times to the microsecond, PostgreSQL's precision.
func sameTime(a, b time.Time) bool { return a.Sub(b).Abs() < time.Microsecond }

// TestApplyManyAcks: acks are settled a hundred per statement; across statements
// every ack still gets its own answer, and each command its own ack's fields.
func TestApplyManyAcks(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		var devices []string
		for i := range 250 {
			id := fmt.Sprintf("d%03d", i)
			devices = append(devices, id)
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch("m", devices, "")}); err != nil {
			t.Fatal(err)
		}
		at := time.Now().UTC().Truncate(time.Microsecond)
		// Another device's ack for a command first: it changes nothing, and the
		// right device's ack for it, later in the list, still counts.
		acks := []store.Ack{{CommandID: "m-d010", DeviceID: "d011", State: store.StateFailed, At: at}}
		for i, d := range devices {
			acks = append(acks, store.Ack{CommandID: "m-" + d, DeviceID: d, State: store.StateSucceeded, Detail: "n" + d, At: at.Add(time.Duration(i) * time.Millisecond)})
		}
		acks = append(acks,
			store.Ack{CommandID: "m-d007", DeviceID: "d007", State: store.StateFailed, At: at}, // a repeat, in another statement
			store.Ack{CommandID: "m-d008", DeviceID: "d009", State: store.StateFailed, At: at}, // another device's command
		)
		applied, err := st.ApplyAcks(ctx, acks)
		if err != nil {
			t.Fatal(err)
		}
		if applied[0] {
			t.Fatal("another device's ack applied")
		}
		for i := range devices {
			if !applied[1+i] {
				t.Fatalf("ack %d not applied", i)
			}
		}
		if applied[251] || applied[252] {
			t.Fatalf("the repeat or the wrong device's ack applied: %v", applied[251:])
		}
		cmds, err := st.DispatchCommands(ctx, "m")
		if err != nil || len(cmds) != 250 {
			t.Fatalf("commands: %d %v", len(cmds), err)
		}
		for _, c := range cmds {
			var i int
			fmt.Sscanf(c.DeviceID, "d%d", &i)
			if c.State != store.StateSucceeded || c.Detail != "n"+c.DeviceID || c.AckedAt == nil ||
				!c.AckedAt.Equal(at.Add(time.Duration(i)*time.Millisecond)) || c.PublishedAt == nil {
				t.Fatalf("command %s: %s %q acked %v published %v", c.ID, c.State, c.Detail, c.AckedAt, c.PublishedAt)
			}
		}
	})
}

// TestWriteBatchLeavesOutRefusedRequests: request-log records the database
// refuses (here a duplicate id) are left out of a round alone; its triggers are
// written, on both databases (PostgreSQL would otherwise abort the whole
// transaction at the failed statement).
func TestWriteBatchLeavesOutRefusedRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.CreateDevice(ctx, device("d1")); err != nil {
			t.Fatal(err)
		}
		rec := func(id string) store.RequestLog {
			return store.RequestLog{ID: id, At: time.Now().UTC(), Method: "POST", Status: 200, Code: "success"}
		}
		if err := st.InsertRequestLogs(ctx, []store.RequestLog{rec("r1")}); err != nil {
			t.Fatal(err)
		}
		res, err := st.WriteBatch(ctx, &store.Batch{
			Dispatches: []*store.NewDispatch{newDispatch("q1", []string{"d1"}, "")},
			Requests:   []store.RequestLog{rec("r2"), rec("r1")},
		})
		if err != nil || res.Requests == nil {
			t.Fatalf("a round with a refused record: err %v, requests' err %v; want only the records refused", err, res.Requests)
		}
		if cmds, err := st.DispatchCommands(ctx, "q1"); err != nil || len(cmds) != 1 {
			t.Fatalf("the round's trigger was not written: %v %v", cmds, err)
		}
		res, err = st.WriteBatch(ctx, &store.Batch{Requests: []store.RequestLog{rec("r2")}})
		if err != nil || res.Requests != nil {
			t.Fatalf("the refused round's good record afterwards: %v %v", err, res.Requests)
		}
		rs, _, err := st.RequestLogs(ctx, store.RequestFilter{}, store.Page{Limit: 10})
		if err != nil || len(rs) != 2 {
			t.Fatalf("request logs: %d %v, want r1 and r2", len(rs), err)
		}
	})
}

// PendingCommands read page after page, each after the last one's command,
// gives every command that waits once, in order (commands of one dispatch
// share their creation time); it takes a thousand devices at most.
func TestPendingCommandsPageByPage(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		devices := []string{"d1", "d2", "d3"}
		var want []string
		for k := range 7 {
			nd := newDispatch(fmt.Sprintf("x%d", k), devices, "")
			nd.Dispatch.CreatedAt = nd.Dispatch.CreatedAt.Add(time.Duration(k) * time.Microsecond)
			for i := range nd.Commands {
				nd.Commands[i].CreatedAt = nd.Dispatch.CreatedAt
				want = append(want, nd.Commands[i].ID)
			}
			if _, err := st.WriteBatch(ctx, &store.Batch{Dispatches: []*store.NewDispatch{nd}}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		after := store.PendingAfter{}
		for range len(want) {
			page, err := st.PendingCommands(ctx, devices, []string{store.StateQueued}, time.Now(), after, 4)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				got = append(got, c.ID)
			}
			if len(page) < 4 {
				break
			}
			after = store.AfterCommand(&page[len(page)-1])
		}
		if !slices.Equal(got, want) {
			t.Fatalf("page by page: %v\nwant %v", got, want)
		}
		if _, err := st.PendingCommands(ctx, make([]string, store.MaxPendingDevices+1), []string{store.StateQueued}, time.Now(), store.PendingAfter{}, 4); err == nil {
			t.Fatal("a read of more devices than it takes")
		}
	})
}
