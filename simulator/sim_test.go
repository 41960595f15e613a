package simulator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestPlayersConnectAndPublishRetainedOnline(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 20, nil)

	for _, c := range testCreds(20) {
		eventually(t, "online status of "+c.DeviceID, func() bool { return len(b.messages("devicehooks/devices/"+c.DeviceID+"/status")) > 0 })
		st := b.statuses(t, c.DeviceID)[0]
		if st["state"] != "online" {
			t.Errorf("%s: status %v, want online", c.DeviceID, st)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(st["at"])); err != nil {
			t.Errorf("%s: status at %v: %v", c.DeviceID, st["at"], err)
		}
	}
	if got := s.Stats(); got.Players != 20 || got.Connected != 20 {
		t.Errorf("Stats = %+v, want 20 players, 20 connected", got)
	}
	if n := b.clients(); n != 20 {
		t.Errorf("broker sees %d clients, want 20", n)
	}
}

func TestCommandReachesItsPlayerAndIsAckedAfterDelay(t *testing.T) {
	b := startBroker(t)
	const delay = 150 * time.Millisecond
	s, rec := startSim(t, b, 20, func(c *Config) { c.AckDelay = delay })

	sent := time.Now()
	b.publish(t, commandTopic("sim-00007"), loadURL("c1", "https://example.com/a"), false)
	acks := b.waitAcks(t, "sim-00007", 1)

	if elapsed := time.Since(sent); elapsed < delay {
		t.Errorf("ack after %v, want at least the %v delay", elapsed, delay)
	}
	if a := acks[0]; a.ID != "c1" || a.Status != StatusSucceeded || a.At.IsZero() {
		t.Errorf("ack = %+v, want c1 succeeded with a time", a)
	}
	st := s.Player("sim-00007")
	if st.LastURL != "https://example.com/a" || !slices.Equal(st.Handled, []string{"c1"}) {
		t.Errorf("player state = %+v", st)
	}
	for _, c := range testCreds(20) {
		if c.DeviceID != "sim-00007" && len(s.Player(c.DeviceID).Handled) != 0 {
			t.Errorf("%s handled a command meant for sim-00007", c.DeviceID)
		}
	}
	eventually(t, "ack event", func() bool { return slices.Equal(rec.kinds("sim-00007"), []string{KindCommand, KindAck}) })
	if got := s.Stats(); got.Commands != 1 || got.Acked != 1 || got.Failed != 0 {
		t.Errorf("Stats = %+v", got)
	}
}

func TestFailureRateOneAcksFailed(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 2, func(c *Config) { c.FailureRate = 1 })

	b.publish(t, commandTopic("sim-00001"), loadURL("c1", "https://example.com/a"), false)
	a := b.waitAcks(t, "sim-00001", 1)[0]

	if a.Status != StatusFailed || a.Detail != "simulated failure" {
		t.Errorf("ack = %+v, want failed / simulated failure", a)
	}
	if st := s.Player("sim-00001"); st.LastURL != "" {
		t.Errorf("a failed load_url was applied: %+v", st)
	}
	// The broker hands the ack on before the player has its PUBACK, which is
	// when the player counts it.
	eventually(t, "the ack counted", func() bool { return s.Stats().Acked == 1 })
	if got := s.Stats(); got.Failed != 1 || got.Acked != 1 {
		t.Errorf("Stats = %+v", got)
	}
}

func TestRepeatedIDIsDuplicateAckedAgainAppliedOnce(t *testing.T) {
	b := startBroker(t)
	s, rec := startSim(t, b, 2, nil)

	b.publish(t, commandTopic("sim-00002"), loadURL("c1", "https://example.com/first"), false)
	b.waitAcks(t, "sim-00002", 1)
	b.publish(t, commandTopic("sim-00002"), loadURL("c1", "https://example.com/second"), false)
	acks := b.waitAcks(t, "sim-00002", 2)

	for _, a := range acks {
		if a.ID != "c1" || a.Status != StatusSucceeded {
			t.Errorf("ack = %+v, want c1 succeeded", a)
		}
	}
	st := s.Player("sim-00002")
	if st.LastURL != "https://example.com/first" || !slices.Equal(st.Handled, []string{"c1"}) {
		t.Errorf("player state = %+v, want the first command applied once", st)
	}
	eventually(t, "events", func() bool {
		return slices.Equal(rec.kinds("sim-00002"), []string{KindCommand, KindAck, KindDuplicate, KindAck})
	})
	if got := s.Stats(); got.Commands != 2 || got.Duplicates != 1 || got.Acked != 2 {
		t.Errorf("Stats = %+v", got)
	}
}

