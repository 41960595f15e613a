package actions_test

// Fuzz targets for what devices and callers send us: the ack and status
// messages of the player contract (CONTRACT §3), the tracker that consumes them,
// and the validation of sensor data and action parameters.
//
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzParseAck$' -fuzztime 60s ./actions
//
// or every target of the repository with scripts/fuzz.sh. The seed corpora live
// in testdata/fuzz/<FuzzName>/ and run with every plain `go test`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"devicehooks/actions"
	"devicehooks/store"
)

// wantCode fails t unless err is an *actions.Error with code.
func wantCode(t *testing.T, err error, code actions.Code) *actions.Error {
	t.Helper()
	var e *actions.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *actions.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("error code %q, want %q (%v)", e.Code, code, err)
	}
	if e.Detail == "" {
		t.Fatalf("error %v has no detail", err)
	}
	return e
}

var ackSeeds = []string{
	`{"id":"cmd-1","status":"succeeded","at":"2026-01-02T03:04:05Z"}`,
	`{"id":"cmd-1","status":"failed","detail":"no network","at":"2026-01-02T03:04:05Z"}`,
	`{"id":"cmd-1","status":"rejected","detail":"unknown function"}`,
	`{"id":"","status":"succeeded"}`,
	`{"id":"cmd-1","status":"SUCCEEDED"}`,
	`{"id":"cmd-1","status":"queued"}`,
	`{"id":"cmd-1","status":"succeeded","at":"not a time"}`,
	`{"id":1,"status":"succeeded"}`,
	`{"id":null,"status":null}`,
	`{"id":"` + strings.Repeat("x", 65) + `","status":"failed"}`,
	`{"id":"cmd-1","status":"failed","detail":"` + strings.Repeat("é", 300) + `"}`,
	`{"id":"cmd-1","status":"failed","detail":{"code":"` + strings.Repeat("\xff", 300) + `"}}`,
	`{"id":"cmd-1","id":"cmd-2","status":"succeeded"}`,
	`{"id":"\u0000","status":"succeeded"}`,
	`{"id":"\ud800","status":"succeeded"}`,
	`[]`, `null`, `""`, `{`, ``, `{"id":"a","status":"succeeded"} trailing`,
}

// FuzzParseAck: any payload on an acks topic is parsed without panicking; an
// accepted ack has a command id of 1 to 64 characters, a status from the contract and
// a detail of at most 500 bytes that is valid UTF-8 (it is stored in a text
// column, which PostgreSQL refuses to hold invalid UTF-8 in).
func FuzzParseAck(f *testing.F) {
	for _, s := range ackSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		a, err := actions.ParseAck(payload)
		if err != nil {
			wantCode(t, err, actions.CodeBadRequest)
			return
		}
		if a.ID == "" || utf8.RuneCountInString(a.ID) > 64 {
			t.Fatalf("accepted ack id %q (%d characters)", a.ID, utf8.RuneCountInString(a.ID))
		}
		switch a.Status {
		case store.StateSucceeded, store.StateFailed, store.StateRejected:
		default:
			t.Fatalf("accepted ack status %q", a.Status)
		}
		if len(a.Detail) > 500 {
			t.Fatalf("accepted ack detail of %d bytes", len(a.Detail))
		}
		if strings.ContainsFunc(a.Detail, unicode.IsControl) {
			t.Fatalf("accepted ack detail with a control character: %q", a.Detail)
		}
		if !utf8.ValidString(a.Detail) {
			t.Fatalf("accepted ack detail is not valid UTF-8 (cut inside a character?): %q", a.Detail[max(0, len(a.Detail)-8):])
		}
		// Parsing is a function of the payload.
		b, err := actions.ParseAck(payload)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("second parse differs: %+v %v, first %+v", b, err, a)
		}
	})
}

