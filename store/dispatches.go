package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// NewDispatch is one accepted trigger to write: the dispatch, one command per
// target device, the devices' desired-state change if the function has one, and
// the idempotency record if the caller sent a key.
type NewDispatch struct {
	Dispatch    Dispatch
	Commands    []Command
	Desired     *DesiredChange
	Idempotency *Idempotency
	// IdempotencySince: a record of the same key older than this has expired
	// and is replaced rather than counted as taken.
	IdempotencySince time.Time
}

// WriteDispatches is WriteBatch with triggers only (the tests' shape of it). A trigger whose idempotency key is already taken is left out and
// reported in dup; either every other trigger of the batch is written, or (on
// error) none is.
func (s *Store) WriteDispatches(ctx context.Context, batch []*NewDispatch) (dup []bool, err error) {
	res, err := s.WriteBatch(ctx, &Batch{Dispatches: batch})
	return res.Dup, err
}

// writeDispatches writes the batch's triggers and returns the ids of the
// open commands that their desired changes superseded (supersede): earlier
// rounds' ones, and those of earlier triggers in this batch, which are
// written expired (the batch's own values are left as they are: a failed
// transaction may be tried again).
func (s *Store) writeDispatches(tx *gorm.DB, batch []*NewDispatch, dup []bool) (superseded []string, err error) {
	var desired []string // every device whose desired state the batch changes
	changes := 0         // and how many changes
	for _, nd := range batch {
		if nd.Desired != nil && len(nd.Commands) > 0 {
			changes++
			for _, c := range nd.Commands {
				desired = append(desired, c.DeviceID)
			}
		}
	}
	if err := lockDevices(tx, desired); err != nil {
		return nil, err
	}
	// The batch's versions are taken at once, before any other lock: taking the
	// counter's row lock between the idempotency inserts would let two
	// instances' batches wait on each other on PostgreSQL.
	version, err := takeVersions(tx, changes)
	if err != nil {
		return nil, err
	}
	earlier := map[string][]*Command{} // device -> this batch's desired-changing commands so far
	replaced := map[string]string{}    // command id -> the dispatch that superseded it in this batch
	for i, nd := range batch {
		if nd.Idempotency != nil {
			res := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "api_key_id"}, {Name: "idem_key"}},
				DoUpdates: clause.AssignmentColumns([]string{"dispatch_id", "response", "fingerprint", "created_at"}),
				Where: clause.Where{Exprs: []clause.Expression{
					clause.Lt{Column: clause.Column{Table: "idempotencies", Name: "created_at"}, Value: nd.IdempotencySince},
				}},
			}).Create(nd.Idempotency)
			if res.Error != nil {
				return nil, res.Error
			}
			if res.RowsAffected == 0 {
				dup[i] = true
				continue
			}
		}
		if nd.Desired != nil && len(nd.Commands) > 0 {
			ids := make([]string, len(nd.Commands))
			for j, c := range nd.Commands {
				ids[j] = c.DeviceID
			}
			version++
			if err := applyDesired(tx, ids, nd.Desired, version, nd.Dispatch.CreatedAt); err != nil {
				return nil, err
			}
			done, err := supersede(tx, ids, nd.Desired, nd.Dispatch.ID)
			if err != nil {
				return nil, err
			}
			superseded = append(superseded, done...)
			for j := range nd.Commands {
				c := &nd.Commands[j]
				for _, old := range earlier[c.DeviceID] {
					if _, gone := replaced[old.ID]; !gone && slices.Contains(nd.Desired.Supersedes, old.Function) {
						replaced[old.ID] = nd.Dispatch.ID
						superseded = append(superseded, old.ID)
					}
				}
				earlier[c.DeviceID] = append(earlier[c.DeviceID], c)
			}
		}
	}
	// The rows to insert: every dispatch of the batch but the duplicates.
	var ds []*Dispatch
	var cmds []*Command
	for i, nd := range batch {
		if !dup[i] {
			ds = append(ds, &nd.Dispatch)
			for j := range nd.Commands {
				c := &nd.Commands[j]
				if by, ok := replaced[c.ID]; ok {
					cp := *c
					cp.State, cp.Detail = StateExpired, supersededBy+by
					c = &cp
				}
				cmds = append(cmds, c)
			}
		}
	}
	if err := s.insertDispatches(tx, ds); err != nil {
		return nil, err
	}
	return superseded, s.insertCommands(tx, cmds)
}