func TestDuplicateOfFailedCommandIsAckedFailedAgain(t *testing.T) {
	b := startBroker(t)
	startSim(t, b, 1, func(c *Config) { c.FailureRate = 1 })

	b.publish(t, commandTopic("sim-00001"), loadURL("c1", "https://example.com/"), false)
	b.waitAcks(t, "sim-00001", 1)
	b.publish(t, commandTopic("sim-00001"), loadURL("c1", "https://example.com/"), false)
	for _, a := range b.waitAcks(t, "sim-00001", 2) {
		if a.Status != StatusFailed {
			t.Errorf("ack = %+v, want failed both times", a)
		}
	}
}

func TestExpiredCommandIsRejectedAndNotApplied(t *testing.T) {
	b := startBroker(t)
	s, rec := startSim(t, b, 1, nil)

	cmd := loadURL("c1", "https://example.com/late")
	past := time.Now().Add(-time.Minute).UTC()
	cmd.ExpiresAt = &past
	b.publish(t, commandTopic("sim-00001"), cmd, false)
	a := b.waitAcks(t, "sim-00001", 1)[0]

	if a.ID != "c1" || a.Status != StatusRejected || a.Detail != "expired" {
		t.Errorf("ack = %+v, want rejected / expired", a)
	}
	if st := s.Player("sim-00001"); st.LastURL != "" || len(st.Handled) != 0 {
		t.Errorf("expired command applied: %+v", st)
	}
	eventually(t, "events", func() bool { return slices.Equal(rec.kinds("sim-00001"), []string{KindExpired, KindAck}) })
	if got := s.Stats(); got.Expired != 1 {
		t.Errorf("Stats = %+v", got)
	}
}

func TestCommandWithFutureExpiryIsApplied(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 1, nil)

	cmd := loadURL("c1", "https://example.com/ok")
	future := time.Now().Add(time.Minute).UTC()
	cmd.ExpiresAt = &future
	b.publish(t, commandTopic("sim-00001"), cmd, false)
	if a := b.waitAcks(t, "sim-00001", 1)[0]; a.Status != StatusSucceeded {
		t.Errorf("ack = %+v", a)
	}
	if st := s.Player("sim-00001"); st.LastURL != "https://example.com/ok" {
		t.Errorf("player state = %+v", st)
	}
}

func TestStateCommandsUpdateLocalState(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 1, nil)

	b.publish(t, commandTopic("sim-00001"), Command{ID: "e1", Function: "set_emergency",
		Params: map[string]any{"enabled": true, "message": "Fire drill"}}, false)
	b.publish(t, commandTopic("sim-00001"), Command{ID: "p1", Function: "pause_loop"}, false)
	b.publish(t, commandTopic("sim-00001"), Command{ID: "r1", Function: "restart"}, false)
	b.publish(t, commandTopic("sim-00001"), Command{ID: "bad", Function: "load_url", Params: map[string]any{}}, false)
	acks := b.waitAcks(t, "sim-00001", 4)

	status := map[string]string{}
	for _, a := range acks {
		status[a.ID] = a.Status
	}
	want := map[string]string{"e1": StatusSucceeded, "p1": StatusSucceeded, "r1": StatusSucceeded, "bad": StatusFailed}
	for id, st := range want {
		if status[id] != st {
			t.Errorf("ack of %s = %q, want %q", id, status[id], st)
		}
	}
	st := s.Player("sim-00001")
	if !st.Emergency.Enabled || st.Emergency.Message != "Fire drill" || !st.LoopPaused {
		t.Errorf("player state = %+v", st)
	}
}

func TestDesiredOlderVersionIsIgnored(t *testing.T) {
	b := startBroker(t)
	s, rec := startSim(t, b, 1, nil)
	topic := desiredTopic("sim-00001")

	v2 := Desired{Version: 2, LoopPaused: true, UpdatedAt: time.Now().UTC()}
	v2.Emergency = Emergency{Enabled: true, Message: "Evacuate"}
	b.publish(t, topic, v2, true)
	eventually(t, "desired v2", func() bool { d := s.Player("sim-00001").Desired; return d != nil && d.Version == 2 })

	b.publish(t, topic, Desired{Version: 1}, true)
	b.publish(t, topic, Desired{Version: 2}, true)
	eventually(t, "two ignored desired states", func() bool {
		return slices.Equal(rec.kinds("sim-00001"), []string{KindDesired, KindDesiredIgnored, KindDesiredIgnored})
	})
	st := s.Player("sim-00001")
	if st.Desired.Version != 2 || !st.Emergency.Enabled || st.Emergency.Message != "Evacuate" || !st.LoopPaused {
		t.Errorf("player state = %+v, want v2 still applied", st)
	}

	b.publish(t, topic, Desired{Version: 3}, true)
	eventually(t, "desired v3", func() bool { return s.Player("sim-00001").Desired.Version == 3 })
	if st := s.Player("sim-00001"); st.Emergency.Enabled || st.LoopPaused {
		t.Errorf("v3 not applied: %+v", st)
	}
	if got := s.Stats(); got.Desired != 2 {
		t.Errorf("Stats.Desired = %d, want 2", got.Desired)
	}
}

