package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"devicehooks/internal/testenv"
)

// Copy moves every row of every table as it is, from SQLite to PostgreSQL
// and back, values that equal a column's default (an empty scope, false)
// and values left null among them; into a database that holds data, it
// copies nothing.
func TestCopyMovesEveryRowAsItIs(t *testing.T) {
	ctx := context.Background()
	open := func(dsn string) *Store {
		st, err := Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	src := open(filepath.Join(t.TempDir(), "src.db"))
	fillEveryTable(t, src)
	// A time read with an offset (pgx reads one in the machine's zone) goes
	// in as UTC: SQLite compares the text.
	if err := src.db.Exec(`UPDATE commands SET created_at = '2026-11-25 12:00:00.5+02:00' WHERE id = 'c2'`).Error; err != nil {
		t.Fatal(err)
	}

	pg := open(testenv.Postgres(t))
	var tables []string
	if err := Copy(ctx, pg, src, func(table string, rows int64) { tables = append(tables, table) }); err != nil {
		t.Fatal(err)
	}
	if len(tables) != len(copied) {
		t.Fatalf("progress named %v", tables)
	}
	sameRows(t, pg, src)

	back := open(filepath.Join(t.TempDir(), "back.db"))
	if err := Copy(ctx, back, pg, nil); err != nil {
		t.Fatal(err)
	}
	sameRows(t, back, src)
	direct := open(filepath.Join(t.TempDir(), "direct.db"))
	if err := Copy(ctx, direct, src, nil); err != nil {
		t.Fatal(err)
	}
	sameRows(t, direct, src)
	var text string
	if err := direct.db.Raw(`SELECT created_at || '' FROM commands WHERE id = 'c2'`).Scan(&text).Error; err != nil || text != "2026-11-25 10:00:00.5+00:00" {
		t.Fatalf("a time with an offset, copied: %q, %v", text, err)
	}

	if err := Copy(ctx, back, src, nil); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "admin_users has rows") {
		t.Fatalf("a copy into a database with data: %v", err)
	}
}

// Copy moves every table of the schema but the write probes' scratch one.
func TestCopyMovesEveryTable(t *testing.T) {
	moved := map[reflect.Type]bool{}
	for _, c := range copied {
		moved[reflect.TypeOf(c.model)] = true
	}
	for _, m := range schemaModels {
		if _, probe := m.(*WriteProbe); moved[reflect.TypeOf(m)] == probe {
			t.Errorf("%T: copied %v", m, moved[reflect.TypeOf(m)])
		}
	}
	if len(copied) != len(schemaModels)-1 {
		t.Errorf("%d tables copied of %d", len(copied), len(schemaModels))
	}
}

