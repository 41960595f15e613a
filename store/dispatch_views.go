package store

import "context"

// DispatchesWithCounts lists the dispatches that f lets through, newest
// first, with their commands counted by state.
func (s *Store) DispatchesWithCounts(ctx context.Context, f DispatchFilter, p Page) ([]Dispatch, map[string]StateCounts, int64, error) {
	ds, total, err := s.Dispatches(ctx, f, p)
	if err != nil {
		return nil, nil, 0, err
	}
	ids := make([]string, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID
	}
	counts, err := s.CommandCounts(ctx, ids)
	return ds, counts, total, err
}

// DispatchDetail returns a dispatch with its commands (ordered by device) and
// their counts by state.
func (s *Store) DispatchDetail(ctx context.Context, id string) (*Dispatch, []Command, StateCounts, error) {
	d, err := s.Dispatch(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	cmds, err := s.DispatchCommands(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	counts := StateCounts{}
	for i := range cmds {
		counts.Add(&cmds[i])
	}
	return d, cmds, counts, nil
}

// DispatchPage returns a dispatch, the page p of its commands in the given
// states (all, if none) with how many there are in those states, and the
// counts of all its commands by state: the UI's page of a fan-out to thousands
// of devices.
func (s *Store) DispatchPage(ctx context.Context, id string, states []string, p Page) (*Dispatch, []Command, int64, StateCounts, error) {
	d, err := s.Dispatch(ctx, id)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	counts, err := s.CommandCounts(ctx, []string{id})
	if err != nil {
		return nil, nil, 0, nil, err
	}
	cmds, total, err := s.DispatchCommandPage(ctx, id, states, p)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	c := counts[id]
	if c == nil {
		c = StateCounts{}
	}
	return d, cmds, total, c, nil
}

// DispatchCommandPage returns the page p of a dispatch's commands in the
// given states (all, if none), ordered by device, and how many there are in
// all. It does not tell an unknown dispatch from one without such commands.
func (s *Store) DispatchCommandPage(ctx context.Context, id string, states []string, p Page) ([]Command, int64, error) {
	q := s.db.WithContext(ctx).Model(&Command{}).Where("dispatch_id = ?", id)
	if len(states) > 0 {
		q = q.Where("state IN ?", states)
	}
	var (
		cmds  []Command
		total int64
	)
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, wrap("count dispatch commands", err)
	}
	err := p.apply(q.Omit("payload").Order("device_id")).Find(&cmds).Error // one per device: off the index, in order
	return cmds, total, wrap("list dispatch commands", err)
}