// The trigger path inserts its rows with its own prepared statements: gorm's
// Create encodes every row by reflection and, inside a transaction, prepares its
// statement again on every use; a fan-out to 10,000 devices spent a third of its
// write there. The column lists must be the models' columns: if a model changes
// and they no longer match, gorm's Create is used instead.
var (
	dispatchColumns = []string{"id", "action_id", "action_name", "event_id", "function", "api_key_id",
		"api_key_prefix", "method", "source", "targets", "created_at"}
	commandColumns = []string{"id", "dispatch_id", "device_id", "state", "function", "payload",
		"created_at", "expires_at", "published_at", "acked_at", "detail"}
	columnsChecked sync.Map // model type name -> bool: the list matches the model
)

func (s *Store) insertDispatches(tx *gorm.DB, ds []*Dispatch) error {
	if len(ds) == 0 {
		return nil
	}
	if !columnsMatch(tx, &Dispatch{}, dispatchColumns) {
		return tx.CreateInBatches(ds, 200).Error
	}
	return s.stmts.insertRows(tx, "dispatches", dispatchColumns, len(ds), func(i int, args []any) []any {
		d := ds[i]
		return append(args, d.ID, d.ActionID, d.ActionName, d.EventID, d.Function, d.APIKeyID,
			d.APIKeyPrefix, d.Method, d.Source, d.Targets, d.CreatedAt)
	})
}

func (s *Store) insertCommands(tx *gorm.DB, cmds []*Command) error {
	if len(cmds) == 0 {
		return nil
	}
	if !columnsMatch(tx, &Command{}, commandColumns) {
		return tx.CreateInBatches(cmds, 400).Error
	}
	return s.stmts.insertRows(tx, "commands", commandColumns, len(cmds), func(i int, args []any) []any {
		c := cmds[i]
		return append(args, c.ID, c.DispatchID, c.DeviceID, c.State, c.Function, c.Payload,
			c.CreatedAt, c.ExpiresAt, timeOrNil(c.PublishedAt), timeOrNil(c.AckedAt), c.Detail)
	})
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// columnsMatch reports whether cols are exactly the model's columns.
func columnsMatch(tx *gorm.DB, model any, cols []string) bool {
	key := fmt.Sprintf("%T", model)
	if ok, done := columnsChecked.Load(key); done {
		return ok.(bool)
	}
	stmt := &gorm.Statement{DB: tx}
	ok := stmt.Parse(model) == nil && len(stmt.Schema.DBNames) == len(cols)
	if ok {
		for _, c := range cols {
			if stmt.Schema.LookUpField(c) == nil {
				ok = false
			}
		}
	}
	columnsChecked.Store(key, ok)
	return ok
}

// insertSQL is INSERT INTO table (cols) VALUES (?,...),... for rows rows.
func insertSQL(table string, cols []string, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

// Batch is one round of the trigger path's writes: new dispatches, commands the
// broker took, device acks, and the request log's records. WriteBatch commits
// it in one transaction, so the four streams share one commit and never wait on
// each other's locks.
type Batch struct {
	Dispatches []*NewDispatch
	Published  []Published
	Acks       []Ack
	Requests   []RequestLog // webhook calls for the request log
}

// Published says the broker took these commands at At.
type Published struct {
	IDs []string
	At  time.Time
}

// BatchResult tells, per dispatch of a Batch, whether its idempotency key was
// already taken (it was not written), and per ack whether it settled a command.
type BatchResult struct {
	Dup     []bool
	Applied []bool
	// Requests is why the request log's records were not written, with the
	// rest of the batch written all the same.
	Requests error
	// Superseded lists the open commands the batch's desired changes made
	// expired (supersede): final, without an ack to wait for.
	Superseded []string
}

// WriteBatch writes a Batch in one transaction: the dispatches, then the acks, then
// the published marks, then the request log's records. A command acked in the
// same batch is not marked separately: its ack records when it was published. On
// error nothing is written; records the database refuses are left out alone
// (BatchResult.Requests), so that a bad one cannot fail the triggers beside it.
func (s *Store) WriteBatch(ctx context.Context, b *Batch) (BatchResult, error) {
	res := BatchResult{Dup: make([]bool, len(b.Dispatches)), Applied: make([]bool, len(b.Acks))}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if res.Superseded, err = s.writeDispatches(tx, b.Dispatches, res.Dup); err != nil {
			return err
		}
		var publishedAt map[string]time.Time
		if len(b.Acks) > 0 && len(b.Published) > 0 {
			publishedAt = make(map[string]time.Time)
			for _, p := range b.Published {
				for _, id := range p.IDs {
					publishedAt[id] = p.At
				}
			}
		}
		if err := s.applyAcks(tx, b.Acks, res.Applied, publishedAt); err != nil {
			return err
		}
		var settled map[string]bool
		for i, a := range b.Acks {
			if res.Applied[i] && publishedAt != nil {
				if settled == nil {
					settled = make(map[string]bool)
				}
				settled[a.CommandID] = true
			}
		}
		for _, p := range b.Published {
			ids := p.IDs
			if settled != nil {
				ids = make([]string, 0, len(p.IDs))
				for _, id := range p.IDs {
					if !settled[id] {
						ids = append(ids, id)
					}
				}
			}
			if err := markPublished(tx, ids, p.At); err != nil {
				return err
			}
		}
		if len(b.Requests) > 0 {
			if err := tx.SavePoint("requests").Error; err != nil {
				return err
			}
			if err := s.insertRequestLogs(tx, b.Requests); err != nil {
				if rerr := tx.RollbackTo("requests").Error; rerr != nil {
					return rerr
				}
				res.Requests = wrap("insert request logs", err)
			}
		}
		return nil
	})
	return res, wrap("write batch", err)
}

