package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestInsertColumnsMatchModels: the trigger path's own INSERTs name every column
// of their models; if a model gains or loses one, this fails (and the code falls
// back to gorm's slower Create until the list is updated).
func TestInsertColumnsMatchModels(t *testing.T) {
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !columnsMatch(st.db, &Dispatch{}, dispatchColumns) {
		t.Error("dispatchColumns no longer match the Dispatch model")
	}
	if !columnsMatch(st.db, &Command{}, commandColumns) {
		t.Error("commandColumns no longer match the Command model")
	}
	if !columnsMatch(st.db, &RequestLog{}, requestLogColumns) {
		t.Error("requestLogColumns no longer match the RequestLog model")
	}
	if columnsMatch(st.db, &Idempotency{}, commandColumns) {
		t.Error("a mismatch went unnoticed")
	}
}
