//go:build cgo

package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

func openTestSQLite(t *testing.T) *Store {
	t.Helper()
	return openTestSQLiteAt(t, filepath.Join(t.TempDir(), "s.db"))
}

func openTestSQLiteAt(t *testing.T, path string) *Store {
	t.Helper()
	st, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testDevice(id string) *Device {
	now := time.Now().UTC()
	return &Device{ID: id, Name: id, TokenHash: "hash-" + id, MosquittoHash: "m", CreatedAt: now, UpdatedAt: now}
}

// While a transaction of this process holds the write lock, reads go on, and a
// write queues for its turn and then succeeds.
func TestSQLiteWritersTakeTurnsAndReadersDoNotWait(t *testing.T) {
	st := openTestSQLite(t)
	ctx := context.Background()
	inTx, release := make(chan struct{}), make(chan struct{})
	txDone := make(chan error, 1)
	go func() {
		txDone <- st.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(testDevice("in-tx")).Error; err != nil {
				return err
			}
			close(inTx)
			<-release
			return nil
		})
	}()
	<-inTx

	readCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, _, err := st.Devices(readCtx, Page{}); err != nil {
		t.Fatalf("a read waited for the open write transaction: %v", err)
	}

	wrote := make(chan error, 1)
	go func() { wrote <- st.CreateDevice(ctx, testDevice("queued")) }()
	select {
	case err := <-wrote:
		t.Fatalf("a write ran while another transaction held the lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if len(st.writeTurn) != 1 {
		t.Fatal("the write lock is free while a transaction is open")
	}
	close(release)
	if err := <-txDone; err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the queued write: %v", err)
	}
	if len(st.writeTurn) != 0 {
		t.Fatal("the write lock is still held after every writer finished")
	}
}

// Many writers at once, in transactions, single statements and writing queries
// (INSERT ... RETURNING), all succeed; none meets "database is locked".
func TestSQLiteConcurrentWritersAllSucceed(t *testing.T) {
	st := openTestSQLite(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 3*8*40)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				id := fmt.Sprintf("w%d-%d", w, i)
				errs <- st.CreateDevice(ctx, testDevice(id))
				errs <- st.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Device{}).Where("id = ?", id).Update("name", "renamed").Error
				})
				var got string
				errs <- st.db.WithContext(ctx).Raw("UPDATE devices SET name = ? WHERE id = ? RETURNING name", "returned", id).Row().Scan(&got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int64
	st.db.Model(&Device{}).Where("name = ?", "returned").Count(&n)
	if n != 8*40 {
		t.Fatalf("%d devices written through, want %d", n, 8*40)
	}
	if len(st.writeTurn) != 0 {
		t.Fatal("the write lock is still held after every writer finished")
	}
}

