package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// stmtCache keeps the trigger path's statements prepared from one transaction to
// the next. gorm's own cache does not help inside a transaction: it prepares on
// the transaction, so the statement closes with it and is parsed and planned again
// in the next. These are prepared on the database once, at open, and Tx.StmtContext
// reuses what each connection has already prepared (preparing on the
// transaction's own connection the first time). Preparing later, on first use,
// would need a second connection while the transaction holds one: with every
// connection of the pool in such a transaction, that waits forever.
type stmtCache struct {
	// m holds the statements by name, read-only after open: a round found
	// each by its text, built again to do so (2 % of the bytes the server
	// allocated under the benchmark's load).
	m map[stmtKey]*sql.Stmt
}

// stmtKey names a cached statement: a table's insert or the acks' update
// ("acks") of rows rows (chunked), or the presence update (presenceStmt).
type stmtKey struct {
	kind string
	rows int
}

var presenceStmt = stmtKey{"presence", 1}

// cachedQueries are the writers' statements: the trigger path's and the
// request log's inserts and the acks' updates in every row count they use
// (chunked), the presence update.
func cachedQueries(postgres bool) map[stmtKey]string {
	qs := map[stmtKey]string{presenceStmt: presenceSQL}
	for rows := insertChunk; rows >= 1; rows /= 2 {
		qs[stmtKey{"dispatches", rows}] = insertSQL("dispatches", dispatchColumns, rows)
		qs[stmtKey{"commands", rows}] = insertSQL("commands", commandColumns, rows)
		qs[stmtKey{"request_logs", rows}] = insertSQL("request_logs", requestLogColumns, rows)
		qs[stmtKey{"acks", rows}] = ackSQL(rows, postgres)
	}
	return qs
}

func prepareStatements(ctx context.Context, db *sql.DB, postgres bool) (*stmtCache, error) {
	c := &stmtCache{m: make(map[stmtKey]*sql.Stmt)}
	for key, q := range cachedQueries(postgres) {
		st, err := db.PrepareContext(ctx, placeholders(postgres, q))
		if err != nil {
			c.close()
			return nil, fmt.Errorf("prepare %.40q: %w", q, err)
		}
		c.m[key] = st
	}
	return c, nil
}

// in returns the statement key names, prepared for the transaction under tx;
// the caller closes it (the prepared statement stays). A statement must be
// one of cachedQueries: anything else is an error, so a new statement cannot
// quietly go back to being prepared in every transaction.
func (c *stmtCache) in(tx *gorm.DB, key stmtKey) (*sql.Stmt, error) {
	sqlTx, ok := sqlTxOf(tx)
	if !ok {
		return nil, errors.New("no database/sql transaction under gorm")
	}
	st := c.m[key]
	if st == nil {
		return nil, fmt.Errorf("statement %s of %d rows not prepared at open (add it to cachedQueries)", key.kind, key.rows)
	}
	return sqlTx.StmtContext(tx.Statement.Context, st), nil
}

// close closes every statement (before the database).
func (c *stmtCache) close() {
	for _, st := range c.m {
		_ = st.Close()
	}
}

// sqlTxOf finds the database/sql transaction under a gorm transaction.
func sqlTxOf(tx *gorm.DB) (*sql.Tx, bool) {
	switch p := tx.Statement.ConnPool.(type) {
	case *sql.Tx:
		return p, true
	case *gorm.PreparedStmtTX:
		t, ok := p.Tx.(*sql.Tx)
		return t, ok
	}
	return nil, false
}

// execEach runs the statement key names once per i in [0, n) inside tx, with
// args(i).
func (c *stmtCache) execEach(tx *gorm.DB, key stmtKey, n int, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	stmt, err := c.in(tx, key)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(tx.Statement.Context, args(i)...); err != nil {
			return err
		}
	}
	return nil
}

// query runs the statement key names inside tx and calls each for every row
// it returns.
func (c *stmtCache) query(tx *gorm.DB, key stmtKey, args []any, each func(*sql.Rows) error) error {
	stmt, err := c.in(tx, key)
	if err != nil {
		return err
	}
	defer stmt.Close()
	rows, err := stmt.QueryContext(tx.Statement.Context, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// insertChunk is the most rows one INSERT or ack statement takes.
const insertChunk = 64

// chunked calls f for consecutive chunks [start, start+rows) of n rows:
// insertChunk rows at a time, and what is left in power-of-two chunks, so that at
// most seven statements per kind are ever prepared.
func chunked(n int, f func(start, rows int) error) error {
	for start := 0; start < n; {
		rows := insertChunk
		for rows > n-start {
			rows /= 2
		}
		if err := f(start, rows); err != nil {
			return err
		}
		start += rows
	}
	return nil
}

// insertRows inserts n rows into table, chunked. cols are the table's columns
// as cachedQueries prepared them; row appends row i's values in their order.
func (c *stmtCache) insertRows(tx *gorm.DB, table string, cols []string, n int, row func(i int, args []any) []any) error {
	args := make([]any, 0, min(n, insertChunk)*len(cols))
	return chunked(n, func(start, rows int) error {
		stmt, err := c.in(tx, stmtKey{table, rows})
		if err != nil {
			return err
		}
		defer stmt.Close()
		args = args[:0]
		for i := start; i < start+rows; i++ {
			args = row(i, args)
		}
		_, err = stmt.ExecContext(tx.Statement.Context, args...)
		return err
	})
}
