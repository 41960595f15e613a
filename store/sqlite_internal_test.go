//go:build cgo

package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

func openTestSQLite(t *testing.T) *Store {
	t.Helper()
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), nil)
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
