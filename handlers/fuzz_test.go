package handlers_test

// Fuzz targets for the inbound webhook (CONTRACT §1): the GET payload decoding,
// the JSON request parsing, and the whole handler behind the real router.
//
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzWebhookHandler$' -fuzztime 60s ./handlers
//
// or every target of the repository with scripts/fuzz.sh. The seed corpora live
// in testdata/fuzz/<FuzzName>/ and run with every plain `go test`.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/handlers"
	"devicehooks/metrics"
	"devicehooks/secrets"
	"devicehooks/store"
)

// encodings are the four base64 forms a GET payload may use.
var encodings = []struct {
	name string
	enc  *base64.Encoding
}{
	{"std", base64.StdEncoding}, {"url", base64.URLEncoding},
	{"rawstd", base64.RawStdEncoding}, {"rawurl", base64.RawURLEncoding},
}

// wantBadRequest fails t unless err is an *actions.Error with code bad_request.
func wantBadRequest(t *testing.T, err error) {
	t.Helper()
	var e *actions.Error
	if !errors.As(err, &e) || e.Code != actions.CodeBadRequest || e.Detail == "" {
		t.Fatalf("error %v (%T) is not a bad_request *actions.Error with a detail", err, err)
	}
}

// FuzzDecodePayload: DecodePayload never panics; what it accepts and is a
// webhook JSON object, ParseWebhookJSON accepts; and any bytes, base64-encoded in
// any of the four alphabets and carried in a query string (escaped, or not, with
// its '+' turned into ' '), decode back to the same bytes.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []struct{ p, b string }{
		{"eyJldmVudF9pZCI6ImV2dF8xIn0", `{"event_id":"evt_1"}`},
		{"eyJldmVudF9pZCI6ImV2dF8xIn0=", `{"event_id":"evt_1"}`},
		{"eyJldmVudF9pZCI6ImV2dF8xIn0==", "\xfb\xff\xbf"},
		{" eyJldmVudF9pZCI6ImV2dF8xIn0 ", "\x00"},
		{"Pj4+Pz8/", "{\"event_id\":\">>>???\"}\n"},
		{"Pj4-Pz8_", ">>>???"},
		{"Pj4 Pz8/", ""},
		{"a=b", "+"},
		{"%3D", "\xf8"},
		{"!", "\xfb"},
		{"", "\xff\xfe"},
	} {
		f.Add(s.p, []byte(s.b))
	}
	f.Fuzz(func(t *testing.T, p string, b []byte) {
		// 1. Any text: no panic, a coded error, or bytes that the JSON parser
		// treats like the reference below.
		if out, err := handlers.DecodePayload(p); err != nil {
			wantBadRequest(t, err)
		} else {
			checkParseWebhookJSON(t, out)
		}

		// 2. Round trip of any bytes through the four encodings.
		for _, e := range encodings {
			s := e.enc.EncodeToString(b)
			check := func(how, in string) {
				t.Helper()
				got, err := handlers.DecodePayload(in)
				if err != nil || !bytes.Equal(got, b) {
					t.Fatalf("%s, %s: DecodePayload(%q) = %q, %v; want %q", e.name, how, in, got, err, b)
				}
			}
			check("as is", s)
			// What the handler sees of a query parameter: escaped by the link
			// builder, or pasted unescaped (then '+' arrives as ' ').
			escaped, err := url.ParseQuery("payload=" + url.QueryEscape(s))
			if err != nil {
				t.Fatal(err)
			}
			check("query-escaped", escaped.Get("payload"))
			unescaped := strings.ReplaceAll(s, "+", " ")
			if q, err := url.ParseQuery("payload=" + s); err == nil && q.Get("payload") != unescaped {
				t.Fatalf("ParseQuery(%q) = %q, want %q", s, q.Get("payload"), unescaped)
			}
			// A '+' at either end that arrived as ' ' is lost to the trimming of
			// surrounding white space, so it cannot be told from padding of
			// the link. The base64 of a JSON object (which starts with '{' or
			// white space and ends with '}' or white space) never starts or
			// ends with '+', so a webhook payload always survives.
			if isJSONObject(b) || !(strings.HasPrefix(s, "+") || strings.HasSuffix(s, "+")) {
				check("'+' as ' '", unescaped)
			}
		}
	})
}

// isJSONObject reports whether b is one JSON object (white space around allowed).
func isJSONObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return json.Valid(b) && len(t) > 0 && t[0] == '{'
}

