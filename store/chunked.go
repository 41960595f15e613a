package store

import "context"

// sweepChunk bounds the rows one statement of a purge or a sweep changes. SQLite
// has one writer at a time and the trigger path's writer waits for whoever holds
// it: deleting an hour of a busy request log in one statement (millions of rows)
// would hold every webhook call for seconds. 500 rows take a few milliseconds.
const sweepChunk = 500

// inChunks runs stmt, which must change at most the number of rows given as its
// last argument, until it changes fewer than sweepChunk, and returns how many
// rows it changed in all. Each run is a transaction of its own: a sweep cut short
// by an error keeps what it did, and the next one goes on from there.
//
// The statements pick their rows in a subquery. Where another transaction may
// change a picked row meanwhile, PostgreSQL's statement repeats the subquery's
// condition outside it: PostgreSQL checks again, on such a row, only the outer
// condition. Without it, a command acked between the two would be marked
// expired, and an idempotency key used again would lose its new record.
//
// ctx ends the run between chunks, not in one: a chunk is short, and a
// statement cut off by a deadline costs PostgreSQL its connection. The first
// chunk always runs, so that a run with a budget (the sweeper's) goes on
// however busy the database.
func (s *Store) inChunks(ctx context.Context, op, stmt string, args ...any) (int64, error) {
	args = append(args, sweepChunk)
	var total int64
	for {
		res := s.db.WithContext(context.WithoutCancel(ctx)).Exec(stmt, args...)
		if res.Error != nil {
			return total, wrap(op, res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < sweepChunk {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, wrap(op, err)
		}
	}
}