var statusSeeds = []string{
	`{"state":"online","at":"2026-01-02T03:04:05Z"}`,
	`{"state":"offline"}`,
	`{"state":"offline","at":null}`,
	`{"state":"Online"}`,
	`{"state":"online","at":"yesterday"}`,
	`{"state":"online","at":"0001-01-01T00:00:00Z"}`,
	`{"state":"online","at":"9999-12-31T23:59:59.999999999+14:00"}`,
	`{"state":1}`,
	`{"state":"online","state":"offline"}`,
	`{}`, `null`, `[]`, `"online"`, ``, `{"state":"online"`,
}

// FuzzParseStatus: any payload on a status topic is parsed without panicking;
// an accepted status is online or offline.
func FuzzParseStatus(f *testing.F) {
	for _, s := range statusSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, err := actions.ParseStatus(payload)
		if err != nil {
			wantCode(t, err, actions.CodeBadRequest)
			return
		}
		if s.State != "online" && s.State != "offline" {
			t.Fatalf("accepted status state %q", s.State)
		}
	})
}

// fuzzPrefix is the topic prefix of the tracker under fuzz.
const fuzzPrefix = "devicehooks"

// FuzzHandleMessage feeds random topics and payloads to a Tracker backed by a real
// SQLite store, with its writer running: HandleMessage must never panic and must
// return promptly (the broker calls it on the sending client's goroutine), and a
// live status message on a device's status topic must set that device's presence.
func FuzzHandleMessage(f *testing.F) {
	topics := actions.Topics{Prefix: fuzzPrefix}
	for _, s := range ackSeeds {
		f.Add(topics.Device("dev-1", actions.KindAcks), []byte(s), false)
	}
	for _, s := range statusSeeds {
		f.Add(topics.Device("dev-1", actions.KindStatus), []byte(s), true)
		f.Add(topics.Device("dev-2", actions.KindStatus), []byte(s), false)
	}
	for _, topic := range []string{
		"", "devicehooks", "devicehooks/devices/", "devicehooks/devices//acks", "devicehooks/devices/dev-1",
		"devicehooks/devices/dev-1/acks/x", "devicehooks/devices/dev-1/commands", "devicehooks/devices/dev-1/desired",
		"devicehooks/devices/+/acks", "devicehooks/devices/#", "other/devices/dev-1/acks", "/devicehooks/devices/dev-1/acks",
		"devicehooks/devices/ghost/acks", "devicehooks/devices/dev 1/status", "devicehooks/devices/\xff\x00/status",
		"devicehooks/devices/" + strings.Repeat("d", 300) + "/status",
	} {
		f.Add(topic, []byte(`{"id":"cmd-1","status":"succeeded","state":"online"}`), false)
	}

	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"), nil)
	if err != nil {
		f.Fatal(err)
	}
	// Closed after the workers below have stopped (cleanups run last in, first out).
	f.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC()
	for _, id := range []string{"dev-1", "dev-2"} {
		d := &store.Device{ID: id, Name: id, TokenHash: "hash-" + id, MosquittoHash: "mosq-" + id, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateDevice(ctx, d); err != nil {
			f.Fatal(err)
		}
	}
	// A few commands the acks can settle (each once per fuzz process).
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: "dsp-1", ActionID: "act-1", ActionName: "fuzz", EventID: "evt_fuzz",
		Function: actions.Restart, Method: "POST", Targets: 2, CreatedAt: now}}
	for i, dev := range []string{"dev-1", "dev-1", "dev-2", "dev-2"} {
		nd.Commands = append(nd.Commands, store.Command{ID: fmt.Sprintf("cmd-%d", i+1), DispatchID: "dsp-1", DeviceID: dev,
			State: store.StateQueued, Function: actions.Restart, Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	if _, err := st.WriteDispatches(ctx, []*store.NewDispatch{nd}); err != nil {
		f.Fatal(err)
	}

	// External-broker mode: status messages decide presence, which is what
	// lets a device's own messages change it.
	presence := actions.NewPresence(st, log, false)
	if err := presence.Load(ctx); err != nil {
		f.Fatal(err)
	}
	waiters := actions.NewAckWaiters()
	tracker := actions.NewTracker(st, topics, presence, waiters, log)
	var workers sync.WaitGroup
	workers.Go(func() { tracker.Run(ctx) })
	workers.Go(func() { presence.Run(ctx, 50*time.Millisecond) })
	workers.Go(func() { // drain the came-online notices, as delivery does
		for {
			select {
			case <-presence.CameOnline():
				presence.TakeCameOnline(nil)
			case <-ctx.Done():
				return
			}
		}
	})
	f.Cleanup(func() { cancel(); workers.Wait() })

	f.Fuzz(func(t *testing.T, topic string, payload []byte, retained bool) {
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			tracker.HandleMessage(topic, payload, retained)
		}()
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Fatalf("HandleMessage(%q, %q, %v) did not return within 5s", topic, payload, retained)
		}

		id, kind, ok := topics.Parse(topic)
		if !ok || kind != actions.KindStatus || retained {
			return
		}
		s, err := actions.ParseStatus(payload)
		if err != nil {
			return
		}
		if got := presence.Online(id); got != (s.State == "online") {
			t.Fatalf("after a live %q status on %q, Online(%q) = %v", s.State, topic, id, got)
		}
	})
}

