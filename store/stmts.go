package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"

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
	m map[string]*sql.Stmt // query as written, with ? placeholders; read-only after open
	// chunks holds the chunked statements' text, built once: a round found
	// each of its statements by building its text again (2 % of the bytes
	// the server allocated under the benchmark's load). Read-only after open.
	chunks map[chunk]string
}

// chunk names a chunked statement: a table's insert, or the acks' update
// ("acks"), of rows rows.
type chunk struct {
	kind string
	rows int
}

// chunkedQueries are the trigger path's and the request log's inserts and the
// acks' updates in every row count they use (chunked).
func chunkedQueries(postgres bool) map[chunk]string {
	qs := map[chunk]string{}
	for rows := insertChunk; rows >= 1; rows /= 2 {
		qs[chunk{"dispatches", rows}] = insertSQL("dispatches", dispatchColumns, rows)
		qs[chunk{"commands", rows}] = insertSQL("commands", commandColumns, rows)
		qs[chunk{"request_logs", rows}] = insertSQL("request_logs", requestLogColumns, rows)
		qs[chunk{"acks", rows}] = ackSQL(rows, postgres)
	}
	return qs
}

// prepareStatements prepares the writers' statements: the chunked ones and the
// presence update.
func prepareStatements(ctx context.Context, db *sql.DB, postgres bool) (*stmtCache, error) {
	c := &stmtCache{m: make(map[string]*sql.Stmt), chunks: chunkedQueries(postgres)}
	for _, q := range append(slices.Collect(maps.Values(c.chunks)), presenceSQL) {
		st, err := db.PrepareContext(ctx, placeholders(postgres, q))
		if err != nil {
			c.close()
			return nil, fmt.Errorf("prepare %.40q: %w", q, err)
		}
		c.m[q] = st
	}
	return c, nil
}

// in returns query prepared for the transaction under tx; the caller closes it
// (the prepared statement stays). A query must be one prepareStatements
// prepared: anything else is an error, so a new statement cannot quietly go
// back to being prepared in every transaction.
func (c *stmtCache) in(tx *gorm.DB, query string) (*sql.Stmt, error) {
	sqlTx, ok := sqlTxOf(tx)
	if !ok {
		return nil, errors.New("no database/sql transaction under gorm")
	}
	st := c.m[query]
	if st == nil {
		return nil, fmt.Errorf("statement not prepared at open (add it to prepareStatements): %.60q", query)
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

// execEach runs query once per i in [0, n) inside tx, with args(i).
func (c *stmtCache) execEach(tx *gorm.DB, query string, n int, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	stmt, err := c.in(tx, query)
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

// query runs a cached query inside tx and calls each for every row it returns.
func (c *stmtCache) query(tx *gorm.DB, query string, args []any, each func(*sql.Rows) error) error {
	stmt, err := c.in(tx, query)
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
// as chunkedQueries prepared them; row appends row i's values in their order.
func (c *stmtCache) insertRows(tx *gorm.DB, table string, cols []string, n int, row func(i int, args []any) []any) error {
	args := make([]any, 0, min(n, insertChunk)*len(cols))
	return chunked(n, func(start, rows int) error {
		stmt, err := c.in(tx, c.chunks[chunk{table, rows}])
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
