package store

import "context"

// DispatchesWithCounts lists dispatches, newest first, with their commands
// counted by state.
func (s *Store) DispatchesWithCounts(ctx context.Context, p Page) ([]Dispatch, map[string]StateCounts, int64, error) {
	ds, total, err := s.Dispatches(ctx, p)
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
	for _, c := range cmds {
		counts[c.State]++
	}
	return d, cmds, counts, nil
}

// DispatchPage returns a dispatch, the page p of its commands (ordered by
// device) and the counts of all its commands by state: the UI's page of a
// fan-out to thousands of devices.
func (s *Store) DispatchPage(ctx context.Context, id string, p Page) (*Dispatch, []Command, StateCounts, error) {
	d, err := s.Dispatch(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	counts, err := s.CommandCounts(ctx, []string{id})
	if err != nil {
		return nil, nil, nil, err
	}
	var cmds []Command
	q := s.db.WithContext(ctx).Omit("payload").Where("dispatch_id = ?", id).Order("device_id")
	if err := p.apply(q).Find(&cmds).Error; err != nil {
		return nil, nil, nil, wrap("list dispatch commands", err)
	}
	c := counts[id]
	if c == nil {
		c = StateCounts{}
	}
	return d, cmds, c, nil
}
