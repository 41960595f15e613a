package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// sqliteConnPragmas moves WAL checkpoints off the write path. By default the
// commit that takes the WAL past 1,000 pages copies it into the database and
// waits for the disk before it returns, and every trigger of that round waits
// with it. Store.checkpoints does that work in the background instead; the
// automatic checkpoint stays only as a backstop (at 64 MiB of WAL) should it fall
// behind. journal_size_limit gives the disk back after a burst.
const sqliteConnPragmas = "PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;"

// checkpointEvery is how often the background checkpoint runs: the WAL then holds
// about that much of the write load. Small checkpoints often beat large ones
// rarely: while a checkpoint syncs the database file, the writer's appends to
// the WAL can stall in the file system, for longer the more it has to sync. At
// 3,700 triggers/s, every 100 ms rather than every second took the p99 latency
// from 44-47 to 25-34 ms, and every 30 s to 89-100 ms. With nothing to copy,
// a checkpoint does not touch the disk.
const checkpointEvery = 100 * time.Millisecond

// checkpointSQL copies what it can of the WAL without waiting for anyone.
const checkpointSQL = "PRAGMA wal_checkpoint(PASSIVE)"

// checkpoints copies the WAL into the database every checkpointEvery without
// blocking writers or readers (PASSIVE), until stop is closed.
func (s *Store) checkpoints(stop <-chan struct{}, done chan<- struct{}, log *slog.Logger) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		err := s.Checkpoint(context.Background())
		switch {
		case err != nil && !failing && log != nil:
			log.Warn("sqlite checkpoint failed; the WAL grows until one succeeds", "err", err)
		case err == nil && failing && log != nil:
			log.Info("sqlite checkpoint works again")
		}
		failing = err != nil
		s.checkpointFailing.Store(failing)
	}
}

// walRestartFrames is the WAL's length, in frames (pages), from which the
// background checkpoint makes the WAL start over. SQLite writes a WAL from its
// beginning again only when a write begins with every frame copied, which
// checkpoints beside a steady stream of writes never leave: each copies what
// was there when it began while the writer appends more. So under load the
// WAL grew to the automatic checkpoint's 64 MiB in a few seconds (2 s at full
// load in the benchmark), and the commit that crossed it copied the rest and
// synced both files itself: 15-18 ms, with every trigger of the round and of
// the rounds queued behind it waiting. From this length on, a background
// checkpoint that copied all it saw copies the few frames written meanwhile
// while this process's writers wait for their turn (a few milliseconds), and
// the next write starts the WAL over.
const walRestartFrames = 4096 // 16 MiB of 4 KiB pages

// Checkpoint copies what it can of SQLite's WAL into the database file now,
// without waiting for readers or writers (a no-op on PostgreSQL). If the WAL
// is walRestartFrames long or longer and no reader held the copy back, it
// then takes the writers' turn to copy the rest, so that the next write starts
// the WAL over.
//
// That write may still not start it over: a read that began before the copy
// ended holds the WAL until it ends (SQLite then appends, saying nothing). So
// after a pass with the turn, the next waits until the WAL has started over or
// grown by walRestartFrames more: steady reads must not stop the writers at
// every checkpoint for nothing.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.postgres {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db := s.db.WithContext(ctx)
	// A busy checkpoint (another one runs) gives -1 for both counts.
	walFrames, copied, err := checkpointPassive(db)
	restart := s.walRestart.Load()
	held := s.heldAt.Load()
	if walFrames >= 0 && int64(walFrames) < held {
		held = 0 // the WAL started over since
		s.heldAt.Store(0)
	}
	if err != nil || restart <= 0 || int64(walFrames) < held+restart || copied < walFrames {
		return err
	}
	// A connection first, then the turn: writers wait for the turn holding
	// theirs, and could hold every one of the pool's. The turn is waited for
	// no longer than a writer waits for it.
	return db.Connection(func(conn *gorm.DB) error {
		t := time.NewTimer(serialWait)
		defer t.Stop()
		select {
		case s.writeTurn <- struct{}{}:
		case <-t.C:
			return fmt.Errorf("store: checkpoint: %w", errWriterBusy)
		case <-ctx.Done():
			return fmt.Errorf("store: checkpoint: wait for the writers' turn: %w", ctx.Err())
		}
		defer func() { <-s.writeTurn }()
		s.heldAt.Store(int64(walFrames))
		// checkpointSQL does not take the turn (readOnlySQL): it would wait
		// for itself.
		_, _, err := checkpointPassive(conn)
		return err
	})
}

// checkpointPassive runs checkpointSQL and returns the frames in the WAL as it
// began and how many of them are copied into the database file by its end.
func checkpointPassive(db *gorm.DB) (walFrames, copied int, err error) {
	// Read its row: a row-returning statement left unread stays in progress,
	// and the next COMMIT on that connection fails.
	var busy int
	if err := db.Raw(checkpointSQL).Row().Scan(&busy, &walFrames, &copied); err != nil {
		return 0, 0, fmt.Errorf("store: checkpoint: %w", err)
	}
	return walFrames, copied, nil
}