// A database of another schema than this build's is not copied: a column
// this build does not know would be left behind.
func TestCopyRefusesAnotherSchema(t *testing.T) {
	ctx := context.Background()
	src, err := Open(ctx, filepath.Join(t.TempDir(), "src.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := Open(ctx, filepath.Join(t.TempDir(), "dst.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := src.db.Exec(`UPDATE settings SET value = ? WHERE name = ?`, strconv.Itoa(SchemaVersion+1), schemaVersionSetting).Error; err != nil {
		t.Fatal(err)
	}
	if err := Copy(ctx, dst, src, nil); err == nil || !strings.Contains(err.Error(), "serve it with this build once first") {
		t.Fatalf("a newer schema copied: %v", err)
	}
}

// fillEveryTable writes a row or two in every table Copy moves.
func fillEveryTable(t *testing.T, st *Store) {
	t.Helper()
	now := time.Now().UTC()
	later := now.Add(time.Hour)
	rows := []any{
		&AdminUser{ID: "u1", Username: "admin", PasswordHash: "$argon2id$x", CreatedAt: now, UpdatedAt: now},
		&Session{ID: "s1", UserID: "u1", CreatedAt: now, ExpiresAt: later},
		&AdminToken{ID: "t1", Name: "ci", Prefix: "dha_abc", Hash: "h1", CreatedAt: now, LastUsedAt: &later},
		&APIKey{ID: "k1", Name: "crm", Prefix: "dhk_abc", LookupHash: "lh1", Sealed: "sealed", CreatedAt: now,
			ExpiresAt: &later, ScopeActions: `["a1"]`, Methods: `["POST"]`, CIDRs: `["10.0.0.0/8"]`, RatePerSec: 1.5, RateBurst: 3},
		&APIKey{ID: "k2", Name: "plain", Prefix: "dhk_def", LookupHash: "lh2", CreatedAt: now, RevokedAt: &now},
		&Device{ID: "d1", Name: "Lobby", TokenHash: "th1", MosquittoHash: "mh1", Online: true, LastSeen: &now, CreatedAt: now, UpdatedAt: now,
			DesiredVersion: 7, EmergencyEnabled: true, EmergencyMessage: "Leave", LoopPaused: true, DesiredUpdatedAt: &now},
		&Device{ID: "d2", Name: "Hall", TokenHash: "th2", MosquittoHash: "mh2", CreatedAt: now, UpdatedAt: now},
		&Group{ID: "g1", Name: "Floor", CreatedAt: now, UpdatedAt: now},
		&GroupMember{GroupID: "g1", DeviceID: "d1"},
		&Action{ID: "a1", Name: "Welcome", EventID: "evt_1", Function: "load_url", TargetType: TargetGroup, TargetID: "g1",
			Params: `{"url":"https://example.com"}`, Enabled: true, TTLSeconds: 900, CreatedAt: now, UpdatedAt: now},
		&Dispatch{ID: "x1", ActionID: "a1", ActionName: "Welcome", EventID: "evt_1", Function: "load_url", APIKeyID: "k1",
			APIKeyPrefix: "dhk_abc", Method: "POST", Source: "203.0.113.9", Targets: 1, CreatedAt: now},
		&Command{ID: "c1", DispatchID: "x1", DeviceID: "d1", State: StateSucceeded, Function: "load_url", Payload: `{"id":"c1"}`,
			CreatedAt: now, ExpiresAt: later, PublishedAt: &now, AckedAt: &now, Detail: "ok"},
		&Command{ID: "c2", DispatchID: "x1", DeviceID: "d2", State: StateQueued, Function: "load_url", Payload: `{"id":"c2"}`,
			CreatedAt: now, ExpiresAt: later},
		&Idempotency{APIKeyID: "k1", Key: "retry-1", DispatchID: "x1", Response: `{"dispatch_id":"x1"}`, Fingerprint: "fp", CreatedAt: now},
		&RequestLog{ID: "r1", At: now, Method: "POST", KeyID: "k1", KeyPrefix: "dhk_abc", Source: "203.0.113.9", UserAgent: "curl",
			EventID: "evt_1", Status: 202, Code: "success", DispatchID: "x1", LatencyUS: 1234},
		&Setting{Name: "secret_fingerprint", Value: "fp-of-the-secret"},
	}
	for _, r := range rows {
		if err := st.db.Create(r).Error; err != nil {
			t.Fatalf("%T: %v", r, err)
		}
	}
	// What gorm would write as the column's default: the value as it is.
	if err := st.db.Exec(`UPDATE api_keys SET scope_groups = '', methods = '' WHERE id = 'k2'`).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.db.Exec(`UPDATE counters SET value = 42 WHERE name = ?`, desiredCounter).Error; err != nil {
		t.Fatal(err)
	}
}

// sameRows fails unless every table Copy moves holds the same rows in got
// as in want, times to PostgreSQL's microsecond.
func sameRows(t *testing.T, got, want *Store) {
	t.Helper()
	for _, c := range copied {
		g, w := readAll(t, got, c.model), readAll(t, want, c.model)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", tableName(got.db, c.model), g, w)
		}
	}
}

// readAll reads the rows of model's table in the order of its key, times in
// UTC to the microsecond; of the settings, all but the schema's record, which
// is each database's own.
func readAll(t *testing.T, st *Store, model any) any {
	t.Helper()
	rows := reflect.New(reflect.SliceOf(reflect.TypeOf(model).Elem()))
	q := st.db.Model(model)
	if _, ok := model.(*Setting); ok {
		q = q.Where("name NOT IN ?", []string{schemaVersionSetting, compatibleFromSetting})
	}
	stmt := &gorm.Statement{DB: st.db}
	if err := stmt.Parse(model); err != nil {
		t.Fatal(err)
	}
	for _, f := range stmt.Schema.PrimaryFields {
		q = q.Order(f.DBName)
	}
	if err := q.Find(rows.Interface()).Error; err != nil {
		t.Fatal(err)
	}
	for i := range rows.Elem().Len() {
		row := rows.Elem().Index(i)
		for j := range row.NumField() {
			switch f := row.Field(j); v := f.Interface().(type) {
			case time.Time:
				f.Set(reflect.ValueOf(v.UTC().Truncate(time.Microsecond)))
			case *time.Time:
				if v != nil {
					at := v.UTC().Truncate(time.Microsecond)
					f.Set(reflect.ValueOf(&at))
				}
			}
		}
	}
	return rows.Elem().Interface()
}
