package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// BenchmarkApplyAcks settles acks in rounds of 100, as the trigger path's writer
// does under load (SQLite).
func BenchmarkApplyAcks(b *testing.B) {
	benchRounds(b, 100, "µs/ack", func(dispatch string, devices []string) *store.Batch {
		acks := make([]store.Ack, len(devices))
		for i, d := range devices {
			acks[i] = store.Ack{CommandID: dispatch + "-" + d, DeviceID: d, State: store.StateSucceeded, At: time.Now()}
		}
		return &store.Batch{Acks: acks}
	})
}

// BenchmarkMarkPublished marks rounds of 1,000 commands published, as delivery's
// marker does during a fan-out (SQLite).
func BenchmarkMarkPublished(b *testing.B) {
	benchRounds(b, 1000, "µs/mark", func(dispatch string, devices []string) *store.Batch {
		ids := make([]string, len(devices))
		for i, d := range devices {
			ids[i] = dispatch + "-" + d
		}
		return &store.Batch{Published: []store.Published{{IDs: ids, At: time.Now()}}}
	})
}

// benchRounds times WriteBatch on the batch round makes for a fresh dispatch to
// n devices (written untimed), and reports the time per command as unit.
func benchRounds(b *testing.B, n int, unit string, round func(dispatch string, devices []string) *store.Batch) {
	ctx := context.Background()
	st := benchStore(b)
	devices := benchDevices(b, st, n)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("b%d", i)
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{newDispatch(id, devices, "")}); err != nil {
			b.Fatal(err)
		}
		batch := round(id, devices)
		b.StartTimer()
		if _, err := st.WriteBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), unit)
}

// BenchmarkSavePresence saves the presence of 1,000 devices at once, as the
// presence flush does after a fan-out's acks or a reconnect storm (SQLite).
func BenchmarkSavePresence(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b)
	const n = 1000
	ps := make([]store.Presence, n)
	for i, id := range benchDevices(b, st, n) {
		ps[i] = store.Presence{DeviceID: id, Online: true}
	}
	b.ResetTimer()
	for i := range b.N {
		at := time.Unix(int64(i), 0)
		for j := range ps {
			ps[j].At, ps[j].LastSeen = at, at
		}
		if err := st.SavePresence(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/device")
}

// BenchmarkCommandCounts counts by state the commands of a dispatch to 10,000
// devices, as the dispatch list and the benchmark's polling do during a fan-out
// (SQLite; the payload is a real command's size).
func BenchmarkCommandCounts(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b)
	devices := benchDevices(b, st, 10000)
	var ids []string
	for i := range 3 {
		nd := newDispatch(fmt.Sprintf("b%d", i), devices, "")
		for j := range nd.Commands {
			nd.Commands[j].Payload = strings.Repeat("x", 240)
		}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, nd.Dispatch.ID)
	}
	b.ResetTimer()
	for range b.N {
		counts, err := st.CommandCounts(ctx, ids)
		if err != nil || counts[ids[0]][store.StateQueued] != len(devices) {
			b.Fatalf("%v %v", counts, err)
		}
	}
}

// benchStore opens a fresh SQLite store; the benchmark closes it.
func benchStore(b *testing.B) *store.Store {
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// benchPostgres opens a fresh database on testenv's PostgreSQL server.
func benchPostgres(b *testing.B) *store.Store {
	st, err := store.Open(context.Background(), testenv.Postgres(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkTriggerRound writes what the trigger path's writer commits per round
// under steady load: k new single-device dispatches, and the publish marks and acks
// of the round before (1,000 devices). It reports the cost per trigger.
// With requests, each round also records the k webhook calls of the round before:
// "round" in the round's transaction (as the request log does), "apart" in one of
// their own (as it did before). SQLite, and PostgreSQL where named (a throwaway
// server with fsync off, unless DEVICEHOOKS_TEST_POSTGRES names one: the time is
// then the round trips' and the server's work, without the sync of the commit).
func BenchmarkTriggerRound(b *testing.B) {
	for _, c := range []struct {
		k        int
		requests string
		postgres bool
	}{{8, "", false}, {64, "", false}, {64, "round", false}, {64, "apart", false}, {32, "round", true}} {
		k := c.k
		name := fmt.Sprintf("k=%d", k)
		if c.requests != "" {
			name += "/requests=" + c.requests
		}
		if c.postgres {
			name = "postgres/" + name
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			open := benchStore
			if c.postgres {
				open = benchPostgres
			}
			st := open(b)
			devices := benchDevices(b, st, 1000)
			var prev []string // command ids of the round before
			b.ResetTimer()
			for i := range b.N {
				batch := &store.Batch{}
				ids := make([]string, k)
				for j := range k {
					id := fmt.Sprintf("r%08d-%02d", i, j)
					nd := newDispatch(id, devices[(i*k+j)%len(devices):][:1], "")
					nd.Commands[0].Payload = `{"id":"` + id + `","function":"restart","params":{}}`
					batch.Dispatches = append(batch.Dispatches, nd)
					ids[j] = nd.Commands[0].ID
				}
				if prev != nil {
					now := time.Now()
					batch.Published = []store.Published{{IDs: prev, At: now}}
					for _, id := range prev {
						batch.Acks = append(batch.Acks, store.Ack{CommandID: id, DeviceID: id[strings.LastIndexByte(id, '-')+1:], State: store.StateSucceeded, At: now})
					}
					if c.requests != "" {
						for _, id := range prev {
							batch.Requests = append(batch.Requests, store.RequestLog{ID: "q" + id, At: now, Method: "POST",
								KeyID: "key", KeyPrefix: "dh_abcd", Source: "127.0.0.1", UserAgent: "bench", EventID: "restart",
								Status: 200, Code: "success", DispatchID: id, LatencyUS: 1500})
						}
					}
				}
				requests := batch.Requests
				if c.requests == "apart" {
					batch.Requests = nil
				}
				if _, err := st.WriteBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if c.requests == "apart" {
					if err := st.InsertRequestLogs(ctx, requests); err != nil {
						b.Fatal(err)
					}
				}
				prev = ids
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*k), "µs/trigger")
		})
	}
}

// benchDevices registers n devices (d00000, d00001, ...) and returns their ids.
func benchDevices(b *testing.B, st *store.Store, n int) []string {
	devices := make([]string, n)
	for i := range devices {
		devices[i] = fmt.Sprintf("d%05d", i)
		if err := st.CreateDevice(context.Background(), device(devices[i])); err != nil {
			b.Fatal(err)
		}
	}
	return devices
}

// BenchmarkFanOutWrite writes dispatches to every one of 10,000 devices, one
// after another, as an "all devices" trigger's commit does: the commands'
// indexes grow with each, as they do in service. It reports the time per
// command.
func BenchmarkFanOutWrite(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b)
	devices := benchDevices(b, st, 10000)
	b.ResetTimer()
	for i := range b.N {
		nd := newDispatch(fmt.Sprintf("f%08d", i), devices, "")
		for j := range nd.Commands {
			nd.Commands[j].Payload = strings.Repeat("x", 200)
		}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(devices)), "µs/command")
}