// FuzzSensorParams: any JSON object as sensor_data is validated without
// panicking; accepted data has non-empty string id and event, a string, number or
// boolean value, and nothing else (a numeric id or event is taken as its text); refused data names the offending field.
func FuzzSensorParams(f *testing.F) {
	for _, s := range []string{
		`{"id":"door-1","event":"open","value":"1"}`,
		`{"id":"door-1","event":"open","value":1.5}`,
		`{"id":"door-1","event":"open","value":true}`,
		`{"id":"door-1","event":"open"}`,
		`{"id":"door-1","event":"open","value":null}`,
		`{"id":"door-1","event":"open","value":1e400}`,
		`{"id":"door-1","event":"open","value":-0}`,
		`{"id":"door-1","event":"open","value":{"a":1}}`,
		`{"id":"door-1","event":"open","value":[1]}`,
		`{"id":"door-1","event":"open","value":"x","extra":1}`,
		`{"id":" ","event":"open"}`,
		`{"id":1,"event":"open"}`,
		`{"event":"open"}`,
		`{"id":"` + strings.Repeat("i", 201) + `","event":"open"}`,
		`{"id":"a","event":"b","value":"` + strings.Repeat("v", 2001) + `"}`,
		`{"id":"\u00e9\u0000","event":"\ud83d\ude00"}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`null`)) // a nil map
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The webhook decodes sensor_data with UseNumber; decode it that way and
		// the plain way (float64 numbers), as the function takes both.
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var withNumbers map[string]any
		if err := dec.Decode(&withNumbers); err != nil {
			return
		}
		var plain map[string]any
		plainErr := json.Unmarshal(raw, &plain)
		checkSensorParams(t, withNumbers)
		if plainErr == nil {
			checkSensorParams(t, plain)
		}
	})
}

// A numeric sensor id or event is taken as its text: as written when the
// webhook decodes with UseNumber, else in the shortest decimal form.
func TestSensorParamsTakesNumbersAsText(t *testing.T) {
	for _, tc := range []struct {
		id   any
		want string
	}{{json.Number("12"), "12"}, {json.Number("1e2"), "1e2"}, {float64(12), "12"}, {float64(1e2), "100"}, {2.5, "2.5"}} {
		out, err := actions.SensorParams(map[string]any{"id": tc.id, "event": json.Number("7")})
		if err != nil || out["id"] != tc.want || out["event"] != "7" {
			t.Errorf("id %#v: %v, %v; want id %q, event \"7\"", tc.id, out, err, tc.want)
		}
	}
}

// Unknown fields of sensor data are named all at once, in one error: the
// webhook's answer names its first error only.
func TestSensorParamsNamesEveryUnknownField(t *testing.T) {
	_, err := actions.SensorParams(map[string]any{"id": "a", "event": "b", "value": 1.0, "foo": 2.0, "bar": 3.0, "baz": 4.0})
	e := wantCode(t, err, actions.CodeInvalidParams)
	if e.Field != "sensor_data.bar" || !strings.Contains(e.Detail, "(nor are baz, foo)") {
		t.Fatalf("field %q, detail %q: want bar named, with baz and foo", e.Field, e.Detail)
	}
	// A misnamed field is named where the field it was meant to be is found
	// missing: that is the error the webhook's answer names.
	_, err = actions.SensorParams(map[string]any{"sensor_id": "a", "event": "b"})
	e = wantCode(t, err, actions.CodeInvalidParams)
	if e.Field != "sensor_data.id" || !strings.Contains(e.Detail, "is required") || !strings.Contains(e.Detail, "sensor_id is not a field of sensor data") {
		t.Fatalf("a misnamed id: field %q, detail %q", e.Field, e.Detail)
	}

	many := map[string]any{"id": "a", "event": "b", "value": 1.0}
	for i := range 1000 { // a 64 KiB body holds thousands: the answer stays short
		many[fmt.Sprintf("f%04d", i)] = 1.0
	}
	_, err = actions.SensorParams(many)
	e = wantCode(t, err, actions.CodeInvalidParams)
	if e.Field != "sensor_data.f0000" || !strings.Contains(e.Detail, "f0001, f0002, f0003, f0004, f0005 and 994 more)") || len(e.Detail) > 200 {
		t.Fatalf("field %q, detail %q: want f0000 named, five more, and how many besides", e.Field, e.Detail)
	}
}

// A numeric sensor value reaches players as written (big integers too, as
// they always did); one past a double's range, which players cannot read at
// all, is refused.
func TestSensorValueNumbersPlayersCanRead(t *testing.T) {
	for raw, ok := range map[string]bool{
		"1": true, "-2.5": true, "1e300": true, "9007199254740993": true, "12345678901234567890": true, "0.1": true,
		"1e400": false, "-1e400": false,
	} {
		out, err := actions.SensorParams(map[string]any{"id": "s", "event": "e", "value": json.Number(raw)})
		if ok && (err != nil || out["value"] != json.Number(raw)) {
			t.Errorf("value %s: %v %v, want it passed on", raw, out, err)
		}
		if !ok && actions.ErrorCode(err) != actions.CodeInvalidParams {
			t.Errorf("value %s: %v %v, want it refused", raw, out, err)
		}
	}
}

func checkSensorParams(t *testing.T, sd map[string]any) {
	t.Helper()
	out, err := actions.SensorParams(sd)
	if err != nil {
		e := wantCode(t, err, actions.CodeInvalidParams)
		if e.Field != "sensor_data" && !strings.HasPrefix(e.Field, "sensor_data.") {
			t.Fatalf("error field %q does not name the sensor data", e.Field)
		}
		return
	}
	if sd == nil {
		t.Fatal("nil sensor data accepted")
	}
	for k := range sd {
		if k != "id" && k != "event" && k != "value" {
			t.Fatalf("sensor data with unknown field %q accepted", k)
		}
	}
	if len(out) != 3 {
		t.Fatalf("params %v, want id, event and value", out)
	}
	for _, k := range []string{"id", "event"} {
		s, ok := out[k].(string)
		if !ok || strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > 200 {
			t.Fatalf("accepted %s %#v", k, out[k])
		}
		want := sd[k]
		switch n := want.(type) { // a number is taken as its decimal text
		case float64:
			want = strconv.FormatFloat(n, 'f', -1, 64)
		case json.Number:
			want = n.String()
		}
		if s != want {
			t.Fatalf("%s changed from %#v to %#v", k, sd[k], s)
		}
	}
	switch v := out["value"].(type) {
	case string:
		if utf8.RuneCountInString(v) > 2000 {
			t.Fatalf("accepted a value of %d characters", utf8.RuneCountInString(v))
		}
	case json.Number: // players can read it as a finite number
		if f, err := v.Float64(); err != nil || math.IsInf(f, 0) {
			t.Fatalf("accepted value %s, which a player cannot read", v)
		}
	case float64, bool:
	default:
		t.Fatalf("accepted value %#v (%T)", v, v)
	}
	// The params become the command's JSON payload.
	if _, err := json.Marshal(out); err != nil {
		t.Fatalf("accepted params do not encode: %v", err)
	}
}

// fuzzFunctions are the functions FuzzValidateParams picks from by index: the
// catalogue and one unknown name.
var fuzzFunctions = func() []string {
	var names []string
	for _, f := range actions.Catalogue {
		names = append(names, f.Name)
	}
	return append(names, "no_such_function")
}()

// FuzzValidateParams: any params object for any function is validated without
// panicking; accepted params only hold the function's parameters, are stored as
// JSON, and validate again to the same JSON (an edit that changes nothing keeps
// them as they are).
func FuzzValidateParams(f *testing.F) {
	for i, s := range []string{
		`{"url":"https://example.com/page?x=1#top"}`,
		`{"url":"http://example.com","duration_s":30}`,
		`{"url":"https://example.com","duration_s":1.5}`,
		`{"url":"https://example.com","duration_s":604801}`,
		`{"url":"ftp://example.com"}`,
		`{"url":"//example.com"}`,
		`{"url":" https://EXAMPLE.com/a b "}`,
		`{"enabled":true,"message":"Evacuate","url":"https://example.com/e"}`,
		`{"enabled":"yes"}`,
		`{"datasource_id":"ds-1"}`,
		`{"datasource_id":7}`,
		`{}`,
		`{"typo":1}`,
		`{"url":"https://ex%61mple.com/%2F%zz"}`,
		`{"url":"http://[::1]:80/"}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, fnIndex uint8, raw []byte) {
		fn := fuzzFunctions[int(fnIndex)%len(fuzzFunctions)]
		var params map[string]any
		if err := json.Unmarshal(raw, &params); err != nil {
			return
		}
		out, err := actions.ValidateParams(fn, params)
		if err != nil {
			e := wantCode(t, err, actions.CodeInvalidParams)
			if e.Field != "function" && !strings.HasPrefix(e.Field, "params.") {
				t.Fatalf("error field %q names neither the function nor a parameter", e.Field)
			}
			return
		}
		def, ok := actions.LookupFunction(fn)
		if !ok {
			t.Fatalf("unknown function %q accepted", fn)
		}
		known := map[string]actions.Param{}
		for _, p := range def.Params {
			known[p.Name] = p
		}
		for k, v := range out {
			p, ok := known[k]
			if !ok {
				t.Fatalf("%s: params %v hold unknown %q", fn, out, k)
			}
			switch p.Type {
			case "url":
				s, _ := v.(string)
				if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
					t.Fatalf("%s: accepted %s %#v", fn, k, v)
				}
			case "int":
				if n, ok := v.(int64); !ok || n < 1 || n > 604800 {
					t.Fatalf("%s: accepted %s %#v", fn, k, v)
				}
			case "bool":
				if _, ok := v.(bool); !ok {
					t.Fatalf("%s: accepted %s %#v", fn, k, v)
				}
			case "string":
				if _, ok := v.(string); !ok {
					t.Fatalf("%s: accepted %s %#v", fn, k, v)
				}
			}
		}
		for _, p := range def.Params {
			if _, ok := out[p.Name]; p.Required && !ok {
				t.Fatalf("%s: accepted params %v without %s", fn, out, p.Name)
			}
		}
		// Stored as JSON, read back and validated again: the same JSON.
		stored, err := json.Marshal(out)
		if err != nil {
			t.Fatalf("%s: params %v do not encode: %v", fn, out, err)
		}
		back, err := actions.DecodeParams(string(stored))
		if err != nil {
			t.Fatalf("%s: stored params %s do not decode: %v", fn, stored, err)
		}
		again, err := actions.ValidateParams(fn, back)
		if err != nil {
			t.Fatalf("%s: stored params %s no longer validate: %v", fn, stored, err)
		}
		if b, _ := json.Marshal(again); !bytes.Equal(b, stored) {
			t.Fatalf("%s: validating %s again gives %s", fn, stored, b)
		}
	})
}
