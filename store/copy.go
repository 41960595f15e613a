package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// copyBatch is how many rows Copy inserts a statement: 500 rows of at most
// 17 columns (api_keys), within both databases' limits on a statement's
// parameters (SQLite's 32,766, PostgreSQL's 65,535).
const copyBatch = 500

// copied lists the tables Copy moves, each in the order of its foreign
// keys (a group's members after the devices and groups they name): every
// table of schemaModels but the scratch one of write probes
// (TestCopyMovesEveryTable).
var copied = []copiedTable{
	tableOf[AdminUser](), tableOf[Session](), tableOf[AdminToken](), tableOf[APIKey](),
	tableOf[Device](), tableOf[Group](), tableOf[GroupMember](), tableOf[Action](),
	tableOf[Dispatch](), tableOf[Command](), tableOf[Idempotency](), tableOf[RequestLog](),
	tableOf[Counter](), tableOf[Setting](),
}

// copiedTable is a table Copy moves: its model, and copyRows of its type.
type copiedTable struct {
	model any
	copy  func(ctx context.Context, dst *gorm.DB, src *gorm.DB) (int64, error)
}

func tableOf[T any]() copiedTable { return copiedTable{model: new(T), copy: copyRows[T]} }

// schemaSettings are the settings that record a database's schema: each
// database keeps its own, and Copy moves none.
var schemaSettings = []string{schemaVersionSetting, compatibleFromSetting}

// ErrNotEmpty is Copy's refusal of a destination that already holds data.
var ErrNotEmpty = errors.New("the database to copy into already holds data: copy into a new, empty one")

// Copy copies every row of src into dst, a database that Open has just made
// (it holds no row but its schema's record, and counters at zero), in one
// transaction of dst: all of it or, on an error, none. The rows go as they
// are, ids, event ids, hashes and sealed keys with them, so that the copy
// serves the same keys, links, device tokens and history under the same
// server secret (whose fingerprint is a setting: a start with another secret
// is refused). src must be of this build's schema, so that every column is
// read. progress is told each table's name and rows as it is done. Neither
// store may be in use meanwhile: open both as the active instance.
func Copy(ctx context.Context, dst, src *Store, progress func(table string, rows int64)) error {
	if err := src.checkSchemaIsThisBuilds(ctx); err != nil {
		return err
	}
	if err := dst.CheckEmpty(ctx); err != nil {
		return err
	}
	err := dst.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("1 = 1").Delete(&Counter{}).Error; err != nil { // src's values instead
			return err
		}
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
	})
	if err != nil {
		return wrap("copy", err)
	}
	if dst.postgres { // statistics for the planner, which has none for the rows
		return wrap("copy: analyze", dst.db.WithContext(ctx).Exec("ANALYZE").Error)
	}
	return nil
}

// checkSchemaIsThisBuilds refuses a database whose recorded schema is not
// SchemaVersion: a column this build does not know would not be copied, and
// one it knows but the database lacks would be copied as a zero.
func (s *Store) checkSchemaIsThisBuilds(ctx context.Context) error {
	v, err := s.Setting(ctx, schemaVersionSetting)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if v != strconv.Itoa(SchemaVersion) {
		return fmt.Errorf("store: copy: the database to copy has schema version %q, this build's is %d: "+
			"serve it with this build once first (or copy it with the build that serves it)", v, SchemaVersion)
	}
	return nil
}

// CheckEmpty returns ErrNotEmpty if a table Copy fills has a row (but for
// the schema's record among the settings, and counters at zero).
func (s *Store) CheckEmpty(ctx context.Context) error {
	for _, c := range copied {
		q := s.db.WithContext(ctx).Model(c.model)
		switch c.model.(type) {
		case *Setting:
			q = q.Where("name NOT IN ?", schemaSettings)
		case *Counter:
			q = q.Where("value <> 0")
		}
		var found []int
		if err := q.Select("1").Limit(1).Scan(&found).Error; err != nil {
			return wrap("copy", err)
		}
		if len(found) > 0 {
			return fmt.Errorf("%w (%s has rows)", ErrNotEmpty, tableName(s.db, c.model))
		}
	}
	return nil
}

// copyRows copies the rows of T's table from src to dst, reading them one
// at a time and inserting them copyBatch at a time, and returns how many.
func copyRows[T any](ctx context.Context, dst *gorm.DB, src *gorm.DB) (int64, error) {
	stmt := &gorm.Statement{DB: dst}
	if err := stmt.Parse(new(T)); err != nil {
		return 0, err
	}
	q := src.Model(new(T))
	if _, ok := any(new(T)).(*Setting); ok {
		q = q.Where("name NOT IN ?", schemaSettings)
	}
	rows, err := q.Rows()
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var total int64
	batch := make([]map[string]any, 0, copyBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// As maps of the columns: from a struct, gorm writes a column's
		// default in place of a value that is its type's zero ('[]' for '').
		res := dst.Table(stmt.Schema.Table).Create(&batch)
		if res.Error == nil && res.RowsAffected != int64(len(batch)) {
			return fmt.Errorf("wrote %d rows of %d", res.RowsAffected, len(batch))
		}
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
				v, _ := f.ValueOf(ctx, rv)
				cols[f.DBName] = inUTC(v)
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

// inUTC is a time in UTC, as the store writes every time: SQLite keeps it
// as text with its offset, which its comparisons (an expiry, a page's place)
// take as text, so a time from a database written otherwise goes in as UTC.
func inUTC(v any) any {
	switch t := v.(type) {
	case time.Time:
		return t.UTC()
	case *time.Time:
		if t != nil {
			u := t.UTC()
			return &u
		}
	}
	return v
}

// tableName is the table of a model, as gorm names it.
func tableName(db *gorm.DB, model any) string {
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(model); err != nil {
		return fmt.Sprintf("%T", model)
	}
	return stmt.Schema.Table
}
