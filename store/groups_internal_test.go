package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// A group's members come in byte order, as Go sorts them, also where
// PostgreSQL's collation orders them otherwise: the API answers a new group's
// members in Go's order, and a read must answer the same.
func TestGroupMembersInByteOrder(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, testenv.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A collation that orders by letters first, as a database made with a
	// locale such as en_US does ("b.1" before "Dev_1").
	if err := st.db.Exec(`ALTER TABLE group_members ALTER COLUMN device_id TYPE varchar(64) COLLATE "und-x-icu"`).Error; err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ids := []string{"Dev_1", "b.1", "dev-1", "Dev-2"}
	for _, id := range ids {
		if err := st.CreateDevice(ctx, &Device{ID: id, Name: id, TokenHash: "h" + id, MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateGroup(ctx, &Group{ID: "g", Name: "g", CreatedAt: now, UpdatedAt: now, DeviceIDs: ids}); err != nil {
		t.Fatal(err)
	}
	var icu []string
	if err := st.db.Raw(`SELECT device_id FROM group_members ORDER BY device_id`).Scan(&icu).Error; err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(ids))
	if slices.Equal(icu, want) {
		t.Fatalf("the collation orders as Go does (%v): the test shows nothing", icu)
	}
	g, err := st.Group(ctx, "g")
	if err != nil || !slices.Equal(g.DeviceIDs, want) {
		t.Fatalf("members %v, %v; want %v", g.DeviceIDs, err, want)
	}
	gs, _, err := st.Groups(ctx, Page{Limit: 10})
	if err != nil || len(gs) != 1 || !slices.Equal(gs[0].DeviceIDs, want) {
		t.Fatalf("listed: %+v, %v; want %v", gs, err, want)
	}
}