// IdempotentResponse returns the stored response for a key used by an API key since
// the given time, or ErrNotFound.
func (s *Store) IdempotentResponse(ctx context.Context, apiKeyID, key string, since time.Time) (*Idempotency, error) {
	var rec Idempotency
	err := s.db.WithContext(ctx).
		Where("api_key_id = ? AND idem_key = ? AND created_at >= ?", apiKeyID, key, since.UTC()).
		Take(&rec).Error
	return &rec, wrap("get idempotency record", err)
}

// PurgeIdempotency deletes idempotency records older than before, so an expired key
// can be used again; a few hundred at a time.
func (s *Store) PurgeIdempotency(ctx context.Context, before time.Time) (int64, error) {
	return s.inChunks(ctx, "purge idempotency records",
		`DELETE FROM idempotencies WHERE created_at < ? AND (api_key_id, idem_key) IN
		   (SELECT api_key_id, idem_key FROM idempotencies WHERE created_at < ? LIMIT ?)`, before, before)
}

// PurgeDispatches deletes the dispatches made before before, with their
// commands, once every command is settled (a command lives 7 days at most), a
// few hundred rows at a time, and returns how many dispatches went. A command
// goes once its expiry is before before too, so a dispatch is kept at least
// until then.
func (s *Store) PurgeDispatches(ctx context.Context, before time.Time) (int64, error) {
	_, err := s.inChunks(ctx, "purge commands",
		`DELETE FROM commands WHERE id IN (SELECT id FROM commands
		   WHERE `+finalStates+` AND expires_at < ? LIMIT ?)`, before)
	if err != nil {
		return 0, err
	}
	return s.inChunks(ctx, "purge dispatches",
		`DELETE FROM dispatches WHERE id IN (SELECT id FROM dispatches d
		   WHERE d.created_at < ? AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.dispatch_id = d.id) LIMIT ?)`, before)
}

// DispatchFilter narrows a list of dispatches; empty fields match everything.
type DispatchFilter struct {
	ActionID string
	APIKeyID string
	Failed   bool      // only those with a command that failed, was rejected or expired (not superseded)
	Since    time.Time // made at or after
	Until    time.Time // made before
}

// dispatchIndexes serve the dispatches' filters by action and by key in
// their order, newest first, as requestLogIndexes do the request log's; they
// replace the single-column indexes of earlier builds, which no query used.
var dispatchIndexes = []string{
	`CREATE INDEX IF NOT EXISTS idx_dispatches_action_at ON dispatches (action_id, created_at, id)`,
	`CREATE INDEX IF NOT EXISTS idx_dispatches_key_at ON dispatches (api_key_id, created_at, id)`,
	`DROP INDEX IF EXISTS idx_dispatches_action_id`,
	`DROP INDEX IF EXISTS idx_dispatches_api_key_id`,
}

