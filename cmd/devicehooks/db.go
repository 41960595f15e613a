package main

import (
	"context"
	"fmt"
	"os"

	"devicehooks/store"
)

// openExisting opens the database of a server that has started before, beside
// it if it runs, without changing its schema (which is the server's to
// change): a missing SQLite file is an error, not a new database, and one
// without the tables is store.ErrNoSchema.
func openExisting(ctx context.Context, dsn string) (*store.Store, error) {
	if !store.IsPostgres(dsn) {
		if _, err := os.Stat(dsn); err != nil {
			return nil, fmt.Errorf("database %s: %w (give the server's with --db or DEVICEHOOKS_DB)", dsn, err)
		}
	}
	return store.Open(ctx, dsn, nil, store.WithoutMigration())
}