// Only statements that read are spared the turn: SQLite calls BEGIN read-only,
// and a PRAGMA may write; the background checkpoint must never wait for writers.
func TestSQLiteStatementsThatTakeTheTurn(t *testing.T) {
	st := openTestSQLite(t)
	ctx := context.Background()
	sqlDB, err := st.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for query, readOnly := range map[string]bool{
		"SELECT id FROM devices":          true,
		"  select count(*) from devices":  true,
		checkpointSQL:                     true,
		"BEGIN":                           false,
		"PRAGMA user_version = 3":         false,
		"UPDATE devices SET name = 'x'":   false,
		"DELETE FROM devices WHERE 1 = 0": false,
	} {
		err := conn.Raw(func(dc any) error {
			stmt, err := dc.(*serialConn).PrepareContext(ctx, query)
			if err != nil {
				return err
			}
			defer stmt.Close()
			if got := stmt.(*serialStmt).readOnly; got != readOnly {
				t.Errorf("%q: read-only %v, want %v", query, got, readOnly)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%q: %v", query, err)
		}
	}
}

// The queries for a device's open commands use the partial index that holds only
// open commands: a query that does not repeat its WHERE term word for word would
// scan every command ever sent instead.
func TestOpenCommandQueriesUseTheOpenIndex(t *testing.T) {
	st := openTestSQLite(t)
	ctx := context.Background()
	var plans []string
	explain := func(db *gorm.DB) {
		sql := db.Statement.SQL.String()
		if db.Statement.Table != "commands" && !strings.Contains(sql, "UPDATE commands ") || strings.HasPrefix(sql, "EXPLAIN") {
			return
		}
		var rows []struct {
			ID, Parent, Notused int
			Detail              string
		}
		q := "EXPLAIN QUERY PLAN " + db.Statement.SQL.String()
		if err := db.Session(&gorm.Session{NewDB: true}).Raw(q, db.Statement.Vars...).Scan(&rows).Error; err != nil {
			t.Errorf("%s: %v", q, err)
		}
		plan := ""
		for _, r := range rows {
			plan += r.Detail + "; "
		}
		plans = append(plans, db.Statement.SQL.String()+" => "+plan)
	}
	if err := st.db.Callback().Query().After("gorm:query").Register("test:explain", explain); err != nil {
		t.Fatal(err)
	}
	if err := st.db.Callback().Update().After("gorm:update").Register("test:explain", explain); err != nil {
		t.Fatal(err)
	}
	if err := st.db.Callback().Row().After("gorm:row").Register("test:explain", explain); err != nil { // Raw(…).Scan
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, testDevice("d1")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PendingCommands(ctx, []string{"d1"}, []string{StateQueued}, time.Now(), PendingAfter{}, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteDevice(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 {
		t.Fatalf("explained %d queries on commands, want 2: %q", len(plans), plans)
	}
	for _, p := range plans {
		if !strings.Contains(p, "INDEX idx_commands_open_device_fn") { // USING INDEX, or USING COVERING INDEX
			t.Errorf("does not use idx_commands_open_device_fn: %s", p)
		}
	}
	// A change of desired state supersedes open commands of some functions:
	// the index finds them by device, and holds the function.
	var rows []struct{ Detail string }
	if err := st.db.Raw(`EXPLAIN QUERY PLAN UPDATE commands SET state = ?, detail = ? WHERE device_id IN ? AND function IN ? AND `+openStates,
		StateExpired, supersededBy+"x", []string{"d1", "d2"}, []string{"set_emergency", "pause_loop"}).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || !strings.Contains(rows[len(rows)-1].Detail, "idx_commands_open_device_fn (device_id=? AND state=?)") {
		t.Errorf("supersede's plan: %v", rows)
	}
}

// A database made by an earlier version loses its full (device_id, state) index,
// or its open-commands index without the function, when opened, and gets the
// open-commands index by device and function.
func TestOpenReplacesTheFullDeviceStateIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	st, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.db.Exec(`DROP INDEX idx_commands_open_device_fn`).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.db.Exec(`CREATE INDEX idx_commands_device_state ON commands (device_id, state)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.db.Exec(`CREATE INDEX idx_commands_open_device ON commands (device_id, state, expires_at) WHERE ` + openStates).Error; err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = openTestSQLiteAt(t, path)
	var names []string
	if err := st.db.Raw(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'commands' ORDER BY name`).Scan(&names).Error; err != nil {
		t.Fatal(err)
	}
	if got := " " + strings.Join(names, " ") + " "; strings.Contains(got, "idx_commands_device_state") ||
		strings.Contains(got, " idx_commands_open_device ") || !strings.Contains(got, " idx_commands_open_device_fn ") {
		t.Fatalf("indexes on commands: %s", got)
	}
	var cols []string
	if err := st.db.Raw(`SELECT name FROM pragma_index_info('idx_commands_open_device_fn') ORDER BY seqno`).Scan(&cols).Error; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cols, ","); got != "device_id,state,expires_at,function" {
		t.Fatalf("idx_commands_open_device_fn holds %s", got)
	}
}

// A sweep goes in statements of sweepChunk rows, and on SQLite the expiry looks
// the picked commands up by id rather than walking every overdue one per chunk.
func TestSweepsChunkTheirStatements(t *testing.T) {
	st := openTestSQLite(t)
	ctx := context.Background()
	var (
		stmts []string
		vars  [][]any
	)
	if err := st.db.Callback().Raw().After("gorm:raw").Register("test:count", func(db *gorm.DB) {
		stmts = append(stmts, db.Statement.SQL.String())
		vars = append(vars, db.Statement.Vars)
	}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Add(-time.Hour)
	logs := make([]RequestLog, 2*sweepChunk+34)
	for i := range logs {
		logs[i] = RequestLog{ID: fmt.Sprintf("r%04d", i), At: old, Method: "POST", Status: 200, Code: "success"}
	}
	if err := st.InsertRequestLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	stmts, vars = nil, nil
	if n, err := st.PurgeRequestLogs(ctx, time.Now()); err != nil || n != int64(len(logs)) {
		t.Fatalf("purged %d (%v), want %d", n, err, len(logs))
	}
	if len(stmts) != 3 {
		t.Fatalf("the purge of %d rows ran %d statements, want 3 of at most %d rows", len(logs), len(stmts), sweepChunk)
	}

	stmts, vars = nil, nil
	if _, err := st.ExpireCommands(ctx, time.Now()); err != nil || len(stmts) != 1 {
		t.Fatalf("expire: %v, %d statements", err, len(stmts))
	}
	var plan []struct {
		ID, Parent, Notused int
		Detail              string
	}
	if err := st.db.Raw("EXPLAIN QUERY PLAN "+stmts[0], vars[0]...).Scan(&plan).Error; err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, p := range plan {
		details = append(details, p.Detail)
	}
	if joined := strings.Join(details, "; "); !strings.Contains(joined, "sqlite_autoindex_commands_1 (id=?)") {
		t.Errorf("the expiry does not look the picked commands up by id: %s", joined)
	}
}

// A database from before the desired-state counter gets one that starts past
// every version its devices already have.
func TestDesiredCounterStartsPastOldVersions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	st, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, testDevice("d1")); err != nil {
		t.Fatal(err)
	}
	// Eight dispatches so far: a device deleted since may have reached
	// version 8, above every version left in the devices table.
	for i := range 8 {
		now := time.Now().UTC()
		id := fmt.Sprintf("old-%d", i)
		nd := &NewDispatch{Dispatch: Dispatch{ID: id, ActionID: "a", ActionName: "a", EventID: "e", Function: "restart", Method: "POST", Targets: 1, CreatedAt: now},
			Commands: []Command{{ID: id + "-c", DispatchID: id, DeviceID: "d1", State: StateQueued, Function: "restart", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}}}
		if _, err := st.WriteDispatches(ctx, []*NewDispatch{nd}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{`UPDATE devices SET desired_version = 5`, `DROP TABLE counters`} {
		if err := st.db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st = openTestSQLiteAt(t, path)
	paused := true
	now := time.Now().UTC()
	nd := &NewDispatch{Dispatch: Dispatch{ID: "x", ActionID: "a", ActionName: "a", EventID: "e", Function: "pause_loop", Method: "POST", Targets: 1, CreatedAt: now},
		Commands: []Command{{ID: "c", DispatchID: "x", DeviceID: "d1", State: StateQueued, Function: "pause_loop", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}},
		Desired:  &DesiredChange{LoopPaused: &paused}}
	if _, err := st.WriteDispatches(ctx, []*NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	ds, err := st.DevicesWithDesired(ctx, []string{"d1"})
	if err != nil || len(ds) != 1 || ds[0].DesiredVersion != 9 {
		t.Fatalf("after an upgrade: %+v, %v; want version 9", ds, err)
	}
}

// A new database and its WAL are readable by their owner only.
func TestNewDatabaseIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.db")
	st := openTestSQLiteAt(t, path)
	if err := st.CreateDevice(context.Background(), testDevice("d1")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(f), perm)
		}
	}
}

// ProbeWrite deletes its row, and any left by a probe whose delete failed.
func TestProbeWriteLeavesNothing(t *testing.T) {
	st := openTestSQLite(t)
	ctx := context.Background()
	if err := st.db.Create(&WriteProbe{ID: "left-behind", Data: "x"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.ProbeWrite(ctx); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := st.db.Model(&WriteProbe{}).Count(&n).Error; err != nil || n != 0 {
		t.Fatalf("%d probe rows left (%v)", n, err)
	}
}

// The dashboard's failed dispatches look up each dispatch of the window in
// the index of commands that need attention, not every failed command kept.
func TestFailedDispatchesUseTheAttentionIndex(t *testing.T) {
	st := openTestSQLite(t)
	var rows []struct{ Detail string }
	q := withFailedCommand(st.db.Model(&Dispatch{}).Where("created_at >= ?", time.Now())).
		Session(&gorm.Session{DryRun: true}).Select("COUNT(*)").Find(&[]int64{}).Statement
	if err := st.db.Raw("EXPLAIN QUERY PLAN "+q.SQL.String(), q.Vars...).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	plan := fmt.Sprint(rows)
	if !strings.Contains(plan, "idx_commands_attention (dispatch_id=?)") || !strings.Contains(plan, "idx_dispatches_created_at") {
		t.Fatalf("plan: %s", plan)
	}
}

// A page of the request log filtered by code, key or source is read off the
// end of that filter's index, not sorted out of every matching call; and the
// single-column indexes of earlier builds are gone.
func TestRequestLogFiltersReadTheirIndexInOrder(t *testing.T) {
	st := reopenedWithOldIndex(t, `CREATE INDEX idx_request_logs_code ON request_logs (code)`, "idx_request_logs_code")
	for _, f := range []RequestFilter{{Code: "success"}, {KeyID: "k"}, {Source: "127.0.0.1"}} {
		plan := pagePlan(t, st, func() error {
			_, _, err := st.RequestLogs(context.Background(), f, Page{Limit: 10})
			return err
		})
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "_at (") {
			t.Errorf("%+v: the page's plan is %s", f, plan)
		}
	}
}

// A page of dispatches of one action or one key is read off the end of that
// filter's index, not sorted out of every matching dispatch; and the
// single-column indexes of earlier builds are gone.
func TestDispatchFiltersReadTheirIndexInOrder(t *testing.T) {
	st := reopenedWithOldIndex(t, `CREATE INDEX idx_dispatches_action_id ON dispatches (action_id);
		CREATE INDEX idx_dispatches_api_key_id ON dispatches (api_key_id)`, "idx_dispatches_action_id")
	var old []string
	if err := st.db.Raw(`SELECT name FROM sqlite_master WHERE name = 'idx_dispatches_api_key_id'`).Scan(&old).Error; err != nil || len(old) > 0 {
		t.Fatalf("the old index by key is still there: %v %v", old, err)
	}
	for _, f := range []DispatchFilter{{ActionID: "a"}, {APIKeyID: "k"}, {ActionID: "a", Since: time.Now().Add(-time.Hour)}} {
		plan := pagePlan(t, st, func() error {
			_, _, err := st.Dispatches(context.Background(), f, Page{Limit: 10})
			return err
		})
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "_at (") {
			t.Errorf("%+v: the page's plan is %s", f, plan)
		}
	}
}

// pagePlan is the plan of the page that list reads from st: the second of
// its two queries (listPage counts first).
func pagePlan(t *testing.T, st *Store, list func() error) string {
	t.Helper()
	var plans []string
	explain := func(db *gorm.DB) { plans = append(plans, planOf(t, db)) }
	if err := st.db.Callback().Query().After("gorm:query").Register("test:explain", explain); err != nil {
		t.Fatal(err)
	}
	err := list()
	if err := st.db.Callback().Query().Remove("test:explain"); err != nil {
		t.Fatal(err)
	}
	if err != nil || len(plans) != 2 {
		t.Fatalf("%v, %d plans", err, len(plans))
	}
	return plans[1]
}

// A device's history finds its command in each dispatch by the index on
// (dispatch_id, device_id), and a dispatch's page reads its commands in
// order off that index; the index on dispatch_id alone of earlier builds
// is gone.
func TestDispatchDeviceIndex(t *testing.T) {
	st := reopenedWithOldIndex(t, `CREATE INDEX idx_commands_dispatch_id ON commands (dispatch_id)`, "idx_commands_dispatch_id")
	var plans []string
	explain := func(db *gorm.DB) {
		if sql := db.Statement.SQL.String(); strings.Contains(sql, "commands") && !strings.HasPrefix(sql, "EXPLAIN") {
			plans = append(plans, planOf(t, db))
		}
	}
	if err := st.db.Callback().Query().After("gorm:query").Register("test:explain", explain); err != nil {
		t.Fatal(err)
	}
	if err := st.db.Callback().Row().After("gorm:row").Register("test:explain", explain); err != nil { // Scan
		t.Fatal(err)
	}
	ctx := context.Background()
	nd := &NewDispatch{Dispatch: Dispatch{ID: "d1", ActionID: "a", ActionName: "a", EventID: "e", Function: "restart", Method: "POST", CreatedAt: time.Now()}}
	if _, err := st.WriteDispatches(ctx, []*NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeviceHistory(ctx, "lobby-1", nil, "", 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.DispatchCommandPage(ctx, "d1", nil, Page{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if len(plans) != 3 { // the history's, the page's count and the page's
		t.Fatalf("explained %d queries, want 3: %q", len(plans), plans)
	}
	if !strings.Contains(plans[0], "d USING INDEX sqlite_autoindex_dispatches_1") || !strings.Contains(plans[0], "SEARCH c USING INDEX idx_commands_dispatch_device (dispatch_id=? AND device_id=?)") || strings.Contains(plans[0], "TEMP B-TREE") {
		t.Errorf("the history's plan: %s", plans[0])
	}
	if !strings.Contains(plans[2], "idx_commands_dispatch_device (dispatch_id=?)") || strings.Contains(plans[2], "TEMP B-TREE") {
		t.Errorf("a dispatch page's plan: %s", plans[2])
	}
}

// reopenedWithOldIndex opens again a database to which an index of an
// earlier build was added (create, named name), as an upgrade does, and
// checks that the index is gone.
func reopenedWithOldIndex(t *testing.T, create, name string) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	st := openTestSQLiteAt(t, path)
	for q := range strings.SplitSeq(create, ";") { // one statement at a time: they are prepared
		if err := st.db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st = openTestSQLiteAt(t, path)
	var names []string
	if err := st.db.Raw(`SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&names).Error; err != nil || len(names) > 0 {
		t.Fatalf("the old index %s is still there: %v %v", name, names, err)
	}
	return st
}

// planOf explains the statement that db runs, from a gorm callback.
func planOf(t *testing.T, db *gorm.DB) string {
	var rows []struct{ Detail string }
	q := "EXPLAIN QUERY PLAN " + db.Statement.SQL.String()
	if err := db.Session(&gorm.Session{NewDB: true}).Raw(q, db.Statement.Vars...).Scan(&rows).Error; err != nil {
		t.Error(err)
	}
	return fmt.Sprint(rows)
}

// The SQL terms of open and final states name what OpenStates and IsOpen do,
// every state in one of them.
func TestStateTermsMatchTheStates(t *testing.T) {
	for _, st := range States {
		quoted := "'" + st + "'"
		if open, final := strings.Contains(openStates, quoted), strings.Contains(finalStates, quoted); open != IsOpen(st) || final == IsOpen(st) || open != slices.Contains(OpenStates, st) {
			t.Errorf("%s: in openStates %v, in finalStates %v, IsOpen %v", st, open, final, IsOpen(st))
		}
	}
}

// Under a steady stream of writes the WAL starts over each time it is past
// walRestart frames. The background checkpoints alone never leave it with
// every frame copied (each copies what was there when it began, while the
// writer appends more), so without the second pass it started over only when
// SQLite's own checkpoint, at 16,384 frames, made a commit copy it all; the
// file then stays at journal_size_limit, 64 MiB. SQLite writes the WAL's
// header again at each start over, with its checkpoint sequence number one up.
func TestWALStartsOverUnderSteadyWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openTestSQLiteAt(t, path)
	st.walRestart.Store(64)
	ctx := context.Background()

	stop, wrote := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				wrote <- nil
				return
			default:
			}
			rs := make([]RequestLog, 200)
			for j := range rs {
				rs[j] = RequestLog{ID: fmt.Sprintf("r-%d-%d", i, j), At: time.Now().UTC(), Method: "POST",
					UserAgent: strings.Repeat("u", 150), Status: 200, Code: "success"}
			}
			if err := st.InsertRequestLogs(ctx, rs); err != nil {
				wrote <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}()

	first := walCheckpointSeq(t, path)
	deadline := time.Now().Add(10 * time.Second)
	for {
		seq := walCheckpointSeq(t, path)
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= 64<<20 {
			t.Fatalf("the WAL file reached %d MiB, where SQLite's own checkpoint starts it over, having started over %d times before",
				fi.Size()>>20, seq-first)
		}
		if seq >= first+3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WAL started over %d times in 10 s of steady writes", seq-first)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A checkpoint held back by a reader's snapshot does not take the writers'
// turn: it could not copy the rest either, and would only stall the writers.
func TestCheckpointHeldBackByAReaderLeavesTheWritersAlone(t *testing.T) {
	st := openTestSQLite(t)
	stopBackgroundCheckpoints(st)
	st.walRestart.Store(1)
	ctx := context.Background()
	if err := st.CreateDevice(ctx, testDevice("a")); err != nil {
		t.Fatal(err)
	}
	// An open query holds its snapshot, from before the next write.
	rows, err := st.db.WithContext(ctx).Raw("SELECT id FROM devices").Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal("no device read")
	}
	if err := st.CreateDevice(ctx, testDevice("b")); err != nil {
		t.Fatal(err)
	}
	if err := checkpointWhileAWriterHoldsTheTurn(st); err != nil {
		t.Fatalf("the checkpoint waited for the writers' turn: %v", err)
	}
}

// A read that began before a pass with the writers' turn keeps the next write
// from starting the WAL over. The passes after that do not take the turn
// again until the WAL has grown by walRestart frames more, or started over:
// steady reads must not stop the writers at every checkpoint for nothing.
func TestCheckpointTakesTheTurnAgainOnlyOnceTheWALHasGrown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openTestSQLiteAt(t, path)
	stopBackgroundCheckpoints(st)
	ctx := context.Background()
	n := 0
	write := func() {
		t.Helper()
		if err := st.CreateDevice(ctx, testDevice(fmt.Sprintf("d-%d", n))); err != nil {
			t.Fatal(err)
		}
		n++
	}

	write()
	rows, err := st.db.WithContext(ctx).Raw("SELECT id FROM devices").Rows() // a read, open
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal("no device read")
	}
	f0, _, err := checkpointPassive(st.db.WithContext(ctx)) // the WAL's length, all copied
	if err != nil {
		t.Fatal(err)
	}
	st.walRestart.Store(int64(f0))
	if err := st.Checkpoint(ctx); err != nil { // with the turn
		t.Fatal(err)
	}
	if got := st.heldAt.Load(); got != int64(f0) {
		t.Fatalf("held at %d, want %d: the checkpoint did not take the turn", got, f0)
	}
	write() // not started over: the read holds the WAL
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	write()
	// The WAL file's length bounds the WAL's (a copy now would let the next
	// write start it over).
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if f1 := int((fi.Size() - 32) / (24 + 4096)); f1 >= 2*f0 {
		t.Fatalf("the WAL went from %d to %d frames or fewer; the test needs it to grow by less than %d", f0, f1, f0)
	}

	// All but the last write is copied, nothing holds the copy back, and the
	// WAL is past walRestart: only the pass with the turn before holds this
	// one back.
	if err := checkpointWhileAWriterHoldsTheTurn(st); err != nil {
		t.Fatalf("the checkpoint waited for the writers' turn again before the WAL had grown by %d frames: %v", f0, err)
	}

	// That pass copied all: the next write starts the WAL over, and the pass
	// after it may take the turn again as soon as the WAL is long enough.
	seq := walCheckpointSeq(t, path)
	write()
	if got := walCheckpointSeq(t, path); got != seq+1 {
		t.Fatalf("the WAL did not start over (checkpoint sequence %d, then %d)", seq, got)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := st.heldAt.Load(); got != 0 {
		t.Fatalf("held at %d after the WAL started over, want 0", got)
	}
}

// checkpointWhileAWriterHoldsTheTurn runs Checkpoint while the writers' turn
// is held, as by a writer in its transaction: an error if it waited for it.
func checkpointWhileAWriterHoldsTheTurn(st *Store) error {
	st.writeTurn <- struct{}{}
	defer func() { <-st.writeTurn }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return st.Checkpoint(ctx)
}

func stopBackgroundCheckpoints(st *Store) {
	close(st.stopCheckpoints)
	<-st.checkpointsDone
	st.stopCheckpoints = nil
}

// walCheckpointSeq reads the checkpoint sequence number from the WAL's header
// (bytes 12-15, big-endian): SQLite adds one each time the WAL starts over.
func walCheckpointSeq(t *testing.T, dbPath string) int {
	t.Helper()
	f, err := os.Open(dbPath + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr [16]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		t.Fatal(err)
	}
	return int(hdr[12])<<24 | int(hdr[13])<<16 | int(hdr[14])<<8 | int(hdr[15])
}
