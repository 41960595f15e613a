package main

import (
	"context"
	"log/slog"
	"time"

	"devicehooks/internal/wallclock"
	"devicehooks/store"
)

// holdFromRecorded has clock go on from the latest time the database
// recorded, which a step back of the system's clock before this start may
// have put ahead of it (operations.md, "The clock").
func holdFromRecorded(ctx context.Context, st *store.Store, clock *wallclock.Clock, log *slog.Logger) error {
	latest, err := st.LatestRecorded(ctx)
	if err != nil {
		return err
	}
	switch ahead := clock.NotBefore(latest); {
	case ahead > wallclock.MaxHold:
		log.Error("the system clock is far behind the latest time recorded in the database: times are recorded as it gives them, "+
			"and commands queued before may go out after newer ones; check the clock (NTP)", "behind", ahead.Round(time.Second), "latest_recorded", latest)
	case ahead > time.Second:
		log.Warn("the system clock is behind the latest time recorded in the database (it stepped back?): recorded times hold at that time until the clock passes it",
			"behind", ahead.Round(time.Millisecond), "latest_recorded", latest)
	}
	return nil
}

// watchClock says in the log when the system's clock steps back while the
// service runs, and when it has caught up with the time held (or was too far
// behind to be held), looking every interval. holding is true when a hold is
// under way already, as one that holdFromRecorded began and logged: only its
// end is to say.
func watchClock(ctx context.Context, clock *wallclock.Clock, log *slog.Logger, interval time.Duration, holding bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	released := clock.Released()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if r := clock.Released(); r != released {
			released, holding = r, false
			log.Error("the system clock stepped back further than recorded times are held through: they follow it back, "+
				"and commands queued before may go out after newer ones; check the clock (NTP)", "max_hold", wallclock.MaxHold)
		}
		switch held := clock.Held(); {
		case held > time.Second && !holding:
			holding = true
			log.Warn("the system clock stepped back: recorded times hold until it passes the last one given", "behind", held.Round(time.Millisecond))
		case held <= 0 && holding:
			holding = false
			log.Info("the system clock caught up with the recorded times held: they follow it again")
		}
	}
}
