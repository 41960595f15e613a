package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// GroupMembers lists, ordered by id, the devices of a group whose id or name
// contains search (whatever its case; "" for all), and counts them all: a
// page of a group too large to show whole. Only their id and name are read.
func (s *Store) GroupMembers(ctx context.Context, groupID, search string, p Page) ([]Device, int64, error) {
	q := containing(s.db.WithContext(ctx).Model(&Device{}), search).
		Where("id IN (SELECT device_id FROM group_members WHERE group_id = ?)", groupID)
	var (
		ds    []Device
		total int64
	)
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, wrap("count group members", err)
	}
	err := p.apply(q).Select("id", "name").Order("id").Find(&ds).Error
	return ds, total, wrap("list group members", err)
}

// SuggestDevices returns at most limit devices whose id or name contains
// text (whatever its case), those whose id starts with it first, then by id:
// what an id being typed may be. With notInGroup set, that group's members
// are left out. Only their id and name are read.
func (s *Store) SuggestDevices(ctx context.Context, text, notInGroup string, limit int) ([]Device, error) {
	q := containing(s.db.WithContext(ctx).Model(&Device{}), text)
	if notInGroup != "" {
		q = q.Where("NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = ? AND m.device_id = devices.id)", notInGroup)
	}
	prefixFirst := clause.OrderBy{Expression: clause.Expr{
		SQL:                `CASE WHEN LOWER(id) LIKE LOWER(?) ESCAPE '\' THEN 0 ELSE 1 END, id`,
		Vars:               []any{likeEscaper.Replace(text) + "%"},
		WithoutParentheses: true,
	}}
	var ds []Device
	err := q.Select("id", "name").Order(prefixFirst).Limit(max(limit, 1)).Find(&ds).Error
	return ds, wrap("suggest devices", err)
}

// containing keeps the devices whose id or name contains text ("": all),
// whatever its case: both sides folded by the database, so that the text as
// written always finds itself (SQLite folds ASCII letters only).
func containing(q *gorm.DB, text string) *gorm.DB {
	if text == "" {
		return q
	}
	like := "%" + likeEscaper.Replace(text) + "%"
	return q.Where(`(LOWER(id) LIKE LOWER(?) ESCAPE '\' OR LOWER(name) LIKE LOWER(?) ESCAPE '\')`, like, like)
}
