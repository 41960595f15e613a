package actions_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// TestAcksWaitForTheFanOut: while Hold says a fan-out is going out, the tracker
// keeps its acks, and writes them once it has gone out, or after two seconds at
// most.
func TestAcksWaitForTheFanOut(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	now := time.Now().UTC()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "disp", ActionID: "a", ActionName: "a", EventID: "e", Function: "restart", Method: "POST", Targets: 2, CreatedAt: now}}
	for _, id := range []string{"c1", "c2"} {
		nd.Commands = append(nd.Commands, store.Command{ID: id, DispatchID: "disp", DeviceID: "d1", State: store.StateQueued,
			Function: "restart", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	tr := actions.NewTracker(st, actions.Topics{Prefix: "dh"}, actions.NewPresence(st, log, true), actions.NewAckWaiters(), log)
	w := &countingWriter{AckWriter: st}
	tr.Writer = w
	fanOut := make(chan struct{})
	var hold <-chan struct{} = fanOut
	tr.Hold = func() <-chan struct{} { return hold }
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { tr.Run(runCtx); close(ran) }()

	state := func(id string) string {
		cs, err := st.DispatchCommands(ctx, "disp")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.ID == id {
				return c.State
			}
		}
		return ""
	}
	ack := func(id string) {
		tr.HandleMessage("dh/devices/d1/acks", []byte(`{"id":"`+id+`","status":"succeeded","at":"`+now.Format(time.RFC3339)+`"}`), false)
	}

	ack("c1")
	time.Sleep(300 * time.Millisecond)
	if s := state("c1"); s != store.StateQueued {
		t.Fatalf("an ack was written while a fan-out was going out: %s", s)
	}
	close(fanOut)
	testenv.WaitFor(t, 2*time.Second, "the held ack written once the fan-out went out", func() bool { return state("c1") == store.StateSucceeded })

	// A fan-out that takes too long holds the acks for two seconds at most.
	slow := make(chan struct{})
	hold = slow
	start := time.Now()
	ack("c2")
	testenv.WaitFor(t, 5*time.Second, "an ack held at most MaxHold", func() bool { return state("c2") == store.StateSucceeded })
	if held := time.Since(start); held < time.Second {
		t.Fatalf("the ack was written after %s, while the fan-out was still going out", held)
	}

	// Held acks keep being taken: the broker's client goroutines that hand them
	// over (HandleMessage) never wait for the hold, however many come. Had they
	// waited, the queue would have made room only when the hold ended and its
	// acks were written: so all must be handed over before any write.
	writes := w.n.Load()
	handed := make(chan struct{})
	go func() {
		defer close(handed)
		for range 20000 { // more than the tracker's queue holds
			ack("unknown")
		}
	}()
	select {
	case <-handed:
	case <-time.After(time.Minute):
		t.Fatal("handing acks over never ended")
	}
	if w.n.Load() != writes {
		t.Fatal("handing acks over waited for the held ones to be written")
	}
	close(slow)
	stop()
	<-ran
}

// Acks that the database refuses for longer than their retries (a full
// disk) are held and written once it takes writes again, not dropped: their
// commands would otherwise stay "published" and expire, though the screens ran
// them.
func TestAcksRefusedForLongAreWrittenLater(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	now := time.Now().UTC()
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "disp", ActionID: "a", ActionName: "a", EventID: "e", Function: "restart", Method: "POST", Targets: 1, CreatedAt: now}}
	nd.Commands = []store.Command{{ID: "c1", DispatchID: "disp", DeviceID: "d1", State: store.StatePublished,
		Function: "restart", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	tr := actions.NewTracker(st, actions.Topics{Prefix: "dh"}, actions.NewPresence(st, log, true), actions.NewAckWaiters(), log)
	w := &refusingWriter{AckWriter: st}
	w.refusing.Store(true)
	tr.Writer = w
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go tr.Run(runCtx)

	tr.HandleMessage("dh/devices/d1/acks", []byte(`{"id":"c1","status":"succeeded","at":"`+now.Format(time.RFC3339Nano)+`"}`), false)
	testenv.WaitFor(t, 15*time.Second, "the retries given up (about 6 s) and a retry of the held ack", func() bool { return w.refused.Load() >= 10 })
	// While acks are held, a new one is tried once and held with them, not
	// given 6 s of retries of its own (the tracker's queue would fill behind
	// it, and the broker's reads with it).
	before := w.refused.Load()
	for i := range 5 {
		tr.HandleMessage("dh/devices/d1/acks", []byte(`{"id":"other-`+strconv.Itoa(i)+`","status":"succeeded"}`), false)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // a retry of the held ones too
	if tries := w.refused.Load() - before; tries > 5+2 {
		t.Fatalf("%d tries for 5 acks and a retry while acks were held, want one each", tries)
	}
	if n := tr.HeldAcks(); n != 6 {
		t.Fatalf("HeldAcks = %d while the database refuses 6 acks", n)
	}
	w.refusing.Store(false)
	testenv.WaitFor(t, 10*time.Second, "the held ack written once the database takes writes", func() bool {
		cs, err := st.DispatchCommands(ctx, "disp")
		return err == nil && cs[0].State == store.StateSucceeded
	})
	testenv.WaitFor(t, time.Second, "no acks held once written", func() bool { return tr.HeldAcks() == 0 })
	if n := tr.DroppedAcks(); n != 0 {
		t.Fatalf("DroppedAcks = %d, none were", n)
	}
}

// An ack taken as the tracker stops gets its retries, as any other: a
// database busy for a moment must not lose it.
func TestAcksTakenAtShutdownAreRetried(t *testing.T) {
	ctx := context.Background()
	st, _ := openStore(t)
	log := slog.New(slog.DiscardHandler)
	now := time.Now().UTC()
	// Run stops with the ack queued: its select takes either the ack or the
	// stop first, at random; ten runs take the stop first but once in 1,024.
	for i := range 10 {
		id := "c" + strconv.Itoa(i)
		nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "d" + id, ActionID: "a", ActionName: "a", EventID: "e", Function: "restart", Method: "POST", Targets: 1, CreatedAt: now}}
		nd.Commands = []store.Command{{ID: id, DispatchID: "d" + id, DeviceID: "d1", State: store.StatePublished,
			Function: "restart", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}}
		if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
			t.Fatal(err)
		}
		tr := actions.NewTracker(st, actions.Topics{Prefix: "dh"}, actions.NewPresence(st, log, true), actions.NewAckWaiters(), log)
		w := &refusingWriter{AckWriter: st, refuseFirst: 2}
		tr.Writer = w
		tr.HandleMessage("dh/devices/d1/acks", []byte(`{"id":"`+id+`","status":"succeeded"}`), false)
		stopped, stop := context.WithCancel(ctx)
		stop()
		tr.Run(stopped)
		if cs, err := st.DispatchCommands(ctx, "d"+id); err != nil || cs[0].State != store.StateSucceeded {
			t.Fatalf("run %d: the ack was not written after %d refusals: %v, %v", i, w.refused.Load(), cs, err)
		}
	}
}

