package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// copyBatch is how many rows Copy inserts a statement: within both
// databases' limits on a statement's parameters (14 columns at most).
const copyBatch = 500

// copied lists the tables Copy moves, a group's members after the devices
// and groups they name. The scratch table of write probes is not among them.
var copied = []struct {
	model any
	copy  func(ctx context.Context, dst *gorm.DB, src *gorm.DB) (int64, error)
}{
	{&AdminUser{}, copyRows[AdminUser]},
	{&Session{}, copyRows[Session]},
	{&AdminToken{}, copyRows[AdminToken]},
	{&APIKey{}, copyRows[APIKey]},
	{&Device{}, copyRows[Device]},
	{&Group{}, copyRows[Group]},
	{&GroupMember{}, copyRows[GroupMember]},
	{&Action{}, copyRows[Action]},
	{&Dispatch{}, copyRows[Dispatch]},
	{&Command{}, copyRows[Command]},
	{&Idempotency{}, copyRows[Idempotency]},
	{&RequestLog{}, copyRows[RequestLog]},
	{&Counter{}, copyRows[Counter]},
	{&Setting{}, copyRows[Setting]},
}

// ErrNotEmpty is Copy's refusal of a destination that already holds data.
var ErrNotEmpty = errors.New("the database to copy into already holds data: copy into a new, empty one")

// Copy copies every row of src into dst, a database that Open has just made
// (it holds no row but its schema's record), in one transaction of dst: all
// of it or, on an error, none. The rows go as they are, ids, event ids,
// hashes and sealed keys with them, so that the copy serves the same keys,
// links, device tokens and history under the same server secret (whose
// fingerprint is a setting: a start with another secret is refused). Of the
// settings, dst keeps its own schema record; a counter takes src's value.
// progress is told each table's name and rows as it is done. Neither store
// may be in use meanwhile: open both as the active instance.
func Copy(ctx context.Context, dst, src *Store, progress func(table string, rows int64)) error {
	if err := dst.checkEmpty(ctx); err != nil {
		return err
	}
	return wrap("copy", dst.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, c := range copied {
			n, err := c.copy(ctx, tx, src.db.WithContext(ctx))
			if err != nil {
				return fmt.Errorf("%s: %w", tableName(tx, c.model), err)
			}
			if progress != nil {
				progress(tableName(tx, c.model), n)
			}
		}
		return nil
	}))
}

// checkEmpty refuses a database with a row in any table Copy fills, but
// for the settings that Open writes (the schema's record) and the counters
// it starts at zero.
func (s *Store) checkEmpty(ctx context.Context) error {
	for _, c := range copied {
		q := s.db.WithContext(ctx).Model(c.model)
		switch c.model.(type) {
		case *Setting:
			q = q.Where("name NOT IN ?", []string{schemaVersionSetting, compatibleFromSetting})
		case *Counter:
			q = q.Where("value <> 0")
		}
		var n int64
		if err := q.Limit(1).Count(&n).Error; err != nil {
			return wrap("copy", err)
		}
		if n > 0 {
			return fmt.Errorf("%w (%s has rows)", ErrNotEmpty, tableName(s.db, c.model))
		}
	}
	return nil
}

// copyRows copies the rows of T's table from src to dst, reading them one
// at a time and inserting them copyBatch at a time. A row whose key dst has
// already (a setting Open wrote) is kept as dst has it, but a counter,
// which takes src's value.
func copyRows[T any](ctx context.Context, dst *gorm.DB, src *gorm.DB) (int64, error) {
	stmt := &gorm.Statement{DB: dst}
	if err := stmt.Parse(new(T)); err != nil {
		return 0, err
	}
	rows, err := src.Model(new(T)).Rows()
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	onConflict := clause.OnConflict{DoNothing: true}
	if _, ok := any(new(T)).(*Counter); ok {
		onConflict = clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoUpdates: clause.AssignmentColumns([]string{"value"})}
	}
	var total int64
	batch := make([]map[string]any, 0, copyBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// As maps of the columns: from a struct, gorm writes a column's
		// default in place of a value that is its type's zero ('[]' for '').
		res := dst.Table(stmt.Schema.Table).Clauses(onConflict).Create(&batch)
		total += res.RowsAffected
		batch = batch[:0]
		return res.Error
	}
	for rows.Next() {
		var r T
		if err := src.ScanRows(rows, &r); err != nil {
			return total, err
		}
		cols := make(map[string]any, len(stmt.Schema.DBNames))
		rv := reflect.ValueOf(&r).Elem()
		for _, f := range stmt.Schema.Fields {
			if f.DBName != "" {
				cols[f.DBName], _ = f.ValueOf(ctx, rv)
			}
		}
		if batch = append(batch, cols); len(batch) == copyBatch {
			if err := flush(); err != nil {
				return total, err
			}
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
	if err := rows.Err(); err != nil {
		return total, err
	}
	return total, flush()
}

// tableName is the table of a model, as gorm names it.
func tableName(db *gorm.DB, model any) string {
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(model); err != nil {
		return fmt.Sprintf("%T", model)
	}
	return stmt.Schema.Table
}