// refWebhookRequest is the reference reading of a webhook body, written from
// the contract rather than from ParseWebhookJSON: a JSON object whose event_id
// is one line of text (no control characters, tabs and line breaks included: no
// action can have one) of 1 to 64 characters once trimmed, whose sensor_data is
// absent, null or an object, and whose
// idempotency_key is absent, null or a string.
func refWebhookRequest(raw []byte) (eventID string, sensor map[string]any, idem string, ok bool) {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // RFC 8259 §8.1: a parser may ignore a byte-order mark
	if !json.Valid(raw) {
		return "", nil, "", false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return "", nil, "", false
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		return "", nil, "", false
	}
	id, isStr := obj["event_id"].(string)
	id = strings.TrimSpace(id)
	if !isStr || id == "" || utf8.RuneCountInString(id) > 64 || !refOneLine(id) {
		return "", nil, "", false
	}
	if sd, present := obj["sensor_data"]; present && sd != nil {
		m, isMap := sd.(map[string]any)
		if !isMap {
			return "", nil, "", false
		}
		sensor = m
	}
	if k, present := obj["idempotency_key"]; present && k != nil {
		s, isStr := k.(string)
		if !isStr {
			return "", nil, "", false
		}
		idem = s
	}
	return id, sensor, idem, true
}

