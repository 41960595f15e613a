package store

import (
	"context"

	"gorm.io/gorm"

	"devicehooks/internal/wallclock"
)

// CreateGroup inserts a group with its members; an unknown device is ErrNotFound,
// a taken name ErrConflict.
func (s *Store) CreateGroup(ctx context.Context, g *Group) error {
	return wrap("create group", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(g).Error; err != nil {
			return err
		}
		return setMembers(tx, g.ID, g.DeviceIDs)
	}))
}

// UpdateGroup renames a group and replaces its members. If check is not nil,
// it is first called with the group as it is while the update holds its row
// (its members included, ordered): an error from check is returned as it is,
// with nothing changed. Only the members that change are written: a group of
// 9,000 with one member changed writes one row, not 18,000.
func (s *Store) UpdateGroup(ctx context.Context, g *Group, check func(current *Group) error) error {
	var checkErr error
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The row first, held until the end: two updates at once go one
		// after the other, each from the members the other left.
		var cur Group
		if err := forUpdate(tx).Where("id = ?", g.ID).Take(&cur).Error; err != nil {
			return err
		}
		err := tx.Model(&GroupMember{}).Where("group_id = ?", g.ID).Order(inByteOrder(tx, "device_id")).Pluck("device_id", &cur.DeviceIDs).Error
		if err != nil {
			return err
		}
		if check != nil {
			if checkErr = check(&cur); checkErr != nil {
				return checkErr
			}
		}
		if err := renameGroup(tx, g.ID, g.Name); err != nil {
			return err
		}
		return changeMembers(tx, g.ID, cur.DeviceIDs, g.DeviceIDs)
	})
	if checkErr != nil {
		return checkErr // not wrap's: its reading of a database's error must not recast the caller's
	}
	return wrap("update group", err)
}

// changeMembers makes a group's members from those it has (cur) those it
// is to have (want), taking out and putting in only the ones that differ.
func changeMembers(tx *gorm.DB, groupID string, cur, want []string) error {
	keep := make(map[string]bool, len(want))
	for _, id := range want {
		keep[id] = true
	}
	had := make(map[string]bool, len(cur))
	var out []string
	for _, id := range cur {
		had[id] = true
		if !keep[id] {
			out = append(out, id)
		}
	}
	var in []string
	for _, id := range want {
		if !had[id] {
			had[id] = true // once, if want names it twice
			in = append(in, id)
		}
	}
	for _, chunk := range chunks(out, 1000) {
		if err := tx.Where("group_id = ? AND device_id IN ?", groupID, chunk).Delete(&GroupMember{}).Error; err != nil {
			return err
		}
	}
	return setMembers(tx, groupID, in)
}

// RenameGroup renames a group and keeps its members.
func (s *Store) RenameGroup(ctx context.Context, id, name string) error {
	return wrap("rename group", renameGroup(s.db.WithContext(ctx), id, name))
}

