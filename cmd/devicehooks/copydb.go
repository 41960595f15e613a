package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"devicehooks/secrets"
	"devicehooks/store"
)

// runCopyDB copies a deployment's database into a new one: SQLite into
// PostgreSQL when it outgrows one machine (or back). Everything goes as it
// is, so that the keys, event ids, links, device tokens, accounts and
// history of the old database work on the new one, under the same secret.
func runCopyDB(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("copy-db", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the database to copy: an SQLite file path or a postgres:// URL (required)")
	to := fs.String("to", "", "the new database, empty or not there yet (default: DEVICEHOOKS_DB)")
	fs.Usage = func() {
		io.WriteString(stderr, `Usage: devicehooks copy-db --from OLD [--to NEW]

Copies every row of a devicehooks database into a new one, from SQLite to
PostgreSQL (or back, or between two of either), in one transaction: all of
it or nothing. Ids, event ids, API keys, device tokens, accounts, dispatches
and the request log go as they are: integrations, links and players keep
working once devicehooks serves the new database with the SECRET OF THE OLD
ONE (DEVICEHOOKS_SECRET, or the old --secret-file; a start with another is
refused). Stop devicehooks (and any standby) on both first: copy-db refuses
a database that an instance serves. NEW must hold no data: a new SQLite
path, or a PostgreSQL database that is empty or that devicehooks has made
but never served. OLD must have been served by this build (its schema
upgraded). Give a PostgreSQL URL with a password in DEVICEHOOKS_DB (for NEW)
rather than on the command line, which every user of the machine can read.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *from == "" {
		fmt.Fprintln(stderr, "devicehooks copy-db: give the database to copy with --from (and no other argument)")
		return 2
	}
	if *to == "" {
		*to = os.Getenv("DEVICEHOOKS_DB")
	}
	if *to == "" || *to == *from {
		fmt.Fprintln(stderr, "devicehooks copy-db: give the new database with --to or DEVICEHOOKS_DB, another than --from")
		return 2
	}
	if err := copyDB(ctx, *from, *to, stdout); err != nil {
		fmt.Fprintln(stderr, "devicehooks copy-db:", err)
		return 1
	}
	return 0
}

func copyDB(ctx context.Context, from, to string, stdout io.Writer) error {
	if !store.IsPostgres(from) {
		fi, err := os.Stat(from)
		if err != nil {
			return fmt.Errorf("database %s: %w", from, err)
		}
		if tf, err := os.Stat(to); err == nil && os.SameFile(fi, tf) { // "dh.db" and "./dh.db"
			return fmt.Errorf("--from and --to are the same database, %s", from)
		}
	}
	src, err := store.Open(ctx, from, nil, store.AsTheActiveInstance(inUse(from)), store.WithoutMigration())
	if errors.Is(err, store.ErrNoSchema) {
		return fmt.Errorf("%s holds no devicehooks tables: %w", secrets.RedactURL(from), err)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	// Looked at as it is first: one that holds data (a --to that names the
	// wrong database) must not have its schema upgraded before it is refused.
	dst, err := store.Open(ctx, to, nil, store.AsTheActiveInstance(inUse(to)), store.WithoutMigration())
	switch {
	case errors.Is(err, store.ErrNoSchema): // new: its tables are made below
	case err != nil:
		return err
	default:
		err = dst.CheckEmpty(ctx)
		dst.Close()
		if err != nil {
			return err
		}
	}
	if dst, err = store.Open(ctx, to, nil, store.AsTheActiveInstance(inUse(to))); err != nil {
		return err
	}
	defer dst.Close()

	began := time.Now()
	fmt.Fprintf(stdout, "Copying %s into %s:\n", secrets.RedactURL(from), secrets.RedactURL(to))
	var total int64
	err = store.Copy(ctx, dst, src, func(table string, rows int64) {
		fmt.Fprintf(stdout, "  %-16s %d rows\n", table, rows)
		total += rows
	})
	if err != nil {
		return fmt.Errorf("nothing was copied: %w", err)
	}
	fmt.Fprintf(stdout, "Copied %d rows in %s. Serve the new database with the old one's server secret.\n",
		total, time.Since(began).Round(time.Millisecond))
	return nil
}

// inUse ends Open's wait for a database that an instance serves: copy-db
// does not wait for it to stop.
func inUse(dsn string) func(*store.Store, bool) error {
	return func(*store.Store, bool) error {
		return fmt.Errorf("a devicehooks instance serves %s: stop it, and any standby, first", secrets.RedactURL(dsn))
	}
}
