package main

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// TestCopyDBMovesADeploymentToPostgreSQL: an SQLite deployment copied into
// PostgreSQL with copy-db, and served there with its secret, takes its
// integrations' calls with their keys and event ids, reaches its players
// with their tokens, and shows its history. copy-db refuses a database an
// instance serves, and a destination that holds data.
func TestCopyDBMovesADeploymentToPostgreSQL(t *testing.T) {
	old := startServer(t, Config{})
	token := old.createDevice("lobby-1")
	group := old.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Lobby", "device_ids": []string{"lobby-1"}})
	keyID, key := old.createKey("crm")
	event := old.createAction("load_url", map[string]any{"type": "group", "id": group["id"]}, map[string]any{"url": "https://example.com/welcome"})
	_, ans := old.post(key, `{"event_id":"`+event+`"}`)
	before := ans["dispatch_id"].(string)

	pg := testenv.Postgres(t)
	copyDB := func(wantCode int, wantOut string) {
		t.Helper()
		out := &testenv.Buffer{}
		if code := run(context.Background(), []string{"copy-db", "--from", old.cfg.DB, "--to", pg}, out, out); code != wantCode || !strings.Contains(out.String(), wantOut) {
			t.Fatalf("copy-db: exit %d, want %d with %q:\n%s", code, wantCode, wantOut, out)
		}
	}
	copyDB(1, "a devicehooks instance serves")
	old.stop()
	out := &testenv.Buffer{}
	if code := run(context.Background(), []string{"copy-db", "--from", old.cfg.DB, "--to", filepath.Dir(old.cfg.DB) + "/./" + filepath.Base(old.cfg.DB)}, out, out); code != 1 ||
		!strings.Contains(out.String(), "the same database") {
		t.Fatalf("copy-db into itself: exit %d:\n%s", code, out)
	}
	copyDB(0, "Copied")
	// A destination with data is refused before its schema is touched: one
	// recorded as older (a wrong --to, of an older build) keeps its record.
	side, err := sql.Open("pgx", pg)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	if _, err := side.Exec(`UPDATE settings SET value = '1' WHERE name = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	copyDB(1, "already holds data")
	var version string
	if err := side.QueryRow(`SELECT value FROM settings WHERE name = 'schema_version'`).Scan(&version); err != nil || version != "1" {
		t.Fatalf("the refused destination's schema record: %q, %v", version, err)
	}
	if _, err := side.Exec(`UPDATE settings SET value = $1 WHERE name = 'schema_version'`, strconv.Itoa(store.SchemaVersion)); err != nil {
		t.Fatal(err)
	}

	s := startServer(t, Config{DB: pg, SecretFile: old.cfg.SecretFile})
	if d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+before, nil); d["targets"] != float64(1) {
		t.Fatalf("the dispatch made before the copy: %v", d)
	}
	if k := s.mustCall(http.StatusOK, "POST", "/api/v1/api-keys/"+keyID+"/reveal", nil); k["key"] != key {
		t.Fatalf("the key revealed after the copy: %v", k)
	}
	p := connectPlayer(t, s.mqttURL(), "devicehooks", "lobby-1", token)
	s.waitOnline("lobby-1")
	status, ans := s.post(key, `{"event_id":"`+event+`"}`)
	if status != http.StatusOK {
		t.Fatalf("the integration's call after the copy: %d %v", status, ans)
	}
	for { // the command queued before the copy (its player was offline), then this one
		if cmd := p.next(10 * time.Second); cmd["dispatch_id"] == ans["dispatch_id"] {
			break
		}
	}
}
