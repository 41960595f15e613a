package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// TestAckStatementUsesIDs: a round's acks find their commands by id, whatever
// the database believes of their states. The statistics are taken while no
// command is open; then 2,000 commands wait for screens that are offline.
// PostgreSQL, planning on the state indexes, read all of them for every
// statement of acks (15 ms each in the benchmark, with 9,000 waiting).
func TestAckStatementUsesIDs(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "plan.db")
			if name == "postgres" {
				dsn = testenv.Postgres(t)
			}
			st, err := Open(ctx, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			now := time.Now().UTC()
			for _, q := range []string{
				`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
				 INSERT INTO commands (id, dispatch_id, device_id, state, function, payload, created_at, expires_at, detail)
				 SELECT 'c' || i, 'd' || (i / 10), 'dev' || (i % 5000), 'succeeded',
				        CASE WHEN i <= 2000 THEN 'pause' ELSE 'restart' END, '{}', ?, ?, '' FROM n`,
				`ANALYZE commands`,
				`UPDATE commands SET state = 'queued' WHERE function = 'pause'`,
			} {
				var args []any
				if strings.Contains(q, "?") {
					args = []any{now, now.Add(time.Hour)}
				}
				if err := st.db.Exec(q, args...).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			const rows = 64
			args := make([]any, 0, rows*6)
			for i := 1; i <= rows; i++ {
				args = append(args, fmt.Sprint("c", i), fmt.Sprint("dev", i), StateSucceeded, now, "", now)
			}
			explain := "EXPLAIN QUERY PLAN "
			if st.postgres {
				explain = "EXPLAIN "
			}
			r, err := st.db.Raw(explain+ackSQL(rows, st.postgres), args...).Rows()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cols, _ := r.Columns()
			var plan []string
			for r.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := r.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, fmt.Sprint(vals[len(vals)-1])) // the plan's text
			}
			text := strings.Join(plan, "\n")
			byID := []string{"commands USING INDEX sqlite_autoindex_commands_1 (id=?)"}
			if st.postgres { // a lookup per row, not a walk through the whole index
				byID = []string{"Index Scan using commands_pkey on commands", `Index Cond: ((id)::text = "*VALUES*".column1)`}
			}
			for _, want := range byID {
				if !strings.Contains(text, want) {
					t.Fatalf("the acks' statement does not find its commands by id (%q):\n%s", want, text)
				}
			}
		})
	}
}