// refOneLine is text without control characters, tabs and line breaks included.
func refOneLine(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// checkParseWebhookJSON runs ParseWebhookJSON on raw and compares it with the
// reference reading.
func checkParseWebhookJSON(t *testing.T, raw []byte) {
	t.Helper()
	req, err := handlers.ParseWebhookJSON(raw)
	eventID, sensor, idem, ok := refWebhookRequest(raw)
	if err != nil {
		wantBadRequest(t, err)
		if ok {
			t.Fatalf("ParseWebhookJSON(%q) refused a valid webhook body: %v", raw, err)
		}
		return
	}
	if !ok {
		t.Fatalf("ParseWebhookJSON(%q) accepted what is not a valid webhook body: %+v", raw, req)
	}
	if req.EventID == "" || utf8.RuneCountInString(req.EventID) > 64 || strings.TrimSpace(req.EventID) != req.EventID {
		t.Fatalf("ParseWebhookJSON(%q): event_id %q", raw, req.EventID)
	}
	if req.EventID != eventID || req.IdempotencyKey != idem {
		t.Fatalf("ParseWebhookJSON(%q) = event_id %q, idempotency_key %q; want %q, %q", raw, req.EventID, req.IdempotencyKey, eventID, idem)
	}
	if (req.SensorData == nil) != (sensor == nil) || (sensor != nil && !reflect.DeepEqual(req.SensorData, sensor)) {
		t.Fatalf("ParseWebhookJSON(%q): sensor_data %#v, want %#v", raw, req.SensorData, sensor)
	}
}

// FuzzParseWebhookJSON: any body is parsed without panicking, as the reference
// reading does: an accepted event_id is 1 to 64 characters on one line and trimmed, and every
// refusal is a bad_request.
func FuzzParseWebhookJSON(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"evt_1"}`,
		`{"event_id":"  evt_1\n"}`,
		`{"event_id":"evt_1","sensor_data":{"id":"door","event":"open","value":1e400}}`,
		`{"event_id":"evt_1","sensor_data":null,"idempotency_key":null}`,
		`{"event_id":"evt_1","sensor_data":[],"idempotency_key":"k"}`,
		`{"event_id":"evt_1","idempotency_key":7}`,
		`{"event_id":"evt_1","event_id":"evt_2"}`,
		`{"event_id":"` + strings.Repeat("e", 65) + `"}`,
		`{"event_id":"` + strings.Repeat("é", 32) + `"}`,
		`{"event_id":"` + strings.Repeat("é", 65) + `"}`,
		`{"event_id":"evt\t1"}`,
		`{"event_id":"\u0000"}`,
		`{"event_id":"\ud800"}`,
		`{"event_id":" "}`,
		`{"event_id":1}`,
		`{"event_id":null}`,
		`{"event_id":"a"} {}`,
		`null`, `[]`, `"evt_1"`, ``, ` `, `{`,
		"\xef\xbb\xbf{\"event_id\":\"a\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkParseWebhookJSON(t, raw)
	})
}

// Fixed event ids, so that seeds can name the actions.
const (
	evtLoad     = "evt_fuzzLoadURL"
	evtSensor   = "evt_fuzzSensor"
	evtDisabled = "evt_fuzzDisabled"
	maxBody     = 4096
	formLimit   = 16 << 10 // what the handler reads of a link's confirmation form
)

// Request modes (the low two bits of the fuzzed flags).
const (
	modeGET = iota
	modePOSTJSON
	modePOSTForm
	modeHEAD
)

// Flags above the mode.
const (
	flagHTML    = 1 << 2 // Accept: text/html
	flagIdem    = 1 << 3 // Idempotency-Key header
	flagPrefer  = 1 << 4 // Prefer: wait=0.01
	flagPreview = 1 << 5 // a link-preview user agent
)

// The ways a call presents (or not) an API key.
const (
	keyNone = iota
	keyHeader
	keyParam // api_key in the link's parameters
	keyWrong
	keyRevoked
	keyPadded // the valid key with spaces around it, in the header
	keyPOSTOnly
	keyScoped // may only trigger the load_url action
	keyRated  // one call, then rate-limited
	keySigned
	keySignedExpired
	keyDisabled
	keyKinds
)

// Content-Length modes.
const (
	clExact = iota
	clUnknown
	clLonger
	clOverLimit
	clModes
)

// recorder is the MQTT side of the fuzzed server: it takes every publish at
// once and keeps the last few, so delivery runs its real path in memory.
type recorder struct {
	mu   sync.Mutex
	n    int
	last []string
}

func (r *recorder) Publish(topic string, payload []byte, retained bool, done func(error)) {
	r.mu.Lock()
	r.n++
	if len(r.last) >= 16 {
		r.last = r.last[1:]
	}
	r.last = append(r.last, topic)
	r.mu.Unlock()
	done(nil)
}

func (r *recorder) Connected() bool { return true }

// leakWriter is the server log: it remembers whether any secret ever appeared.
type leakWriter struct {
	secrets []string
	leaked  atomic.Pointer[string]
}

func (w *leakWriter) Write(p []byte) (int, error) {
	for _, s := range w.secrets {
		if bytes.Contains(p, []byte(s)) {
			line := string(p)
			w.leaked.CompareAndSwap(nil, &line)
		}
	}
	return len(p), nil
}

// webhookServer is one real handler with its workers, built once per fuzz process.
type webhookServer struct {
	h       http.Handler
	keys    map[int]string // plaintext by key kind
	keyIDs  map[int]string
	fn      map[string]string // function by enabled event id
	pub     *recorder
	logs    *leakWriter
	expires int64 // of the signed links
}

func newWebhookServer(f *testing.F) *webhookServer {
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	logs := &leakWriter{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	st, err := store.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() }) // after the workers stop (cleanups run last in, first out)
	kr, err := secrets.NewKeyring(bytes.Repeat([]byte("fuzz-secret-"), 4))
	if err != nil {
		f.Fatal(err)
	}
	keys := auth.NewKeys(st, kr, log)
	admins := auth.NewAdmins(st, kr, "")
	devices := auth.NewDevices(st, kr)
	if _, _, err := devices.Create(ctx, "dev-1", "Lobby screen"); err != nil {
		f.Fatal(err)
	}

	topics := actions.Topics{Prefix: "devicehooks"}
	presence := actions.NewPresence(st, log, true)
	if err := presence.Load(ctx); err != nil {
		f.Fatal(err)
	}
	pub := &recorder{}
	delivery := actions.NewDelivery(st, pub, topics, presence, log)
	waiters := actions.NewAckWaiters()
	dispatcher := actions.NewDispatcher(st, delivery, waiters, log, actions.DispatcherConfig{})
	delivery.Marker = dispatcher
	reqlog := handlers.NewRequestLog(st, log)
	met := metrics.New(metrics.Sources{
		OnlineDevices: presence.OnlineCount, BrokerConnected: pub.Connected, Log: log,
		CommandStates: func(ctx context.Context, states []string) (map[string]int, error) {
			return st.CountCommandsByState(ctx, states...)
		},
		WriteFailures: dispatcher.WriteFailures,
	})

	s := &webhookServer{pub: pub, logs: logs, keys: map[int]string{}, keyIDs: map[int]string{}, fn: map[string]string{}}
	var loadActionID string
	for _, a := range []struct {
		event string
		in    actions.ActionInput
	}{
		{evtLoad, actions.ActionInput{Name: "Show the menu", Function: actions.LoadURL,
			Params: map[string]any{"url": "https://example.com/menu", "duration_s": 30}}},
		{evtSensor, actions.ActionInput{Name: "Door sensor", Function: actions.SensorEvent}},
		{evtDisabled, actions.ActionInput{Name: "Off", Function: actions.Restart, Enabled: new(false)}},
	} {
		a.in.Target = actions.Target{Type: actions.TargetDevice, ID: "dev-1"}
		act := &store.Action{ID: actions.NewID(), EventID: a.event}
		if err := actions.BuildAction(ctx, st, a.in, act); err != nil {
			f.Fatal(err)
		}
		if err := st.CreateAction(ctx, act); err != nil {
			f.Fatal(err)
		}
		if act.Enabled {
			s.fn[a.event] = act.Function
		}
		if a.event == evtLoad {
			loadActionID = act.ID
		}
	}
	for kind, limits := range map[int]auth.Limits{
		keyHeader:   {},
		keyRevoked:  {},
		keyPOSTOnly: {Methods: []string{"POST"}},
		keyScoped:   {Actions: []string{loadActionID}},
		keyRated:    {Rate: &auth.Rate{PerSecond: 0.0001, Burst: 1}},
		keyDisabled: {Disabled: true},
	} {
		k, plain, err := keys.Create(ctx, fmt.Sprintf("fuzz key %d", kind), limits)
		if err != nil {
			f.Fatal(err)
		}
		s.keys[kind], s.keyIDs[kind] = plain, k.ID
		logs.secrets = append(logs.secrets, plain[len(secrets.DisplayPrefix(plain)):])
	}
	if err := keys.Revoke(ctx, s.keyIDs[keyRevoked]); err != nil {
		f.Fatal(err)
	}
	s.keys[keyWrong] = secrets.NewToken(secrets.APIKeyPrefix) // well formed, never issued
	for _, k := range []int{keyParam, keyPadded, keySigned, keySignedExpired} {
		s.keys[k], s.keyIDs[k] = s.keys[keyHeader], s.keyIDs[keyHeader]
	}
	s.expires = time.Now().Add(24 * time.Hour).Unix()

	h, err := handlers.New(handlers.Deps{
		Store: st, Keys: keys, Admins: admins, Devices: devices, Users: auth.NewUsers(st, kr),
		Dispatcher: dispatcher, Presence: presence, Log: log, MaxBody: maxBody, MaxHeader: 1 << 20,
		RequestLog: reqlog, Metrics: met, BrokerConnected: pub.Connected, Topics: topics,
	})
	if err != nil {
		f.Fatal(err)
	}
	s.h = h

	var workers sync.WaitGroup
	workers.Go(func() { dispatcher.Run(ctx) })
	workers.Go(func() { delivery.Run(ctx, 30*time.Second) })
	workers.Go(func() { presence.Run(ctx, 250*time.Millisecond) })
	workers.Go(func() { keys.Run(ctx, time.Second) })
	workers.Go(func() { reqlog.Run(ctx, time.Hour) })
	f.Cleanup(func() { cancel(); workers.Wait() })
	delivery.BrokerConnected()
	presence.Subscribed("dev-1") // online: commands go to the recorder
	return s
}

// webhookCall is one fuzzed request, as built and as the contract reads it.
type webhookCall struct {
	mode, flags, key, cl int
	query                string
	body                 []byte
	params               url.Values // a link's parameters
	formErr              bool       // a confirmation form that does not parse
	jsonForm             bool       // a form-typed POST that is not a link: its body is JSON
}

// payloadSeed returns the base64 of a webhook JSON body.
func payloadSeed(enc *base64.Encoding, body string) string { return enc.EncodeToString([]byte(body)) }

// FuzzWebhookHandler drives the real router with fuzzed webhook calls: method
// (GET, POST JSON, POST confirmation form, HEAD) and headers, the API key and
// how it is presented, the query string, the body and a Content-Length that
// may lie. Every answer must be one the contract allows for that call, with
// the contract's body, and no secret may reach the log.
func FuzzWebhookHandler(f *testing.F) {
	sensor := func(sd string) string { return `{"event_id":"` + evtSensor + `","sensor_data":` + sd + `}` }
	load := `{"event_id":"` + evtLoad + `"}`
	// '>' and '?' make '+' and '/' in standard base64, so the alphabets differ.
	alphabet := sensor(`{"id":"door>>>","event":"open???","value":"~~~"}`)
	for _, s := range []struct {
		flags, key int
		query      string
		body       string
		cl         int
	}{
		{modePOSTJSON, keyHeader, "", load, clExact},
		{modePOSTJSON, keyHeader, "", sensor(`{"id":"door-1","event":"open","value":"1"}`), clExact},
		{modePOSTJSON, keyHeader, "", sensor(`{"id":"door-1","event":"open","value":2.5}`), clUnknown},
		{modePOSTJSON, keyHeader, "", sensor(`{"id":"door-1","event":"open","value":true}`), clLonger},
		{modePOSTJSON, keyHeader, "", sensor(`{"id":"door-1","event":"open","value":{"x":1}}`), clExact},
		{modePOSTJSON, keyHeader, "", sensor(`{"id":"","event":"open"}`), clExact},
		{modePOSTJSON, keyHeader, "", sensor(`[1,2]`), clExact},
		{modePOSTJSON, keyHeader, "", sensor(`null`), clExact},
		{modePOSTJSON, keyHeader, "", `{"event_id":7}`, clExact},
		{modePOSTJSON, keyHeader, "", `{"event_id":"` + strings.Repeat("x", 65) + `"}`, clExact},
		{modePOSTJSON, keyHeader, "", `{"event_id":"<xss>\u00e9\u0000"}`, clExact},
		{modePOSTJSON, keyHeader, "", `{"event_id":"` + evtDisabled + `"}`, clExact},
		{modePOSTJSON, keyHeader, "", `[{"event_id":"` + evtLoad + `"}]`, clExact},
		{modePOSTJSON, keyHeader, "", `null`, clExact},
		{modePOSTJSON, keyHeader, "", load + strings.Repeat(" ", maxBody), clUnknown},
		{modePOSTJSON, keyHeader, "", load, clOverLimit},
		{modePOSTJSON | flagIdem, keyHeader, "", load, clExact},
		{modePOSTJSON | flagPrefer, keyHeader, "", load, clExact},
		{modePOSTJSON, keyHeader, "wait=0.01", load, clExact},
		{modePOSTJSON, keyHeader, "wait=-1", load, clExact},
		{modePOSTJSON, keyNone, "", load, clExact},
		{modePOSTJSON, keyWrong, "", load, clExact},
		{modePOSTJSON, keyRevoked, "", load, clExact},
		{modePOSTJSON, keyDisabled, "", load, clExact},
		{modePOSTJSON, keyParam, "", load, clExact},
		{modePOSTJSON, keyScoped, "", sensor(`{"id":"a","event":"b"}`), clExact},
		{modePOSTJSON, keyRated, "", load, clExact},
		{modeGET, keyParam, "payload=" + url.QueryEscape(payloadSeed(base64.StdEncoding, alphabet)), "", clExact},
		{modeGET, keyParam, "payload=" + payloadSeed(base64.StdEncoding, alphabet), "", clExact},
		{modeGET, keyHeader, "payload=" + payloadSeed(base64.URLEncoding, alphabet), "", clExact},
		{modeGET, keyPadded, "payload=" + payloadSeed(base64.RawStdEncoding, alphabet), "", clExact},
		{modeGET, keyParam, "payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET | flagHTML, keyParam, "payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET | flagHTML, keyParam, "payload=" + payloadSeed(base64.RawURLEncoding, `{"event_id":"<xss>"}`), "", clExact},
		{modeGET | flagHTML, keyNone, "payload=%zz", "", clExact},
		{modeGET, keyParam, "payload=not*base64", "", clExact},
		{modeGET, keyParam, "", "", clExact},
		{modeGET, keySigned, "payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET, keySignedExpired, "payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET, keyNone, "sig=x&key_id=y&expires=1&payload=e30", "", clExact},
		{modeGET, keyPOSTOnly, "payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET | flagPreview, keyNone, "payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET | flagHTML, keyParam, "confirm=1&payload=" + payloadSeed(base64.RawURLEncoding, load), "", clExact},
		{modeGET, keyParam, "confirm=1&payload=" + payloadSeed(base64.RawURLEncoding, `{"event_id":"nope"}`), "", clExact},
		{modePOSTForm | flagHTML, keyParam, "", "payload=" + payloadSeed(base64.RawURLEncoding, load), clExact},
		{modePOSTForm, keySigned, "", "payload=" + payloadSeed(base64.RawURLEncoding, load), clUnknown},
		{modePOSTForm, keyParam, "", "payload=%zz;x", clExact},
		{modeHEAD, keyNone, "payload=e30", "", clExact},
	} {
		f.Add(uint8(s.flags), uint8(s.key), s.query, []byte(s.body), uint8(s.cl))
	}

	srv := newWebhookServer(f)
	f.Fuzz(func(t *testing.T, flags, key uint8, query string, body []byte, cl uint8) {
		if len(query) > 8<<10 || len(body) > 4*formLimit {
			return // the size checks have their seeds; keep the fuzzer fast
		}
		c := &webhookCall{mode: int(flags) & 3, flags: int(flags), key: int(key) % keyKinds, cl: int(cl) % clModes, query: query, body: body}
		req := srv.request(c)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		w := httptest.NewRecorder()
		srv.h.ServeHTTP(w, req)
		srv.check(t, c, w)
		if l := srv.logs.leaked.Load(); l != nil {
			t.Fatalf("a secret reached the log: %s", *l)
		}
	})
}

// request builds the HTTP request of c, and fills c.params.
func (s *webhookServer) request(c *webhookCall) *http.Request {
	link := c.mode == modeGET || c.mode == modePOSTForm
	// A key that travels in the link goes first, so that it is the one read.
	var first string
	switch c.key {
	case keyParam:
		first = "api_key=" + url.QueryEscape(s.keys[keyParam]) + "&"
	case keySigned, keySignedExpired:
		src := c.query
		if c.mode == modePOSTForm {
			src = string(c.body)
		}
		q, _ := url.ParseQuery(src)
		expires := s.expires
		if c.key == keySignedExpired {
			expires = time.Now().Add(-time.Minute).Unix()
		}
		sig := auth.SignLink(s.keys[keySigned], s.keyIDs[keySigned], expires, q.Get("payload"), q.Get("confirm") != "")
		first = fmt.Sprintf("key_id=%s&expires=%d&sig=%s&", s.keyIDs[keySigned], expires, sig)
	}
	query, body := c.query, c.body
	if c.mode == modePOSTForm {
		body = append([]byte(first), body...)
	} else {
		query = first + query
	}
	c.body = body
	c.query = query
	if c.mode == modePOSTForm {
		// The contract's reading: a JSON body is a JSON call (curl -d), and
		// so is a form that carries no payload, signature or key.
		form, err := url.ParseQuery(string(body))
		if json.Valid(body) || err == nil && !form.Has("payload") && !form.Has("sig") && !form.Has("api_key") {
			c.jsonForm, link = true, false
		}
	}
	if link {
		src := query
		if c.mode == modePOSTForm {
			src = string(body)
		}
		var err error
		c.params, err = url.ParseQuery(src)
		if c.mode == modePOSTForm {
			_, qerr := url.ParseQuery(query)
			c.formErr = err != nil || qerr != nil || len(body) > formLimit
		}
	} else {
		c.params = url.Values{}
	}

	method := map[int]string{modeGET: http.MethodGet, modePOSTJSON: http.MethodPost, modePOSTForm: http.MethodPost, modeHEAD: http.MethodHead}[c.mode]
	const path = "/public-api/integration/webhooks"
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.URL.RawQuery = query
	req.RequestURI = path + "?" + query
	switch c.mode {
	case modePOSTJSON:
		req.Header.Set("Content-Type", "application/json")
	case modePOSTForm:
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.ContentLength = int64(declaredLength(c))
	switch c.key {
	case keyHeader, keyWrong, keyRevoked, keyPOSTOnly, keyScoped, keyRated, keyDisabled:
		req.Header.Set("x-webhook-apikey", s.keys[c.key])
	case keyPadded:
		req.Header.Set("x-webhook-apikey", "  "+s.keys[keyPadded]+"\t")
	}
	if c.flags&flagHTML != 0 {
		req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9")
	}
	if c.flags&flagIdem != 0 {
		req.Header.Set("Idempotency-Key", "fuzz-idempotency-key")
	}
	if c.flags&flagPrefer != 0 {
		req.Header.Set("Prefer", "respond-async, wait=0.01")
	}
	if c.flags&flagPreview != 0 {
		req.Header.Set("User-Agent", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")
	}
	return req
}

// declaredLength is the Content-Length of c's request (-1: unknown).
func declaredLength(c *webhookCall) int {
	switch c.cl {
	case clUnknown:
		return -1
	case clLonger:
		return len(c.body) + 17
	case clOverLimit:
		return maxBody + 1
	}
	return len(c.body)
}

// codeOf is the contract's error code for each webhook status (CONTRACT §1).
var codeOf = map[int]actions.Code{
	http.StatusBadRequest:            actions.CodeBadRequest,
	http.StatusUnauthorized:          actions.CodeUnauthorized,
	http.StatusForbidden:             actions.CodeForbidden,
	http.StatusNotFound:              actions.CodeUnknownEvent,
	http.StatusRequestEntityTooLarge: actions.CodeTooLarge,
	http.StatusUnprocessableEntity:   actions.CodeInvalidParams,
	http.StatusTooManyRequests:       actions.CodeRateLimited,
	http.StatusServiceUnavailable:    actions.CodeUnavailable,
}

// verdict is what the contract allows as the answer to a call.
type verdict struct {
	faults map[int]bool // the failures the call has; any one may be reported
	may    map[int]bool // failures that depend on earlier calls (rate, replay)
	ok     string       // "" (must fail), "fire" (may succeed), "preview", "confirm"
}

// expect reads c the way the contract does. It does not follow the handler's
// order of checks: a call with several faults may be refused for any of them.
func (s *webhookServer) expect(c *webhookCall) verdict {
	v := verdict{faults: map[int]bool{}, may: map[int]bool{http.StatusServiceUnavailable: true}}
	fail := func(status int) { v.faults[status] = true }
	link := c.mode == modeGET || c.mode == modePOSTForm && !c.jsonForm

	// Size: the declared length, or what a POST's body really holds.
	if declaredLength(c) > maxBody || c.mode != modeGET && len(c.body) > maxBody {
		fail(http.StatusRequestEntityTooLarge)
	}
	if c.mode == modeGET && c.flags&flagPreview != 0 {
		v.ok = "preview" // a link preview never fires and needs nothing else
		return v
	}
	if c.mode == modePOSTForm && !c.jsonForm && c.formErr {
		fail(http.StatusBadRequest)
	}

	// Who calls.
	authed := false
	if c.params.Get("sig") != "" {
		authed = c.key == keySigned
	} else {
		switch c.key {
		case keyHeader, keyPadded, keyPOSTOnly, keyScoped, keyRated:
			authed = true
		case keyParam:
			authed = link
		}
	}
	switch {
	case !authed:
		fail(http.StatusUnauthorized)
	case c.key == keyPOSTOnly && link:
		fail(http.StatusForbidden)
	case c.key == keyRated:
		v.may[http.StatusTooManyRequests] = true // after its one call
	}

	// What is asked.
	var raw []byte
	parsed := false
	if link {
		if p := c.params.Get("payload"); p != "" {
			if b, err := handlers.DecodePayload(p); err == nil {
				raw, parsed = b, true
			}
		}
	} else if len(c.body) <= maxBody {
		raw, parsed = c.body, true
	}
	if parsed && !utf8.Valid(raw) { // no charset named: read as Windows-1252
		raw, _ = charmap.Windows1252.NewDecoder().Bytes(raw)
	}
	eventID, sensor, idem, ok := refWebhookRequest(raw)
	if c.flags&flagIdem != 0 {
		idem = "fuzz-idempotency-key"
	}
	if !parsed || !ok || utf8.RuneCountInString(idem) > 255 || !refOneLine(idem) {
		if parsed || link {
			fail(http.StatusBadRequest)
		}
		return v // nothing below is reached
	}
	if idem != "" {
		// Idempotency keys outlive a call: an earlier input may have used this
		// one for another request, which the contract refuses (422).
		v.may[http.StatusUnprocessableEntity] = true
	}
	if c.mode == modeGET && c.params.Get("confirm") != "" {
		if c.flags&flagHTML == 0 {
			fail(http.StatusForbidden) // an API client cannot click
			return v
		}
		v.ok = "confirm"
		return v
	}
	if !waitValid(c) {
		fail(http.StatusBadRequest)
	}
	fn, known := s.fn[eventID]
	switch {
	case !known:
		fail(http.StatusNotFound)
		return v
	case c.key == keyScoped && fn != actions.LoadURL:
		fail(http.StatusForbidden)
	case fn == actions.SensorEvent:
		if _, err := actions.SensorParams(sensor); err != nil {
			if idem == "" {
				fail(http.StatusUnprocessableEntity)
			} else {
				v.may[http.StatusUnprocessableEntity] = true // unless it replays an earlier call with its key
			}
		}
	}
	v.ok = "fire"
	return v
}

// waitValid reports whether the call asks to wait for a valid number of seconds.
func waitValid(c *webhookCall) bool {
	q, _ := url.ParseQuery(c.query)
	w := q.Get("wait")
	if w == "" && c.flags&flagPrefer != 0 {
		w = "0.01"
	}
	if w == "" {
		return true
	}
	n, err := strconv.ParseFloat(w, 64)
	return err == nil && !(n < 0 || n > 1e6) // NaN is taken as no wait
}

// check judges the answer w to c.
func (s *webhookServer) check(t *testing.T, c *webhookCall, w *httptest.ResponseRecorder) {
	t.Helper()
	status, ctype, body := w.Code, w.Header().Get("Content-Type"), w.Body.Bytes()
	describe := func() string {
		return fmt.Sprintf("mode %d flags %#x key %d cl %d query %q body %q\n-> %d %s %q",
			c.mode, c.flags, c.key, c.cl, cut(c.query), cut(string(c.body)), status, ctype, cut(string(body)))
	}
	if c.mode == modeHEAD {
		if status != http.StatusOK || len(body) != 0 {
			t.Fatalf("HEAD must answer 200 without a body and fire nothing: %s", describe())
		}
		return
	}
	if _, ok := codeOf[status]; !ok && status != http.StatusOK {
		t.Fatalf("status %d is not one of the contract's: %s", status, describe())
	}
	v := s.expect(c)
	switch {
	case status == http.StatusOK && len(v.faults) > 0 && v.ok != "preview":
		t.Fatalf("succeeded, but the call has faults %v: %s", keysOf(v.faults), describe())
	case status == http.StatusOK && v.ok == "":
		t.Fatalf("succeeded, but the call cannot: %s", describe())
	case status != http.StatusOK && !v.faults[status] && !v.may[status]:
		if len(v.faults) == 0 {
			t.Fatalf("refused a valid call: %s", describe())
		}
		t.Fatalf("answered %d, but the call's faults are %v: %s", status, keysOf(v.faults), describe())
	}
	if status == http.StatusTooManyRequests {
		if n, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || n < 1 {
			t.Fatalf("429 with Retry-After %q: %s", w.Header().Get("Retry-After"), describe())
		}
	}

	html := strings.HasPrefix(ctype, "text/html")
	wantHTML := v.ok == "preview" && status == http.StatusOK || v.ok == "confirm" && status == http.StatusOK ||
		(c.mode == modeGET || c.mode == modePOSTForm) && c.flags&flagHTML != 0
	if html != wantHTML {
		t.Fatalf("HTML page %v, want %v: %s", html, wantHTML, describe())
	}
	if html {
		if len(body) == 0 || bytes.Contains(bytes.ToLower(body), []byte("<xss")) {
			t.Fatalf("bad HTML page: %s", describe())
		}
		return
	}
	if !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("content type %q: %s", ctype, describe())
	}
	if status != http.StatusOK {
		var e struct {
			Message string `json:"message"`
			Error   struct {
				Code   actions.Code `json:"code"`
				Detail string       `json:"detail"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Message != "Error" || e.Error.Code != codeOf[status] || e.Error.Detail == "" {
			t.Fatalf("error body is not {\"message\":\"Error\",\"error\":{\"code\":%q,\"detail\":...}} (%v): %s", codeOf[status], err, describe())
		}
		return
	}
	var a struct {
		Message    string `json:"message"`
		DispatchID string `json:"dispatch_id"`
		EventID    string `json:"event_id"`
		Function   string `json:"function"`
		Targets    *int   `json:"targets"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.Message != "success" || a.DispatchID == "" || a.Targets == nil || *a.Targets != 1 {
		t.Fatalf("success body lacks message, dispatch_id or targets (%v): %s", err, describe())
	}
	if fn, ok := s.fn[a.EventID]; !ok || fn != a.Function {
		t.Fatalf("success for event %q with function %q: %s", a.EventID, a.Function, describe())
	}
	if w.Header().Get("Idempotent-Replayed") == "" {
		if id, _, _, _ := refWebhookRequest(requestJSON(c)); id != a.EventID {
			t.Fatalf("success for event %q, but the call named %q: %s", a.EventID, id, describe())
		}
	}
}

// requestJSON is the webhook JSON of c: the body (a JSON POST, or a form-typed
// one that is no link), or the link's decoded payload.
func requestJSON(c *webhookCall) []byte {
	if c.mode == modePOSTJSON || c.jsonForm {
		return c.body
	}
	b, _ := handlers.DecodePayload(c.params.Get("payload"))
	return b
}

// cut shortens s for a failure message.
func cut(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func keysOf(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}