func renameGroup(tx *gorm.DB, id, name string) error {
	res := tx.Model(&Group{}).Where("id = ?", id).
		Updates(map[string]any{"name": name, "updated_at": wallclock.Now()})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

func setMembers(tx *gorm.DB, groupID string, deviceIDs []string) error {
	if len(deviceIDs) == 0 {
		return nil
	}
	// On PostgreSQL the devices are held (KEY SHARE) until the end: one
	// deleted between the count and the insert would break the foreign key,
	// an error that is no "device not found".
	if err := lockRows(tx, &Device{}, deviceIDs, "KEY SHARE"); err != nil {
		return err
	}
	var found int64
	for _, chunk := range chunks(deviceIDs, 1000) {
		var n int64
		if err := tx.Model(&Device{}).Where("id IN ?", chunk).Count(&n).Error; err != nil {
			return err
		}
		found += n
	}
	if found != int64(len(deviceIDs)) {
		return ErrNotFound
	}
	ms := make([]GroupMember, len(deviceIDs))
	for i, id := range deviceIDs {
		ms[i] = GroupMember{GroupID: groupID, DeviceID: id}
	}
	return tx.CreateInBatches(ms, 500).Error
}

// Groups lists groups ordered by name, with their members.
func (s *Store) Groups(ctx context.Context, p Page) ([]Group, int64, error) {
	gs, total, err := listPage[Group](s.db.WithContext(ctx).Model(&Group{}), p, "name", "groups")
	if err != nil {
		return nil, 0, err
	}
	if len(gs) == 0 {
		return gs, total, nil
	}
	ids := make([]string, len(gs))
	byID := make(map[string]*Group, len(gs))
	for i := range gs {
		ids[i] = gs[i].ID
		byID[gs[i].ID] = &gs[i]
		gs[i].DeviceIDs = []string{}
	}
	var ms []GroupMember
	if err := s.db.WithContext(ctx).Where("group_id IN ?", ids).Order(inByteOrder(s.db, "device_id")).Find(&ms).Error; err != nil {
		return nil, 0, wrap("list group members", err)
	}
	for _, m := range ms {
		byID[m.GroupID].DeviceIDs = append(byID[m.GroupID].DeviceIDs, m.DeviceID)
	}
	return gs, total, nil
}

// GroupSizes lists groups by name as Groups does, with how many members each
// has in Members and without their ids: for a picker or a list that shows
// how many, which a group of thousands would otherwise fill with its ids.
func (s *Store) GroupSizes(ctx context.Context, p Page) ([]Group, error) {
	var gs []Group
	if err := p.apply(s.db.WithContext(ctx).Model(&Group{})).Order("name").Find(&gs).Error; err != nil {
		return nil, wrap("list groups", err)
	}
	return gs, s.countMembers(ctx, gs)
}

// GroupSizesByID is GroupSizes for the groups with these ids that exist.
func (s *Store) GroupSizesByID(ctx context.Context, ids []string) ([]Group, error) {
	gs, err := findByIDs[Group](ctx, s.db, ids, "list groups")
	if err != nil {
		return nil, err
	}
	return gs, s.countMembers(ctx, gs)
}

// countMembers sets the groups' Members.
func (s *Store) countMembers(ctx context.Context, gs []Group) error {
	byID := make(map[string]*Group, len(gs))
	ids := make([]string, len(gs))
	for i := range gs {
		byID[gs[i].ID], ids[i] = &gs[i], gs[i].ID
	}
	for _, chunk := range chunks(ids, 1000) {
		var rows []struct {
			GroupID string
			N       int
		}
		err := s.db.WithContext(ctx).Model(&GroupMember{}).Select("group_id, COUNT(*) AS n").
			Where("group_id IN ?", chunk).Group("group_id").Scan(&rows).Error
		if err != nil {
			return wrap("count group members", err)
		}
		for _, r := range rows {
			byID[r.GroupID].Members = r.N
		}
	}
	return nil
}

// Group returns a group with its members.
func (s *Store) Group(ctx context.Context, id string) (*Group, error) {
	var g Group
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&g).Error; err != nil {
		return nil, wrap("get group", err)
	}
	ids, err := s.GroupDeviceIDs(ctx, id)
	g.DeviceIDs = ids
	return &g, err
}

// GroupDeviceIDs returns the ids of a group's members, ordered.
func (s *Store) GroupDeviceIDs(ctx context.Context, groupID string) ([]string, error) {
	ids := []string{}
	err := s.db.WithContext(ctx).Model(&GroupMember{}).Where("group_id = ?", groupID).
		Order(inByteOrder(s.db, "device_id")).Pluck("device_id", &ids).Error
	return ids, wrap("list group members", err)
}

// inByteOrder is an ORDER BY term that orders a text column in byte order,
// as Go sorts strings (the API answers a group's new members so): with
// PostgreSQL's collation, "Dev_1", "b.1" and "dev-1" come in its locale's
// order. SQLite's is byte order already.
func inByteOrder(db *gorm.DB, column string) string {
	if db.Dialector.Name() == "postgres" {
		return column + ` COLLATE "C"`
	}
	return column
}

// DeleteGroup removes a group; a group that an action targets is ErrConflict.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return wrap("delete group", s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The group's row first, so that an action being saved to target it
		// (targetExists) is either seen below or refused.
		if err := lockRows(tx, &Group{}, []string{id}, "UPDATE"); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&Action{}).Where("target_type = ? AND target_id = ?", TargetGroup, id).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		if err := tx.Where("group_id = ?", id).Delete(&GroupMember{}).Error; err != nil {
			return err
		}
		res := tx.Where("id = ?", id).Delete(&Group{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	}))
}

// DeviceGroups lists the groups a device is in, by name (without their
// members).
func (s *Store) DeviceGroups(ctx context.Context, deviceID string) ([]Group, error) {
	var gs []Group
	err := s.db.WithContext(ctx).Model(&Group{}).
		Joins("JOIN group_members ON group_members.group_id = groups.id").
		Where("group_members.device_id = ?", deviceID).Order("groups.name").Find(&gs).Error
	return gs, wrap("device groups", err)
}
