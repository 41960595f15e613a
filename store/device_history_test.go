package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"devicehooks/store"
)

// A device's history lists its commands newest first, with their trigger,
// in the states asked for, and goes on from where a page ended; another
// device's commands are not in it.
func TestDeviceHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, id := range []string{"lobby-1", "lobby-2"} {
			if err := st.CreateDevice(ctx, device(id)); err != nil {
				t.Fatal(err)
			}
		}
		// Five dispatches: to both screens, to lobby-2 alone, to both...
		var batch []*store.NewDispatch
		for i := range 5 {
			targets := []string{"lobby-1", "lobby-2"}
			if i%2 == 1 {
				targets = targets[1:]
			}
			nd := newDispatch(fmt.Sprintf("d%02d", i), targets, "")
			nd.Dispatch.ActionName = fmt.Sprintf("action %d", i)
			batch = append(batch, nd)
		}
		if _, err := st.WriteDispatches(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if _, err := st.WriteBatch(ctx, &store.Batch{Acks: []store.Ack{{CommandID: "d02-lobby-1", DeviceID: "lobby-1", State: store.StateSucceeded, At: time.Now()}}}); err != nil {
			t.Fatal(err)
		}

		h, err := st.DeviceHistory(ctx, "lobby-1", nil, "", 50)
		if err != nil {
			t.Fatal(err)
		}
		if got := historyIDs(h); got != "d04-lobby-1 d02-lobby-1 d00-lobby-1" || h.Next != "" || h.Searched != 5 {
			t.Fatalf("history %q, next %q, searched %d", got, h.Next, h.Searched)
		}
		if c := h.Commands[1]; c.ActionName != "action 2" || c.ActionID != "act" || c.EventID != "evt" || c.State != store.StateSucceeded || c.Payload == "" {
			t.Fatalf("second command: %+v", c)
		}

		// Two at a time: the first page says where to go on.
		h, err = st.DeviceHistory(ctx, "lobby-1", nil, "", 2)
		if err != nil {
			t.Fatal(err)
		}
		// It covers the dispatches back to its oldest command's (d04 to d02).
		if got := historyIDs(h); got != "d04-lobby-1 d02-lobby-1" || h.Next != "d02" || h.Searched != 3 || !h.Reached.Equal(h.Commands[1].CreatedAt) {
			t.Fatalf("first page %q, next %q, searched %d back to %v", got, h.Next, h.Searched, h.Reached)
		}
		h, err = st.DeviceHistory(ctx, "lobby-1", nil, h.Next, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := historyIDs(h); got != "d00-lobby-1" || h.Next != "" {
			t.Fatalf("second page %q, next %q", got, h.Next)
		}

		// In some states only.
		h, err = st.DeviceHistory(ctx, "lobby-1", []string{store.StateQueued}, "", 50)
		if err != nil {
			t.Fatal(err)
		}
		if got := historyIDs(h); got != "d04-lobby-1 d00-lobby-1" {
			t.Fatalf("queued: %q", got)
		}
		if h, err = st.DeviceHistory(ctx, "nobody", nil, "", 50); err != nil || len(h.Commands) != 0 || h.Next != "" {
			t.Fatalf("a device without commands: %+v %v", h, err)
		}
	})
}

// A page of a device's history that few dispatches reach stops looking
// after historyScan dispatches (20,000), and says where it got to.
func TestDeviceHistoryLooksAtBoundedDispatches(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	for _, id := range []string{"rare", "busy"} {
		if err := st.CreateDevice(ctx, device(id)); err != nil {
			t.Fatal(err)
		}
	}
	// One dispatch to "rare", then 20,500 to "busy".
	write := func(ids []string, target string) {
		var batch []*store.NewDispatch
		for _, id := range ids {
			batch = append(batch, newDispatch(id, []string{target}, ""))
		}
		if _, err := st.WriteDispatches(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	write([]string{"a-00000"}, "rare")
	for chunk := range 41 {
		ids := make([]string, 500)
		for i := range ids {
			ids[i] = fmt.Sprintf("b-%05d", chunk*500+i)
		}
		write(ids, "busy")
	}

	h, err := st.DeviceHistory(ctx, "rare", nil, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Commands) != 0 || h.Searched != 20000 || h.Next != "b-00500" || h.Reached.IsZero() {
		t.Fatalf("first page: %d commands, searched %d, next %q", len(h.Commands), h.Searched, h.Next)
	}
	h, err = st.DeviceHistory(ctx, "rare", nil, h.Next, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := historyIDs(h); got != "a-00000-rare" || h.Next != "" || h.Searched != 501 {
		t.Fatalf("going on: %q, searched %d, next %q", got, h.Searched, h.Next)
	}

	// A page filled in its sixteenth chunk covers the dispatches from the
	// newest back to its command's: 15,499 and that one.
	write([]string{"b-05000z"}, "rare")
	h, err = st.DeviceHistory(ctx, "rare", nil, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := historyIDs(h); got != "b-05000z-rare" || h.Next != "b-05000z" || h.Searched != 15500 || !h.Reached.Equal(h.Commands[0].CreatedAt) {
		t.Fatalf("a page filled far back: %q, searched %d back to %v, next %q", got, h.Searched, h.Reached, h.Next)
	}
}

func historyIDs(h store.DeviceHistory) string {
	s := ""
	for i, c := range h.Commands {
		if i > 0 {
			s += " "
		}
		s += c.ID
	}
	return s
}

// sqliteStore opens a fresh SQLite store for a test that needs no other backend.
func sqliteStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir()+"/h.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