// Dispatches lists the dispatches that f lets through, newest first, and
// counts them all.
func (s *Store) Dispatches(ctx context.Context, f DispatchFilter, p Page) ([]Dispatch, int64, error) {
	q := s.db.WithContext(ctx).Model(&Dispatch{})
	q = equalTo(q, "action_id", f.ActionID)
	q = equalTo(q, "api_key_id", f.APIKeyID)
	q = within(q, "created_at", f.Since, f.Until)
	if f.Failed {
		q = withFailedCommand(q)
	}
	return listPage[Dispatch](q, p, "created_at DESC, id DESC", "dispatches")
}

// Dispatch returns one dispatch.
func (s *Store) Dispatch(ctx context.Context, id string) (*Dispatch, error) {
	var d Dispatch
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	return &d, wrap("get dispatch", err)
}

// DispatchCommands returns a dispatch's commands ordered by device.
func (s *Store) DispatchCommands(ctx context.Context, dispatchID string) ([]Command, error) {
	var cs []Command
	err := s.db.WithContext(ctx).Omit("payload").Where("dispatch_id = ?", dispatchID).Order("device_id").Find(&cs).Error
	return cs, wrap("list dispatch commands", err)
}

// StateCounts maps a command state to a number of commands, and Superseded to
// how many of the expired ones a later dispatch replaced.
type StateCounts map[string]int

// Superseded is the key of StateCounts that counts, of the expired commands,
// those a later dispatch's desired change replaced before their ack: final by
// design, not a failure (needsAttention leaves them out too).
const Superseded = "superseded"

// Add counts a command.
func (c StateCounts) Add(cmd *Command) {
	c[cmd.State]++
	if cmd.State == StateExpired && strings.HasPrefix(cmd.Detail, supersededBy) {
		c[Superseded]++
	}
}

// CommandCounts counts the commands of each dispatch by state.
func (s *Store) CommandCounts(ctx context.Context, dispatchIDs []string) (map[string]StateCounts, error) {
	out := make(map[string]StateCounts, len(dispatchIDs))
	if len(dispatchIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		DispatchID string
		State      string
		N          int
		Superseded int
	}
	err := s.db.WithContext(ctx).Model(&Command{}).
		Select("dispatch_id, state, COUNT(*) AS n, SUM(CASE WHEN state = ? AND detail LIKE ? THEN 1 ELSE 0 END) AS superseded",
			StateExpired, supersededBy+"%").
		Where("dispatch_id IN ?", dispatchIDs).
		Group("dispatch_id, state").Scan(&rows).Error
	if err != nil {
		return nil, wrap("count commands", err)
	}
	for _, r := range rows {
		if out[r.DispatchID] == nil {
			out[r.DispatchID] = StateCounts{}
		}
		out[r.DispatchID][r.State] = r.N
		if r.Superseded > 0 {
			out[r.DispatchID][Superseded] = r.Superseded
		}
	}
	return out, nil
}

// PendingAfter is where a read of pending commands goes on from: after the
// command of this creation time and id, in the order they are read. Its zero
// value is the start.
type PendingAfter struct {
	CreatedAt time.Time
	ID        string
}

// AfterCommand is the place after c, to read the page that follows it.
func AfterCommand(c *Command) PendingAfter { return PendingAfter{CreatedAt: c.CreatedAt, ID: c.ID} }

// MaxPendingDevices is how many devices one read of PendingCommands may name.
const MaxPendingDevices = 1000

// PendingCommands returns a page of the unexpired commands of the given
// devices (MaxPendingDevices at most) in the given open states (queued, and
// published-but-unacked when a device reconnects): at most limit, the oldest
// after `after`. Read page after page, each device's commands come in their
// order.
func (s *Store) PendingCommands(ctx context.Context, deviceIDs, states []string, now time.Time, after PendingAfter, limit int) ([]Command, error) {
	if len(deviceIDs) > MaxPendingDevices {
		return nil, fmt.Errorf("store: list pending commands: %d devices, more than %d", len(deviceIDs), MaxPendingDevices)
	}
	q := s.db.WithContext(ctx).
		Where("device_id IN ? AND "+openStates+" AND state IN ? AND expires_at > ?", deviceIDs, states, now.UTC())
	if after.ID != "" {
		at := after.CreatedAt.UTC() // as it was written: SQLite compares the text
		q = q.Where("(created_at > ? OR (created_at = ? AND id > ?))", at, at, after.ID)
	}
	var cs []Command
	err := q.Order("created_at, id").Limit(limit).Find(&cs).Error
	return cs, wrap("list pending commands", err)
}