// refusingWriter refuses every write of acks while refusing is set, as a
// database with a full disk does, and the first refuseFirst writes, as a busy
// one does.
type refusingWriter struct {
	actions.AckWriter
	refusing    atomic.Bool
	refused     atomic.Int64
	refuseFirst int64
}

func (w *refusingWriter) ApplyAcks(ctx context.Context, acks []store.Ack) ([]bool, error) {
	if w.refusing.Load() || w.refused.Load() < w.refuseFirst {
		w.refused.Add(1)
		return nil, errors.New("database or disk is full")
	}
	return w.AckWriter.ApplyAcks(ctx, acks)
}

// countingWriter counts the writes of acks.
type countingWriter struct {
	actions.AckWriter
	n atomic.Int64
}

func (w *countingWriter) ApplyAcks(ctx context.Context, acks []store.Ack) ([]bool, error) {
	w.n.Add(1)
	return w.AckWriter.ApplyAcks(ctx, acks)
}

// An ack's detail is shown on one line: control characters, C1's included
// (U+0085 is a line break), become spaces.
func TestAckDetailHasNoControlCharacters(t *testing.T) {
	a, err := actions.ParseAck([]byte(`{"id":"c1","status":"failed","detail":"disk\nfull\u0085see\u0007log\u009b"}`))
	if err != nil || a.Detail != "disk full see log " {
		t.Fatalf("detail %q (%v)", a.Detail, err)
	}
}

// A player's "at" is a hint: an ack or status whose "at" is absent, null or in
// another form is taken (without it), not ignored, so that such a player's
// commands still settle.
func TestMessagesTakeAnyFormOfAt(t *testing.T) {
	for _, at := range []string{``, `,"at":null`, `,"at":1700000000`, `,"at":""`, `,"at":"2026-05-04 09:30:00"`, `,"at":{}`} {
		a, err := actions.ParseAck([]byte(`{"id":"c1","status":"succeeded"` + at + `}`))
		if err != nil || a.ID != "c1" || !a.At.IsZero() {
			t.Errorf("ack with %q: %+v %v", at, a, err)
		}
		s, err := actions.ParseStatus([]byte(`{"state":"online"` + at + `}`))
		if err != nil || s.State != "online" || s.At != nil {
			t.Errorf("status with %q: %+v %v", at, s, err)
		}
	}
	want := time.Date(2026, 5, 4, 7, 30, 0, 0, time.UTC)
	a, err := actions.ParseAck([]byte(`{"id":"c1","status":"failed","at":"2026-05-04T09:30:00+02:00"}`))
	if err != nil || !a.At.Equal(want) {
		t.Errorf("ack with an RFC 3339 time: %+v %v", a, err)
	}
	s, err := actions.ParseStatus([]byte(`{"state":"offline","at":"2026-05-04T07:30:00Z"}`))
	if err != nil || s.At == nil || !s.At.Equal(want) {
		t.Errorf("status with an RFC 3339 time: %+v %v", s, err)
	}
}

