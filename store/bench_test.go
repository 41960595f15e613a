package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"devicehooks/store"
)

// BenchmarkApplyAcks settles acks in rounds of 100, as the trigger path's writer
// does under load (SQLite).
func BenchmarkApplyAcks(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "b.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const round = 100
	var devices []string
	for i := range round {
		id := fmt.Sprintf("d%03d", i)
		devices = append(devices, id)
		if err := st.CreateDevice(ctx, device(id)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("b%d", n)
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch(id, devices, "")}); err != nil {
			b.Fatal(err)
		}
		acks := make([]store.Ack, round)
		for i, d := range devices {
			acks[i] = store.Ack{CommandID: id + "-" + d, DeviceID: d, State: store.StateSucceeded, At: time.Now()}
		}
		b.StartTimer()
		if _, err := st.WriteBatch(ctx, &store.Batch{Acks: acks}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*round), "µs/ack")
}

// BenchmarkMarkPublished marks rounds of 1,000 commands published, as delivery's
// marker does during a fan-out (SQLite).
func BenchmarkMarkPublished(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "b.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const round = 1000
	var devices []string
	for i := range round {
		id := fmt.Sprintf("d%04d", i)
		devices = append(devices, id)
		if err := st.CreateDevice(ctx, device(id)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("b%d", n)
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch(id, devices, "")}); err != nil {
			b.Fatal(err)
		}
		ids := make([]string, round)
		for i, d := range devices {
			ids[i] = id + "-" + d
		}
		b.StartTimer()
		if _, err := st.WriteBatch(ctx, &store.Batch{Published: []store.Published{{IDs: ids, At: time.Now()}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*round), "µs/mark")
}