// MarkPublished moves queued commands to published. A command that an ack already
// settled keeps its final state, and gets the publish time if the ack, which
// overtook the mark, recorded a later one (its own).
func (s *Store) MarkPublished(ctx context.Context, ids []string, at time.Time) error {
	return wrap("mark published", markPublished(s.db.WithContext(ctx), ids, at))
}

// publishedAtOf is a publish time for a command: a mark's time (the expression
// at), which is the first of its group's (markResolution in actions), made no
// earlier than the command's own creation. Either is at or before the true
// publish, so a session that began after it still counts as having had the
// command.
func publishedAtOf(at string) string {
	return `CASE WHEN created_at > ` + at + ` THEN created_at ELSE ` + at + ` END`
}

// markPublishedSQL marks an IN list of commands.
var markPublishedSQL = `UPDATE commands SET state = CASE WHEN state = ? THEN ? ELSE state END, published_at = ` + publishedAtOf("?") + `
 WHERE id IN ? AND (state = ? OR published_at > ?)`

// markPublished marks commands in IN lists of 1,000. On SQLite one prepared
// statement per command costs the same (BenchmarkMarkPublished); on PostgreSQL it
// would be a round trip per command, ten times slower for a fan-out.
func markPublished(db *gorm.DB, ids []string, at time.Time) error {
	at = at.UTC()
	for _, chunk := range chunks(ids, 1000) {
		err := db.Exec(markPublishedSQL, StateQueued, StatePublished, at, at, chunk, StateQueued, at).Error
		if err != nil {
			return err
		}
	}
	return nil
}

// Ack is a device's answer to a command.
type Ack struct {
	CommandID string
	DeviceID  string
	State     string // succeeded, failed or rejected
	Detail    string
	At        time.Time
}

// ApplyAcks settles commands from device acks in one transaction. An ack counts only
// for a command of the acking device that it reached before its expiry and that
// is not settled yet, or was expired or superseded meanwhile (ackSQL); applied[i]
// tells whether acks[i] changed anything.
func (s *Store) ApplyAcks(ctx context.Context, acks []Ack) (applied []bool, err error) {
	applied = make([]bool, len(acks))
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return s.applyAcks(tx, acks, applied, nil)
	})
	return applied, wrap("apply acks", err)
}

// ackSQL settles up to rows commands, one per ack, in one statement: one round
// trip for a round's acks (PostgreSQL took one per ack, half of a writer's round).
// Each ack is a row of the VALUES list (the command's id, the device's, the
// state, the ack's time, its detail, the publish time: ackRows), and the
// statement returns the ids of the commands it settled; a command must not be
// in the list twice.
//
// An ack can overtake the batched published mark, so it also records when the
// command was published (if nothing did yet). Whether an ack counts hangs on when
// it came, not on when the sweeper runs or when the ack is written: one that came
// after the command's expiry changes nothing, also before the sweeper has marked
// it expired; one that came before counts, also after the sweeper has marked it
// expired meanwhile (an ack written late: the database refused writes for a
// while). That holds for a superseded command's ack too; a deleted device's
// command stays as it is.
func ackSQL(rows int, postgres bool) string {
	var b strings.Builder
	b.WriteString(`UPDATE commands SET state = v.column3, acked_at = v.column4, detail = v.column5, published_at = COALESCE(published_at, ` +
		publishedAtOf("v.column6") + `) FROM (VALUES `)
	for i := range rows {
		switch {
		case i > 0:
			b.WriteString(", (?, ?, ?, ?, ?, ?)")
		case postgres: // the list's types, from its first row
			b.WriteString("(?, ?, ?, ?::timestamptz, ?, ?::timestamptz)")
		default:
			b.WriteString("(?, ?, ?, ?, ?, ?)")
		}
	}
	// The states are tested in a CASE, which no index serves, so that the
	// commands are found by their ids. Tested as a plain condition, PostgreSQL
	// may read every open command through the indexes on state for each
	// statement instead: its statistics rarely see the open commands, which
	// come and go between two analyzes, and take them for none. With 9,000
	// screens offline holding their commands, that was 15 ms a statement, and
	// most of PostgreSQL's time; by the ids, 0.3 ms (TestAckStatementUsesIDs).
	b.WriteString(`) AS v
 WHERE id = v.column1 AND device_id = v.column2 AND expires_at > v.column4 AND CASE WHEN ` + openStates + ` THEN TRUE
   WHEN state = 'expired' THEN detail LIKE '` + supersededBy + `%' OR detail IN ('` + DetailExpiredUndelivered + `', '` + DetailExpiredUnacked + `')
   ELSE FALSE END
 RETURNING id`)
	return b.String()
}