func TestRetainedDesiredIsAppliedAtConnect(t *testing.T) {
	b := startBroker(t)
	d := Desired{Version: 5, UpdatedAt: time.Now().UTC()}
	d.Emergency = Emergency{Enabled: true, Message: "Closed today", URL: "https://example.com/closed"}
	b.publish(t, desiredTopic("sim-00002"), d, true)

	s, _ := startSim(t, b, 3, nil)

	eventually(t, "retained desired applied", func() bool { got := s.Player("sim-00002").Desired; return got != nil && got.Version == 5 })
	if st := s.Player("sim-00002"); st.Emergency != d.Emergency {
		t.Errorf("emergency = %+v, want %+v", st.Emergency, d.Emergency)
	}
	if st := s.Player("sim-00001"); st.Desired != nil {
		t.Errorf("sim-00001 applied another device's desired state: %+v", st.Desired)
	}
}

func TestDropMakesBrokerPublishWill(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 3, nil)

	s.Drop("sim-00002")

	eventually(t, "the last will", func() bool { return len(b.messages("devicehooks/devices/sim-00002/status")) >= 2 })
	will := b.messages("devicehooks/devices/sim-00002/status")[1]
	if string(will.payload) != `{"state":"offline"}` || !will.retain {
		t.Errorf("will = %s (retain %v), want retained {\"state\":\"offline\"}", will.payload, will.retain)
	}
	eventually(t, "broker to count 2 clients", func() bool { return b.clients() == 2 })
	if got := s.Stats(); got.Connected != 2 {
		t.Errorf("Stats.Connected = %d, want 2", got.Connected)
	}
	// Without the Drop guard paho reconnects at once; give it the chance to.
	never(t, "the dropped player to come back", 500*time.Millisecond, func() bool {
		return len(b.messages("devicehooks/devices/sim-00002/status")) > 2 || b.clients() > 2
	})
}

func TestPlayersOverWebSocket(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 2, func(c *Config) { c.BrokerURL = b.wsURL })

	b.publish(t, commandTopic("sim-00001"), loadURL("c1", "https://example.com/ws"), false)
	if a := b.waitAcks(t, "sim-00001", 1)[0]; a.Status != StatusSucceeded {
		t.Errorf("ack = %+v", a)
	}

	s.Drop("sim-00002")
	eventually(t, "the last will over WebSocket", func() bool { return len(b.messages("devicehooks/devices/sim-00002/status")) >= 2 })
	if will := b.messages("devicehooks/devices/sim-00002/status")[1]; string(will.payload) != `{"state":"offline"}` {
		t.Errorf("will = %s", will.payload)
	}
}

func TestCloseAnnouncesOfflineWithoutWill(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 3, nil)

	s.Close()
	s.Close() // idempotent

	// The broker counts a client gone only after deciding about its will.
	eventually(t, "all clients gone", func() bool { return b.clients() == 0 })
	for _, c := range testCreds(3) {
		sts := b.statuses(t, c.DeviceID)
		if len(sts) != 2 {
			t.Fatalf("%s: statuses %v, want online then offline", c.DeviceID, sts)
		}
		if sts[1]["state"] != "offline" || sts[1]["at"] == nil {
			t.Errorf("%s: last status %v, want offline with a time (not the will)", c.DeviceID, sts[1])
		}
	}
}