// An ack's detail is for people: one that is not a string is kept as its JSON,
// and the ack counts, so that the command is not sent again for a mistyped
// detail.
func TestAckDetailOfAnyTypeIsKept(t *testing.T) {
	for detail, want := range map[string]string{
		``:                            "",
		`,"detail":null`:              "",
		`,"detail":"disk full"`:       "disk full",
		`,"detail":{"a": 1, "b":[2]}`: `{"a":1,"b":[2]}`,
		`,"detail":404`:               "404",
		`,"detail":false`:             "false",
		`,"detail":"line\nbreak"`:     "line break",
	} {
		a, err := actions.ParseAck([]byte(`{"id":"c1","status":"failed"` + detail + `}`))
		if err != nil || a.ID != "c1" || a.Detail != want {
			t.Errorf("ack with %q: detail %q, err %v; want %q", detail, a.Detail, err, want)
		}
	}
}

// An ack or status that is JSON but not an object says so, rather than that
// it is not valid JSON, which would send a player's developer looking for a
// syntax error; the server's log says it, still once per device.
func TestMessagesThatAreNotObjectsSaySo(t *testing.T) {
	for payload, want := range map[string]string{
		`[1,2]`:    "ack is not a JSON object",
		`"x"`:      "ack is not a JSON object",
		`3`:        "ack is not a JSON object",
		` null`:    "ack is not a JSON object",
		"\ttrue\n": "ack is not a JSON object",
		`not json`: "ack is not valid JSON: ",
		`[1,2`:     "ack is not valid JSON: ",
		`{"id":`:   "ack is not valid JSON: ",
	} {
		_, err := actions.ParseAck([]byte(payload))
		if err == nil || !strings.HasPrefix(err.Error(), "bad_request: "+want) {
			t.Errorf("ack %q: %v; want %q", payload, err, want)
		}
		_, err = actions.ParseStatus([]byte(payload))
		if want := strings.Replace(want, "ack", "status", 1); err == nil || !strings.HasPrefix(err.Error(), "bad_request: "+want) {
			t.Errorf("status %q: %v; want %q", payload, err, want)
		}
	}

	// A field of the wrong type is named as the contract names it, not as
	// Go's decoder does ("Go struct field .AckMessage.id of type string").
	if _, err := actions.ParseAck([]byte(`{"id":123,"status":"succeeded"}`)); err == nil || err.Error() != `bad_request: ack field "id" must be a string, not a JSON number` {
		t.Errorf("an ack whose id is a number: %v", err)
	}
	if _, err := actions.ParseStatus([]byte(`{"state":true}`)); err == nil || err.Error() != `bad_request: status field "state" must be a string, not a JSON bool` {
		t.Errorf("a status whose state is a bool: %v", err)
	}

	st, _ := openStore(t)
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tr := actions.NewTracker(st, actions.Topics{Prefix: "dh"}, actions.NewPresence(st, log, true), actions.NewAckWaiters(), log)
	for range 3 {
		tr.HandleMessage("dh/devices/d1/acks", []byte(`[1,2]`), false)
	}
	if got := logs.String(); strings.Count(got, `msg="ignored ack"`) != 1 || !strings.Contains(got, `device=d1 err="bad_request: ack is not a JSON object"`) {
		t.Fatalf("log:\n%s", got)
	}
}

// An unreadable ack is logged, an empty one too, but a player sending them in
// a loop gets one line per 10 s (the next line says how many were left out:
// logevery).
func TestIgnoredAcksAreLoggedWithoutFlooding(t *testing.T) {
	st, _ := openStore(t)
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	tr := actions.NewTracker(st, actions.Topics{Prefix: "dh"}, actions.NewPresence(st, log, true), actions.NewAckWaiters(), log)
	long := strings.Repeat("x", 65)
	for _, payload := range []string{``, `not json`, `{"id":"` + long + `","status":"succeeded"}`} {
		tr.HandleMessage("dh/devices/d1/acks", []byte(payload), false)
	}
	tr.HandleMessage("dh/devices/d2/acks", []byte(`{"id":"`+long+`","status":"succeeded"}`), false)
	tr.HandleMessage("dh/devices/d2/status", nil, false) // clears a retained status: not an error
	got := logs.String()
	if n := strings.Count(got, `msg="ignored ack"`); n != 2 || !strings.Contains(got, "device=d1 err=\"bad_request: ack is empty\"") ||
		!strings.Contains(got, "device=d2 err=\"bad_request: ack id is no command's: it must be at most 64 characters\"") || strings.Contains(got, "ignored status") {
		t.Fatalf("log:\n%s", got)
	}
}