// BenchmarkDeviceHistory reads the newest page of a device's history when
// none of the 20,000 latest dispatches has a command of it to show, the most
// a page looks at: a device none of them reached ("unreached"), and one that
// each reached, with a filter that none of its commands passes ("filtered").
func BenchmarkDeviceHistory(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchDeviceHistory(b, benchStore(b)) })
	b.Run("postgres", func(b *testing.B) { benchDeviceHistory(b, benchPostgres(b)) })
}

func benchDeviceHistory(b *testing.B, st *store.Store) {
	ctx := context.Background()
	devices := benchDevices(b, st, 2)
	for chunk := range 40 {
		batch := make([]*store.NewDispatch, 500)
		for i := range batch {
			batch[i] = newDispatch(fmt.Sprintf("h%08d", chunk*500+i), devices[:1], "")
		}
		if _, err := st.WriteDispatches(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		device string
		states []string
	}{{"unreached", devices[1], nil}, {"filtered", devices[0], []string{store.StateFailed}}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				h, err := st.DeviceHistory(ctx, c.device, c.states, "", 50)
				if err != nil || h.Searched != 20000 || len(h.Commands) != 0 {
					b.Fatalf("%d commands, searched %d: %v", len(h.Commands), h.Searched, err)
				}
			}
		})
	}
}

// BenchmarkUpdateGroup saves a group of 9,000 devices with two members taken
// out and two put in (each save undoes the one before and makes its own
// change), as the group form's page does (SQLite).
func BenchmarkUpdateGroup(b *testing.B) {
	ctx := context.Background()
	st := benchStore(b)
	devices := benchDevices(b, st, 10000)
	now := time.Now().UTC()
	g := &store.Group{ID: "big", Name: "Big", CreatedAt: now, UpdatedAt: now, DeviceIDs: devices[:9000]}
	if err := st.CreateGroup(ctx, g); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		// Out goes member i, in comes device 9000+i (and back the one before).
		members := slices.Concat(devices[:i%9000], devices[i%9000+1:9000], []string{devices[9000+i%1000]})
		if err := st.UpdateGroup(ctx, &store.Group{ID: "big", Name: "Big", DeviceIDs: members}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatchList times a page of the dispatch list with its count,
// with 100,000 dispatches kept (one command each, one in 1,000 failed, ten
// actions), unfiltered and through each filter: the failed filter probes
// each dispatch in the index of the commands that need attention, so its
// count reads every dispatch the other filters let through.
func BenchmarkDispatchList(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchDispatchList(b, benchStore(b)) })
	b.Run("postgres", func(b *testing.B) { benchDispatchList(b, benchPostgres(b)) })
}

func benchDispatchList(b *testing.B, st *store.Store) {
	ctx := context.Background()
	devices := benchDevices(b, st, 1)
	const n = 100000
	for chunk := range n / 1000 {
		batch := make([]*store.NewDispatch, 1000)
		for i := range batch {
			k := chunk*1000 + i
			nd := newDispatch(fmt.Sprintf("l%08d", k), devices, "")
			nd.Dispatch.ActionID = fmt.Sprintf("act-%d", k%10)
			if k%1000 == 500 {
				nd.Commands[0].State = store.StateFailed
			}
			batch[i] = nd
		}
		if _, err := st.WriteDispatches(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		f     store.DispatchFilter
		total int64
	}{
		{"all", store.DispatchFilter{}, n},
		{"action", store.DispatchFilter{ActionID: "act-3"}, n / 10},
		{"failed", store.DispatchFilter{Failed: true}, n / 1000},
		{"failed_of_action", store.DispatchFilter{Failed: true, ActionID: "act-0"}, n / 1000},
		{"failed_last_hour", store.DispatchFilter{Failed: true, Since: time.Now().Add(-time.Hour)}, n / 1000},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				ds, total, err := st.Dispatches(ctx, c.f, store.Page{Limit: 50})
				if err != nil || total != c.total || len(ds) != int(min(50, c.total)) {
					b.Fatalf("%d of %d: %v", len(ds), total, err)
				}
			}
		})
	}
}