func TestReconnectRepublishesOnlineAndResubscribes(t *testing.T) {
	b := startBroker(t)
	s, rec := startSim(t, b, 2, nil)

	cl, ok := b.srv.Clients.Get("player-sim-00001")
	if !ok {
		t.Fatal("broker does not know player-sim-00001")
	}
	// Cut the connection under the broker, like a network failure. (cl.Stop would
	// not do: mochi may then take the disconnect for a clean one and skip the will.)
	_ = cl.Net.Conn.Close()

	topic := "devicehooks/devices/sim-00001/status"
	t.Cleanup(func() { // what happened, if it went wrong
		if t.Failed() {
			for _, m := range b.messages(topic) {
				t.Logf("status %s", m.payload)
			}
			rec.mu.Lock()
			for _, ev := range rec.events {
				t.Logf("event %+v", ev)
			}
			rec.mu.Unlock()
		}
	})
	eventually(t, "will then online again", func() bool { return len(b.messages(topic)) >= 3 })
	sts := b.statuses(t, "sim-00001")
	if len(sts) != 3 || sts[1]["state"] != "offline" || sts[1]["at"] != nil || sts[2]["state"] != "online" {
		t.Errorf("statuses = %v, want online, the will, online", sts)
	}
	b.publish(t, commandTopic("sim-00001"), loadURL("c1", "https://example.com/"), false)
	if a := b.waitAcks(t, "sim-00001", 1)[0]; a.Status != StatusSucceeded {
		t.Errorf("ack after reconnect = %+v", a)
	}
	if !s.Player("sim-00001").Connected {
		t.Error("player not connected after reconnect")
	}
	// The connected event comes from paho's connect handler, which may
	// finish after the command's round trip.
	var lost, connected int
	count := func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		lost, connected = 0, 0
		for _, ev := range rec.events {
			if ev.DeviceID == "sim-00001" && ev.Kind == KindDisconnected {
				lost++
			}
			if ev.DeviceID == "sim-00001" && ev.Kind == KindConnected {
				connected++
			}
		}
		return connected >= 2
	}
	eventually(t, "the reconnect's connected event", count)
	if lost != 1 || connected != 2 {
		t.Errorf("events: %d disconnected, %d connected; want 1 and 2", lost, connected)
	}
}

func TestNoAckReceivesWithoutAcking(t *testing.T) {
	b := startBroker(t)
	s, _ := startSim(t, b, 1, func(c *Config) { c.NoAck = true })

	b.publish(t, commandTopic("sim-00001"), loadURL("c1", "https://example.com/"), false)
	eventually(t, "command handled", func() bool { return len(s.Player("sim-00001").Handled) == 1 })
	never(t, "an ack", 300*time.Millisecond, func() bool {
		return len(b.messages("devicehooks/devices/sim-00001/acks")) > 0 || s.Stats().Acked > 0
	})
}

func TestStartReportsRefusal(t *testing.T) {
	b := startBroker(t)
	creds := append(testCreds(3), Credentials{DeviceID: refusedUser, Token: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	s, err := Start(ctx, Config{BrokerURL: b.url, Players: creds})
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded with a refused player")
	}
	if !containsAll(err, refusedUser, "refused", "not Authorized") || !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("error %q does not name the player and the reason", err)
	}
	eventually(t, "Start to close the players it opened", func() bool { return b.clients() == 0 })
}

func TestStartReportsUnreachableBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := Start(ctx, Config{BrokerURL: "tcp://" + freeAddr(t), Players: testCreds(2)})
	if err == nil || !containsAll(err, "cannot reach the broker", "connection refused") {
		t.Errorf("Start against a closed port: %v", err)
	}
}

func TestStartHonoursContext(t *testing.T) {
	b := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, Config{BrokerURL: b.url, Players: testCreds(5)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestStartValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no broker":    {Players: testCreds(1)},
		"no players":   {BrokerURL: "tcp://127.0.0.1:1"},
		"bad scheme":   {BrokerURL: "http://127.0.0.1:1", Players: testCreds(1)},
		"bad rate":     {BrokerURL: "tcp://127.0.0.1:1", Players: testCreds(1), FailureRate: 1.5},
		"twice listed": {BrokerURL: "tcp://127.0.0.1:1", Players: append(testCreds(1), testCreds(1)...)},
	} {
		if _, err := Start(context.Background(), cfg); err == nil {
			t.Errorf("%s: Start accepted %+v", name, cfg)
		}
	}
}

func TestSimulatedFailureIsDeterministicAndProportional(t *testing.T) {
	failed := 0
	for i := range 10000 {
		id := fmt.Sprintf("cmd-%d", i)
		a := simulatedFailure(42, "sim-00001", id, 0.3)
		if a != simulatedFailure(42, "sim-00001", id, 0.3) {
			t.Fatal("same inputs, different outcome")
		}
		if a {
			failed++
		}
	}
	if failed < 2800 || failed > 3200 {
		t.Errorf("%d of 10000 failed at rate 0.3", failed)
	}
}

func TestHandledSetIsBounded(t *testing.T) {
	var h handledSet
	for i := range maxHandled + 10 {
		h.add(fmt.Sprint(i), outcome{status: StatusSucceeded})
	}
	ids := h.list()
	if len(ids) != maxHandled || ids[0] != "10" || ids[len(ids)-1] != fmt.Sprint(maxHandled+9) {
		t.Errorf("list = [%s ... %s] (%d), want the last %d oldest first", ids[0], ids[len(ids)-1], len(ids), maxHandled)
	}
	if _, ok := h.get("9"); ok {
		t.Error("evicted id still remembered")
	}
	if len(h.outcomes) != maxHandled {
		t.Errorf("%d outcomes kept, want %d", len(h.outcomes), maxHandled)
	}
}