// applyAcks settles acks in statements of many (ackSQL). publishedAt gives the
// publish time of commands marked in the same batch. An ack for a command
// already acked in the list goes in a later statement, which finds the command
// as the earlier ack left it: as if each ack had its own statement, in order.
func (s *Store) applyAcks(tx *gorm.DB, acks []Ack, applied []bool, publishedAt map[string]time.Time) error {
	todo := make([]int, len(acks)) // indexes into acks, in order
	for i := range todo {
		todo[i] = i
	}
	for len(todo) > 0 {
		var now, later []int
		seen := make(map[string]bool, len(todo))
		for _, i := range todo {
			if seen[acks[i].CommandID] {
				later = append(later, i)
				continue
			}
			seen[acks[i].CommandID] = true
			now = append(now, i)
		}
		settled, err := s.ackRows(tx, acks, now, publishedAt)
		if err != nil {
			return err
		}
		for _, i := range now {
			applied[i] = settled[acks[i].CommandID]
		}
		todo = later
	}
	return nil
}

// ackRows runs ackSQL for the acks at the indexes given, each of another command,
// and returns the commands they settled.
func (s *Store) ackRows(tx *gorm.DB, acks []Ack, which []int, publishedAt map[string]time.Time) (map[string]bool, error) {
	settled := make(map[string]bool, len(which))
	err := chunked(len(which), func(start, rows int) error {
		args := make([]any, 0, rows*6)
		for _, i := range which[start : start+rows] {
			a := acks[i]
			pub := a.At
			if at, ok := publishedAt[a.CommandID]; ok {
				pub = at
			}
			// UTC, as every time written: SQLite compares them as text (markPublishedSQL).
			args = append(args, a.CommandID, a.DeviceID, a.State, a.At.UTC(), a.Detail, pub.UTC())
		}
		return s.stmts.query(tx, stmtKey{"acks", rows}, args, func(r *sql.Rows) error {
			var id string
			if err := r.Scan(&id); err != nil {
				return err
			}
			settled[id] = true
			return nil
		})
	})
	return settled, err
}

// placeholders turns ? into $1, $2... for PostgreSQL (raw statements only; none
// of ours has a ? inside a literal).
func placeholders(postgres bool, query string) string {
	if !postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The details of a command that expired: before it reached its player, or
// after, before the player's ack.
const (
	DetailExpiredUndelivered = "expired before it was delivered"
	DetailExpiredUnacked     = "expired before an ack"
)

// ExpireCommands marks unsettled commands whose time has passed as expired and
// returns how many it changed; a few hundred at a time, so that a fan-out to
// thousands of offline players expiring at once does not hold the writer.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) (int64, error) {
	const pick = `id IN (SELECT id FROM commands WHERE state IN (?, ?) AND expires_at <= ? LIMIT ?)`
	// The detail tells a command the player never had (its device offline, or
	// the broker unreachable) from one it had and did not ack.
	const set = `UPDATE commands SET state = ?, detail = CASE WHEN state = ? THEN ? ELSE ? END WHERE `
	args := []any{StateExpired, StateQueued, DetailExpiredUndelivered, DetailExpiredUnacked}
	if !s.postgres {
		// One writer at a time: nothing changes a picked row meanwhile. (Repeating
		// the condition would make SQLite walk every overdue command's index
		// entry for each chunk instead of looking up the picked ids.)
		return s.inChunks(ctx, "expire commands", set+pick,
			append(args, StateQueued, StatePublished, now)...)
	}
	return s.inChunks(ctx, "expire commands", set+`state IN (?, ?) AND expires_at <= ? AND `+pick,
		append(args, StateQueued, StatePublished, now, StateQueued, StatePublished, now)...)
}

// CountCommandsByState counts the commands in these states (none: every
// command) by state, for dashboards and metrics.
func (s *Store) CountCommandsByState(ctx context.Context, states ...string) (StateCounts, error) {
	var rows []struct {
		State string
		N     int
	}
	q := s.db.WithContext(ctx).Model(&Command{})
	if len(states) > 0 {
		q = q.Where("state IN ?", states)
	}
	err := q.Select("state, COUNT(*) AS n").Group("state").Scan(&rows).Error
	out := StateCounts{}
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, wrap("count commands by state", err)
}
