package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// fanoutFigures is one "all devices" trigger.
type fanoutFigures struct {
	Players     int     `json:"players"`
	Targets     int     `json:"targets"`
	AnsweredMs  float64 `json:"answered_ms"`   // request start -> 200
	FirstMs     float64 `json:"first_ms"`      // request start -> first player has it
	AllMs       float64 `json:"all_ms"`        // request start -> last player has it
	AckedMs     float64 `json:"all_acked_ms"`  // request start -> server shows every ack recorded
	Received    int     `json:"received"`      // distinct players that got it
	Duplicates  int     `json:"duplicates"`    // repeats
	Succeeded   int     `json:"succeeded"`     // acks recorded when polling stopped
	ServerCPUMs float64 `json:"server_cpu_ms"` // server CPU from the request to the last ack
}

// smallFanout triggers "all devices" with the first, small set of players.
func (v *variant) smallFanout(ctx context.Context) error {
	return v.fanout(ctx, v.o.fanSmall)
}

// largeFanout triggers "all devices" with every player connected.
func (v *variant) largeFanout(ctx context.Context) error {
	return v.fanout(ctx, v.o.fanLarge)
}

// fanout triggers the "all devices" action o.fanReps times with n players
// connected and n devices registered.
func (v *variant) fanout(ctx context.Context, n int) error {
	for rep := 0; rep < v.o.fanReps; rep++ {
		v.rc.reset()
		var profiled chan struct{}
		if n == v.o.fanLarge && v.o.profileDir != "" {
			// Every repetition: the first, right after the players connected,
			// costs more than the next ones.
			name := v.name + "-fanout-cpu"
			if rep > 0 {
				name = fmt.Sprintf("%s-%d", name, rep+1)
			}
			profiled = make(chan struct{})
			go func() {
				defer close(profiled)
				v.res.Profiles = append(v.res.Profiles, v.saveProfile(ctx, "profile", name, 3))
			}()
			if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
		stopSelf := v.profileSelf("bench-fanout-cpu", profiled != nil)
		f, err := v.fanoutOnce(ctx, n)
		stopSelf()
		if profiled != nil {
			<-profiled
		}
		if err != nil {
			return err
		}
		v.res.Fanout = append(v.res.Fanout, f)
		v.logf("all devices to %d players: answered %.1f ms, all received %.1f ms, all acks recorded %.1f ms",
			n, f.AnsweredMs, f.AllMs, f.AckedMs)
		if f.Received != n {
			v.problem("all devices to %d players: only %d received it", n, f.Received)
		}
		if f.Duplicates > 0 {
			v.problem("all devices to %d players: %d duplicates", n, f.Duplicates)
		}
		if f.Succeeded != n {
			v.problem("all devices to %d players: only %d acks recorded", n, f.Succeeded)
		}
	}
	return nil
}

func (v *variant) fanoutOnce(ctx context.Context, n int) (fanoutFigures, error) {
	f := fanoutFigures{Players: n}
	before, err := v.srv.stat()
	if err != nil {
		return f, err
	}
	k := &conn{call: v.all}
	defer k.close()
	start := time.Now()
	status, id, err := k.do()
	if err != nil {
		return f, fmt.Errorf("all devices trigger: %w", err)
	}
	f.AnsweredMs = ms(time.Since(start))
	if status != http.StatusOK || id == "" {
		return f, fmt.Errorf("all devices trigger: status %d: %s", status, k.body)
	}
	f.Targets = int(jsonNumber(k.body, `"targets":`))
	v.rc.waitAll(ctx, []string{id}, n, v.o.fanTimeout)
	got, _ := v.rc.get(id)
	f.Received, f.Duplicates = got.n, got.dups
	if got.n > 0 {
		f.FirstMs, f.AllMs = ms(got.first.Sub(start)), ms(got.last.Sub(start))
	}
	deadline := time.Now().Add(v.o.fanTimeout)
	for {
		counts, err := v.adm.dispatchCounts(ctx, id)
		if err != nil {
			return f, err
		}
		f.Succeeded = counts["succeeded"]
		if f.Succeeded >= n {
			f.AckedMs = ms(time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return f, err
		}
	}
	if after, err := v.srv.stat(); err == nil {
		f.ServerCPUMs = ms(after.CPU - before.CPU)
	}
	// Let the last acks' side effects (presence, published marks) settle.
	return f, sleepCtx(ctx, 500*time.Millisecond)
}
