package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"devicehooks/auth"
	"devicehooks/internal/testenv"
	"devicehooks/store"
)

func TestKeyScopesAndLimits(t *testing.T) {
	s := startServer(t, Config{})
	p, _, evDevice := setupLoadURL(t, s)
	other := s.createDevice("other")
	_ = other
	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "g", "device_ids": []string{"lobby-1"}})
	evGroup := s.createAction("refresh_content", map[string]any{"type": "group", "id": group["id"]}, nil)
	actions := s.mustCall(http.StatusOK, "GET", "/api/v1/actions", nil)["items"].([]any)
	actionID := map[string]string{}
	for _, a := range actions {
		a := a.(map[string]any)
		actionID[a["event_id"].(string)] = a["id"].(string)
	}
	newKey := func(limits map[string]any) string {
		limits["name"] = "scoped"
		return s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", limits)["key"].(string)
	}
	body := func(ev string) string { return `{"event_id":"` + ev + `"}` }
	getLink := func(key, ev string) (int, map[string]any) {
		return s.get("api_key=" + key + "&payload=" + base64.URLEncoding.EncodeToString([]byte(body(ev))))
	}
	// A link's fields posted as a form, as its confirm button posts them.
	formLink := func(key, ev string) (int, map[string]any) {
		form := url.Values{"api_key": {key}, "payload": {base64.URLEncoding.EncodeToString([]byte(body(ev)))}}
		req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return s.do(req)
	}
	cases := []struct {
		name   string
		limits map[string]any
		call   func(key string) (int, map[string]any)
		status int
		code   string
	}{
		{"action scope allows its action", map[string]any{"actions": []string{actionID[evDevice]}}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 200, ""},
		{"action scope denies another", map[string]any{"actions": []string{actionID[evDevice]}}, func(k string) (int, map[string]any) { return s.post(k, body(evGroup)) }, 403, "forbidden"},
		{"group scope allows its group's action", map[string]any{"groups": []string{group["id"].(string)}}, func(k string) (int, map[string]any) { return s.post(k, body(evGroup)) }, 200, ""},
		{"group scope denies a device action", map[string]any{"groups": []string{group["id"].(string)}}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 403, "forbidden"},
		{"POST-only key by POST", map[string]any{"methods": []string{"POST"}}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 200, ""},
		{"POST-only key by GET link", map[string]any{"methods": []string{"POST"}}, func(k string) (int, map[string]any) { return getLink(k, evDevice) }, 403, "forbidden"},
		{"POST-only key by a link's form", map[string]any{"methods": []string{"POST"}}, func(k string) (int, map[string]any) { return formLink(k, evDevice) }, 403, "forbidden"},
		{"GET-only key by a link's form", map[string]any{"methods": []string{"GET"}}, func(k string) (int, map[string]any) { return formLink(k, evDevice) }, 200, ""},
		{"GET-only key by POST", map[string]any{"methods": []string{"GET"}}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 403, "forbidden"},
		{"source range allows loopback", map[string]any{"cidrs": []string{"127.0.0.0/8", "::1"}}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 200, ""},
		{"source range denies loopback", map[string]any{"cidrs": []string{"10.0.0.0/8"}}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 403, "forbidden"},
		{"disabled key", map[string]any{"disabled": true}, func(k string) (int, map[string]any) { return s.post(k, body(evDevice)) }, 401, "unauthorized"},
	}
	for _, c := range cases {
		key := newKey(c.limits)
		status, ans := c.call(key)
		if c.status == 200 {
			if status != 200 {
				t.Fatalf("%s: %d %v", c.name, status, ans)
			}
			p.next(5 * time.Second)
			continue
		}
		wantError(t, c.name, status, ans, c.status, c.code)
		p.none(100 * time.Millisecond)
	}
	// A key that has expired since it was made (one made expired is refused).
	soon := time.Now().Add(time.Second).UTC()
	expiring := newKey(map[string]any{"expires_at": soon.Format(time.RFC3339Nano)})
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	status, ans := s.post(expiring, body(evDevice))
	wantError(t, "expired key", status, ans, http.StatusUnauthorized, "unauthorized")
	p.none(100 * time.Millisecond)

	// The refusal of a link's form says why a POST was judged as a GET.
	_, ans = formLink(newKey(map[string]any{"methods": []string{"POST"}}), evDevice)
	if d, _ := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(d, "GET links, and a link's fields posted as a form count as one") {
		t.Errorf("a POST-only key's link form: detail %q", d)
	}

	// Rate: 2 at once, then one per 100 s; the third call waits. (One a
	// second would have refilled while the calls before it reached the
	// player, on a loaded machine.)
	key := newKey(map[string]any{"rate": map[string]any{"per_second": 0.01, "burst": 2}})
	// Repeats answered from their idempotency record do not use the rate up: a
	// client retrying after a timeout does not crowd out its next call.
	var first any
	for i, idem := range []string{"burst-0", "burst-0", "burst-0", "burst-1"} {
		status, ans := s.post(key, body(evDevice), "Idempotency-Key", idem)
		switch {
		case status != 200:
			t.Fatalf("call %d (%s) within the burst: %d %v", i, idem, status, ans)
		case i == 0:
			first = ans["dispatch_id"]
		case idem == "burst-0" && ans["dispatch_id"] != first:
			t.Fatalf("repeat %d: dispatch %v, want %v", i, ans["dispatch_id"], first)
		}
		if idem != "burst-0" || i == 0 {
			p.next(5 * time.Second)
		}
	}
	req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks", strings.NewReader(body(evDevice)))
	req.Header.Set("x-webhook-apikey", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third call: %d, want 429", resp.StatusCode)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 {
		t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	p.none(100 * time.Millisecond)

	// Limits can be changed; a disabled key comes back when enabled.
	keys := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil)["items"].([]any)
	var disabledID string
	for _, k := range keys {
		if k.(map[string]any)["disabled"] == true {
			disabledID = k.(map[string]any)["id"].(string)
		}
	}
	// A rename keeps its limits (a script that sends only what it manages
	// must not lift the rest); a limit sent changes.
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+disabledID, map[string]any{"name": "back"})
	revealed := s.mustCall(http.StatusOK, "POST", "/api/v1/api-keys/"+disabledID+"/reveal", nil)["key"].(string)
	if status, _ := s.post(revealed, body(evDevice)); status != 401 {
		t.Fatalf("a disabled key renamed: %d, want 401 (still disabled)", status)
	}
	if got := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys/"+disabledID, nil); got["name"] != "back" || got["disabled"] != true {
		t.Fatalf("after a rename: %v", got)
	}
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+disabledID, map[string]any{"disabled": false})
	if status, _ := s.post(revealed, body(evDevice)); status != 200 {
		t.Fatalf("re-enabled key: %d", status)
	}
	// Every limit left out stays; [] or null removes one; rate's fields merge.
	limited := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "limited",
		"methods": []string{"POST"}, "cidrs": []string{"203.0.113.0/24"}, "expires_at": "2099-01-01T00:00:00Z",
		"rate": map[string]any{"per_second": 5, "burst": 10}})["id"].(string)
	keyNow := func() map[string]any { return s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys/"+limited, nil) }
	before := keyNow()
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+limited, map[string]any{"name": "renamed"})
	after := keyNow()
	for _, f := range []string{"methods", "cidrs", "expires_at", "rate", "actions", "groups", "disabled"} {
		if fmt.Sprint(after[f]) != fmt.Sprint(before[f]) {
			t.Errorf("a rename changed %s: %v, was %v", f, after[f], before[f])
		}
	}
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+limited, map[string]any{
		"cidrs": []string{}, "expires_at": nil, "rate": map[string]any{"burst": 20}})
	after = keyNow()
	if fmt.Sprint(after["cidrs"]) != "[]" || after["expires_at"] != nil || fmt.Sprint(after["methods"]) != "[POST]" ||
		fmt.Sprint(after["rate"]) != "map[burst:20 per_second:5]" {
		t.Errorf("after removing cidrs and expiry and changing the burst: %v", after)
	}
	p.next(5 * time.Second)
	// Invalid limits are refused with the field named.
	status, ans = s.call("POST", "/api/v1/api-keys", map[string]any{"name": "x", "cidrs": []string{"10.0.0.0/8", "nonsense"}})
	if status != 422 || ans["error"].(map[string]any)["field"] != "cidrs[1]" {
		t.Fatalf("bad cidr: %d %v", status, ans)
	}
	// A scope naming no action or group (a typo) would scope the key to nothing.
	status, ans = s.call("POST", "/api/v1/api-keys", map[string]any{"name": "x", "actions": []string{actionID[evDevice], "nope"}})
	if status != 422 || ans["error"].(map[string]any)["field"] != "actions[1]" {
		t.Fatalf("unknown action in a scope: %d %v", status, ans)
	}
	status, ans = s.call("POST", "/api/v1/api-keys", map[string]any{"name": "x", "groups": []string{"nope"}})
	if status != 422 || ans["error"].(map[string]any)["field"] != "groups[0]" {
		t.Fatalf("unknown group in a scope: %d %v", status, ans)
	}
	// A key read and sent back is taken, even once an action of its scope is gone.
	doomed := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "doomed", "function": "restart", "target": map[string]any{"type": "all"}})["id"].(string)
	scoped := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "y", "actions": []string{doomed}})["id"].(string)
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/actions/"+doomed, nil)
	got := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys/"+scoped, nil)
	s.mustCall(http.StatusNoContent, "PUT", "/api/v1/api-keys/"+scoped, got)
}

func TestSignedAndSafeLinks(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	keyID := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil)["items"].([]any)[0].(map[string]any)["id"].(string)
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"event_id":"` + eventID + `"}`))
	signed := func(expires int64) string {
		return url.Values{"key_id": {keyID}, "expires": {strconv.FormatInt(expires, 10)}, "payload": {payload},
			"sig": {auth.SignLink(key, keyID, expires, payload, false)}}.Encode()
	}
	// A minute: the checks below take seconds on a loaded machine.
	exp := time.Now().Add(time.Minute).Unix()
	link := signed(exp)
	if strings.Contains(link, key) {
		t.Fatal("a signed link contains the key")
	}
	if status, ans := s.get(link); status != 200 {
		t.Fatalf("signed link: %d %v", status, ans)
	}
	p.next(5 * time.Second)
	// Any changed character breaks it.
	for i := 0; i < len(link); i++ {
		c := link[i]
		if c == '=' || c == '&' {
			continue
		}
		r := byte('A')
		if c == 'A' {
			r = 'B'
		}
		tampered := link[:i] + string(r) + link[i+1:]
		status, ans := s.get(tampered)
		if status == 200 {
			t.Fatalf("a link with character %d changed still works: %s", i, tampered)
		}
		// Its holder never had a key: the answer speaks of the link.
		if d, _ := ans["error"].(map[string]any)["detail"].(string); strings.Contains(tampered, "sig=") && !strings.HasPrefix(d, "invalid signed link") {
			t.Fatalf("a link with character %d changed: %d %q", i, status, d)
		}
	}
	p.none(100 * time.Millisecond)
	// Its expiry has one spelling: the same number written otherwise is
	// another link, whose signature does not hold.
	for _, respelled := range []string{"0" + strconv.FormatInt(exp, 10), "+" + strconv.FormatInt(exp, 10)} {
		q, _ := url.ParseQuery(link)
		q.Set("expires", respelled)
		status, ans := s.get(q.Encode())
		if d, _ := ans["error"].(map[string]any)["detail"].(string); status != 401 || !strings.HasPrefix(d, "invalid signed link") {
			t.Fatalf("expires=%s: %d %v", respelled, status, ans)
		}
	}
	p.none(100 * time.Millisecond)
	// A signed confirm link's signature covers confirm=1: without it, the
	// link fires nothing (another site could otherwise fire it by a plain GET,
	// without the click); with it, it asks, and its button fires it.
	confirmLink := url.Values{"key_id": {keyID}, "expires": {strconv.FormatInt(exp, 10)}, "payload": {payload},
		"sig": {auth.SignLink(key, keyID, exp, payload, true)}}
	if status, ans := s.get(confirmLink.Encode()); status != 401 {
		t.Fatalf("a confirm link without confirm=1: %d %v", status, ans)
	}
	for _, sig := range []string{confirmLink.Get("sig"), auth.SignLink(key, keyID, exp, payload, false)} { // and one made before the flag was signed
		confirmLink.Set("sig", sig)
		confirmLink.Set("confirm", "1")
		page := s.getPage(confirmLink.Encode())
		p.none(100 * time.Millisecond)
		form := url.Values{}
		for _, m := range regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`).FindAllStringSubmatch(page, -1) {
			form.Set(m[1], htmlUnescape(m[2]))
		}
		if resp, err := http.PostForm(s.base+"/public-api/integration/webhooks", form); err != nil || resp.StatusCode != 200 {
			t.Fatalf("confirming a signed link: %v %v (form %v)", resp, err, form)
		} else {
			resp.Body.Close()
		}
		p.next(5 * time.Second)
	}
	// After its expiry it fails: a link that worked a moment before.
	short := time.Now().Add(3 * time.Second).Unix()
	if status, ans := s.get(signed(short)); status != 200 {
		t.Fatalf("a signed link with seconds left: %d %v", status, ans)
	}
	p.next(5 * time.Second)
	time.Sleep(time.Until(time.Unix(short, 0)) + 50*time.Millisecond)
	status, ans := s.get(signed(short))
	wantError(t, "expired link", status, ans, 401, "unauthorized")
	if d := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(d, "expired") {
		t.Errorf("an expired link's detail %q does not say it expired", d)
	}

	// HEAD and link-preview agents fire nothing.
	plain := "api_key=" + key + "&payload=" + payload
	req, _ := http.NewRequest("HEAD", s.base+"/public-api/integration/webhooks?"+plain, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	for _, ua := range []string{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "facebookexternalhit/1.1", "TelegramBot (like TwitterBot)", "WhatsApp/2.23.20.0", "Mozilla/5.0 (compatible; Discordbot/2.0)"} {
		status, _ := s.get(plain, "User-Agent", ua)
		if status != 200 {
			t.Fatalf("preview %q: %d", ua, status)
		}
	}
	p.none(200 * time.Millisecond)

	// A page for a browser; JSON for a client that ranks JSON (or anything)
	// higher, or takes anything.
	for _, c := range []struct {
		accept string
		page   bool
	}{
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"application/json, text/html;q=0.5", false},
		{"text/html;q=0, application/json", false},
		{"*/*", false},
		{"text/html;q=0.5, */*", false},
		{"application/problem+json, text/html;q=0.9", false},
		{"text/html;Q=0", false},
	} {
		status, ans := s.get(plain, "Accept", c.accept)
		if status != 200 || (ans == nil) != c.page {
			t.Errorf("Accept %q: %d %v, want a page: %v", c.accept, status, ans, c.page)
		}
		p.next(5 * time.Second)
	}

	// A confirm link shows a page and fires only from its button's POST.
	req, _ = http.NewRequest("GET", s.base+"/public-api/integration/webhooks?"+plain+"&confirm=1", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="confirm"`) || !strings.Contains(string(page), "<main>") {
		t.Fatalf("confirm page (its content in a main landmark): %d %s", resp.StatusCode, page)
	}
	// No other site may frame it (a disguised click) or send its form elsewhere.
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "form-action 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("the confirm page can be framed: %v", resp.Header)
	}
	p.none(200 * time.Millisecond)
	form := url.Values{}
	for _, m := range regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`).FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	// site is the Sec-Fetch-Site a browser sends, or "origin:" and the
	// Origin alone, as browsers without it (or on plain HTTP) send.
	confirm := func(site string) int {
		req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin, ok := strings.CutPrefix(site, "origin:"); ok {
			req.Header.Set("Origin", origin)
		} else if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Another site's form does not fire it through a visitor's browser.
	for _, site := range []string{"cross-site", "same-site", "origin:https://evil.example"} {
		if status := confirm(site); status != http.StatusForbidden {
			t.Fatalf("a confirm form posted from a %s page: %d, want 403", site, status)
		}
	}
	p.none(200 * time.Millisecond)
	for _, site := range []string{"same-origin", "origin:" + s.base, ""} { // its own page; a client that is no browser
		if status := confirm(site); status != 200 {
			t.Fatalf("confirming (Sec-Fetch-Site %q): %d", site, status)
		}
		p.next(5 * time.Second)
	}
}

// getPage GETs the webhook with query as a browser would and returns the page.
func (s *server) getPage(query string) string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/public-api/integration/webhooks?"+query, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("GET ?%s: %d %s", query, resp.StatusCode, page)
	}
	return string(page)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&amp;", "&", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func TestRequestLogAndMetrics(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	scrape := s.metricsText
	metric := func(text, name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindStringSubmatch(text)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if resp, _ := http.Get(s.base + "/metrics"); resp.StatusCode != 401 {
		t.Fatalf("/metrics without the admin token: %d", resp.StatusCode)
	}
	before := scrape()
	if metric(before, "devicehooks_devices_online") != 1 || metric(before, "devicehooks_devices_registered") != 1 ||
		metric(before, "devicehooks_broker_connected") != 1 || metric(before, "devicehooks_mqtt_denied_total") != 0 {
		t.Fatalf("gauges:\n%s", before)
	}
	s.post(key, `{"event_id":"`+eventID+`"}`)
	cmd := p.next(5 * time.Second)
	// The open states are counted afresh (at most once a second); the
	// settled ones, most of what is kept, once a minute.
	for deadline := time.Now().Add(10 * time.Second); metric(scrape(), `devicehooks_commands{state="published"}`) != 1; {
		if time.Now().After(deadline) {
			t.Fatal("devicehooks_commands{state=\"published\"} did not reach 1")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.ack("devicehooks", cmd["id"].(string), "succeeded")
	s.post("dhk_wrong", `{"event_id":"`+eventID+`"}`)
	s.post(key, `{"event_id":"evt_missing"}`)

	var after string
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = scrape()
		if metric(after, `devicehooks_trigger_to_ack_seconds_count{status="succeeded"}`) == 1 &&
			metric(after, `devicehooks_commands{state="published"}`) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, want := range map[string]float64{
		`devicehooks_webhook_requests_total{code="success"}`:           1,
		`devicehooks_webhook_requests_total{code="unauthorized"}`:      1,
		`devicehooks_webhook_requests_total{code="unknown_event"}`:     1,
		`devicehooks_trigger_to_ack_seconds_count{status="succeeded"}`: 1,
		`devicehooks_trigger_to_publish_seconds_count`:                 1,
		`devicehooks_commands{state="published"}`:                      0,
	} {
		if got := metric(after, name) - metric(before, name); got != want {
			t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
	for _, st := range store.States {
		if !strings.Contains(after, `devicehooks_commands{state="`+st+`"}`) {
			t.Errorf("no devicehooks_commands for %s:\n%s", st, after)
		}
	}

	// Every call is in the request log, without secrets; filters work.
	var items []any
	deadline = time.Now().Add(5 * time.Second)
	for len(items) < 3 && time.Now().Before(deadline) {
		items = s.mustCall(200, "GET", "/api/v1/requests", nil)["items"].([]any)
		time.Sleep(50 * time.Millisecond)
	}
	if len(items) != 3 {
		t.Fatalf("request log: %v", items)
	}
	denied := s.mustCall(200, "GET", "/api/v1/requests?code=unauthorized", nil)
	if denied["total"] != float64(1) {
		t.Fatalf("filtered: %v", denied)
	}
	// What a refused call did not have is null, not left out (as in dispatches).
	rec := denied["items"].([]any)[0].(map[string]any)
	for _, f := range []string{"key_id", "key_prefix", "dispatch_id"} {
		if v, ok := rec[f]; !ok || v != nil {
			t.Errorf("a refused call's %s: %v (present: %v), want null", f, v, ok)
		}
	}
	// The event id it named is there, though its key was refused: an admin
	// looking into an integration's 401s sees which action it calls.
	if rec["event_id"] != eventID {
		t.Errorf("a refused call's event_id: %v, want %s", rec["event_id"], eventID)
	}
	for _, it := range items {
		line := fmt.Sprint(it)
		if strings.Contains(line, key) || strings.Contains(line, "dhk_wrong") {
			t.Fatalf("a key is in the request log: %s", line)
		}
	}
	ok := s.mustCall(200, "GET", "/api/v1/requests?code=success", nil)["items"].([]any)[0].(map[string]any)
	if ok["dispatch_id"] == "" || ok["key_prefix"] == "" || ok["source"] != "127.0.0.1" || ok["user_agent"] == "" {
		t.Fatalf("success record: %v", ok)
	}
	src := s.mustCall(200, "GET", "/api/v1/requests/sources", nil)["items"].([]any)
	if len(src) != 1 || src[0].(map[string]any)["calls"] != float64(3) || src[0].(map[string]any)["denied"] != float64(2) {
		t.Fatalf("top sources: %v", src)
	}
}

// An integrator who swaps the key and the event id sends the key as the event
// id: the request log, which admins read in the UI, keeps it masked.
func TestRequestLogKeepsNoKeySentAsTheEventID(t *testing.T) {
	s := startServer(t, Config{})
	_, key, eventID := setupLoadURL(t, s)
	status, body := s.post(eventID, `{"event_id":"`+key+`"}`)
	wantError(t, "the key and the event id swapped", status, body, http.StatusUnauthorized, "unauthorized")
	status, body = s.post(key, `{"event_id":"`+key+`"}`, "User-Agent", "x\u009b31m \u202eRTL")
	wantError(t, "the key as the event id", status, body, http.StatusNotFound, "unknown_event")
	testenv.WaitFor(t, 5*time.Second, "both calls in the request log", func() bool {
		return s.mustCall(http.StatusOK, "GET", "/api/v1/requests", nil)["total"] == float64(2)
	})
	for _, it := range s.mustCall(http.StatusOK, "GET", "/api/v1/requests", nil)["items"].([]any) {
		r := it.(map[string]any)
		if got, _ := r["event_id"].(string); strings.Contains(got, key[4:]) || !strings.HasPrefix(got, "dhk_") || !strings.HasSuffix(got, "…") {
			t.Errorf("a key sent as the event id is logged as %q, want it masked (dhk_xxxxxx…)", got)
		}
		// What would read as something else, in the UI or an admin's
		// terminal: a C1 control (an escape sequence's start) and a
		// bidirectional override.
		if ua := r["user_agent"].(string); strings.ContainsAny(ua, "\u009b\u202e") {
			t.Errorf("a user agent is logged as %q", ua)
		}
	}
}

func TestServerLimits(t *testing.T) {
	s := startServer(t, Config{MaxConcurrent: 1, ReadHeaderTimeout: 300 * time.Millisecond})
	s.createDevice("slow") // offline: a waiting call holds its slot
	_, key := s.createKey("k")
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "slow"}, nil)

	// Headers over the limit: 413 with the contract's body.
	status, ans := s.post(key, `{"event_id":"`+ev+`"}`, "X-Padding", strings.Repeat("p", 20<<10))
	wantError(t, "header over the limit", status, ans, 413, "too_large")
	if d := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(d, "headers") ||
		!strings.Contains(d, "large cookie or header") || strings.Contains(d, "goes in a POST body") {
		t.Errorf("the 413 for a POST's headers says: %q (a POST is told to look for a large header, not to use a POST)", d)
	}

	// One call in progress holds the only slot: the next gets 503 at once.
	held := make(chan int, 1)
	go func() {
		status, _ := s.post(key, `{"event_id":"`+ev+`"}`, "Prefer", "wait=3")
		held <- status
	}()
	// It holds the slot once its dispatch is written.
	testenv.WaitFor(t, 10*time.Second, "the waiting call's dispatch", func() bool {
		return len(s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches", nil)["items"].([]any)) == 1
	})
	status, ans = s.post(key, `{"event_id":"`+ev+`"}`)
	wantError(t, "concurrency cap", status, ans, 503, "unavailable")
	if status := <-held; status != http.StatusOK {
		t.Fatalf("the waiting call: %d", status)
	}

	// Clients that send their body slowly, or never, hold no slot: a call
	// whose body is in still gets through.
	for i := 0; i < 3; i++ {
		slow, err := net.Dial("tcp", s.app.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		fmt.Fprintf(slow, "POST /public-api/integration/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"x-webhook-apikey: %s\r\nContent-Length: 1000\r\n\r\n{", key)
	}
	time.Sleep(100 * time.Millisecond) // the server has read their headers
	if st, ans := s.post(key, `{"event_id":"`+ev+`"}`); st != http.StatusOK {
		t.Fatalf("a call beside three slow bodies: %d %v", st, ans)
	}

	// A client that never finishes its headers is cut off.
	conn, err := net.Dial("tcp", s.app.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /public-api/integration/webhooks HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadString('\n')
	if err == nil && time.Since(start) > 4*time.Second {
		t.Fatal("a slow client held its connection")
	}
	if time.Since(start) > 4*time.Second {
		t.Fatalf("slow client not cut off after %v", time.Since(start))
	}
}

// While every slot for a call waiting for acks is taken, a call that may not use
// its action is refused for that (403, final), not told to retry (503); a call
// that may is told to retry, or to call without a wait.
func TestWaitSlotsFull(t *testing.T) {
	s := startServer(t, Config{MaxConcurrent: 16}) // 8 slots for waiting calls
	s.createDevice("slow")                         // offline: a waiting call holds its slot
	_, key := s.createKey("k")
	target := map[string]any{"type": "device", "id": "slow"}
	ev := s.createAction("restart", target, nil)
	other := s.createAction("refresh_content", target, nil)
	var otherID string
	for _, a := range s.mustCall(http.StatusOK, "GET", "/api/v1/actions", nil)["items"].([]any) {
		if a := a.(map[string]any); a["event_id"] == other {
			otherID = a["id"].(string)
		}
	}
	scoped := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "scoped", "actions": []string{otherID}})["key"].(string)
	body := `{"event_id":"` + ev + `"}`

	var held sync.WaitGroup
	for range 8 {
		held.Go(func() { s.post(key, body, "Prefer", "wait=5") })
	}
	defer held.Wait()
	// Each waiting call has its dispatch once it holds its slot.
	testenv.WaitFor(t, 10*time.Second, "8 waiting calls", func() bool {
		return len(s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches", nil)["items"].([]any)) == 8
	})
	st, ans := s.post(scoped, body, "Prefer", "wait=5")
	wantError(t, "a key scoped to another action, with the wait slots full", st, ans, 403, "forbidden")
	st, ans = s.post(key, body, "Prefer", "wait=5")
	wantError(t, "a call that may wait, with the wait slots full", st, ans, 503, "unavailable")
}

// TestHostileTextOnPostgres sends what PostgreSQL cannot store (NUL, invalid
// UTF-8, text cut inside a character): the caller gets a 4xx, never a 500, and no
// batch of the request log or of acks is lost for everyone else.
func TestHostileTextOnPostgres(t *testing.T) {
	s := startServer(t, Config{DB: testenv.Postgres(t)})
	p, key, eventID := setupLoadURL(t, s)
	for _, body := range []string{`{"event_id":"evt\u0000x"}`, `{"event_id":"` + eventID + `","idempotency_key":"a\u0000b"}`} {
		status, ans := s.post(key, body)
		wantError(t, "hostile "+body, status, ans, 400, "bad_request")
	}
	status, _ := s.post(key, `{"event_id":"`+eventID+`"}`, "User-Agent", strings.Repeat("é", 99)+"\xff\xfe")
	if status != 200 {
		t.Fatal(status)
	}
	cmd := p.next(5 * time.Second)
	// An ack whose detail is cut mid-character at 500 bytes still settles.
	detail := strings.Repeat("a", 499) + "€"
	p.client.Publish("devicehooks/devices/lobby-1/acks", 1, false, `{"id":"`+cmd["id"].(string)+`","status":"failed","detail":"`+detail+`"}`).WaitTimeout(5 * time.Second)
	waitDispatch(t, s, cmd["dispatch_id"].(string), map[string]float64{"failed": 1})
	testenv.WaitFor(t, 5*time.Second, "all three calls in the request log", func() bool {
		_, out := s.call("GET", "/api/v1/requests", nil)
		return out["total"] == float64(3)
	})
	status, ans := s.call("POST", "/api/v1/devices", map[string]any{"id": "nul", "name": "bad\u0000name"})
	wantError(t, "device name with NUL", status, ans, 422, "invalid_params")
}

// TestRequestLogLimitsCallsWithoutAKey: calls without a valid API key cost the
// caller nothing, so a source's records of them are limited (a flood would fill
// the disk for the retention period); /metrics counts every one, and calls
// with a valid key are all recorded.
func TestRequestLogLimitsCallsWithoutAKey(t *testing.T) {
	s := startServer(t, Config{})
	_, key := s.createKey("k")
	const flood = 150
	for i := 0; i < flood; i++ {
		if status, _ := s.post("dhk_wrong", `{"event_id":"evt_x"}`); status != http.StatusUnauthorized {
			t.Fatalf("call %d: %d", i, status)
		}
	}
	for i := 0; i < 3; i++ {
		s.post(key, `{"event_id":"evt_missing"}`)
	}
	testenv.WaitFor(t, 5*time.Second, "the valid key's calls recorded", func() bool {
		return s.mustCall(200, "GET", "/api/v1/requests?code=unknown_event", nil)["total"] == float64(3)
	})
	denied := s.mustCall(200, "GET", "/api/v1/requests?code=unauthorized", nil)["total"].(float64)
	if denied < 60 || denied > 70 {
		t.Fatalf("%v of %d calls without a valid key recorded, want about 60 (the burst)", denied, flood)
	}
	if b := s.metricsText(); !strings.Contains(b, `devicehooks_webhook_requests_total{code="unauthorized"} 150`) {
		t.Fatalf("/metrics does not count every call:\n%s", b)
	}
	testenv.WaitFor(t, 5*time.Second, "the unrecorded calls logged as a count", func() bool {
		return strings.Contains(s.logs.String(), "were not recorded")
	})
}

// TestLinksAsMailAndChatLeaveThem: a link keeps working after what mail
// clients, chat apps and scripts do to it (wrapping, an unescaped '+', a full
// stop after it, HTML-escaped ampersands, a signature in standard base64),
// and what only looks ahead at it (a browser's prefetch, a fediverse or
// Matrix preview) fires nothing.
func TestLinksAsMailAndChatLeaveThem(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	keyID := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil)["items"].([]any)[0].(map[string]any)["id"].(string)
	// "~~~" (bits 011111100111111001111110) holds 111110 at every
	// alignment: a '-' in URL-safe base64 and a '+' in standard base64. Other
	// top-level fields are ignored.
	raw := []byte(`{"event_id":"` + eventID + `","x":"~~~"}`)
	urlSafe, std := base64.RawURLEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)
	if !strings.Contains(urlSafe, "-") || !strings.Contains(std, "+") {
		t.Fatalf("payloads %s and %s", urlSafe, std)
	}
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	sign := func(payload string) []byte {
		m := hmac.New(sha256.New, []byte(key))
		fmt.Fprintf(m, "devicehooks-link-v1\n%s\n%s\n%s", keyID, exp, payload)
		return m.Sum(nil)
	}
	signedQuery := func(payload, sig string) string {
		return "key_id=" + keyID + "&expires=" + exp + "&payload=" + payload + "&sig=" + sig
	}
	wrapped := urlSafe[:20] + "%0D%0A" + urlSafe[20:]
	rawSig := base64.RawURLEncoding.EncodeToString(sign(urlSafe))
	for _, c := range []struct{ name, query string }{
		{"a signed link wrapped inside its payload", signedQuery(wrapped, rawSig)},
		{"a signed link wrapped inside its signature", signedQuery(urlSafe, rawSig[:20]+"%0A"+rawSig[20:])},
		{"a signed link wrapped and joined with a space", signedQuery(urlSafe[:20]+"%20"+urlSafe[20:], rawSig)},
		{"a signed link with a full stop after it", signedQuery(urlSafe, rawSig) + "."},
		{"a signed link with '>' after it", signedQuery(urlSafe, rawSig) + "%3E"},
		{"a signature in padded standard base64 (PHP's base64_encode)",
			signedQuery(urlSafe, url.QueryEscape(base64.StdEncoding.EncodeToString(sign(urlSafe))))},
		{"a script's standard-base64 payload with its '+' unescaped",
			signedQuery(std, base64.RawURLEncoding.EncodeToString(sign(std)))},
		// base64 without -w0 breaks its lines, and the script signed that text.
		{"a script's payload signed with its line break",
			signedQuery(url.QueryEscape(urlSafe[:20]+"\n"+urlSafe[20:]), base64.RawURLEncoding.EncodeToString(sign(urlSafe[:20]+"\n"+urlSafe[20:])))},
		{"a signed link with HTML-escaped ampersands", strings.ReplaceAll(signedQuery(urlSafe, rawSig), "&", "&amp;")},
		{"a plain link with HTML-escaped ampersands", "api_key=" + key + "&amp;payload=" + urlSafe},
		{"a plain link wrapped and joined with a space", "api_key=" + key + "&payload=" + urlSafe[:20] + "%20" + urlSafe[20:]},
		{"a plain link with a full stop after it", "api_key=" + key + "&payload=" + urlSafe + "."},
	} {
		status, ans := s.get(c.query)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v\n?%s", c.name, status, ans, c.query)
		}
		checkLoadURL(t, p.next(5*time.Second), ans)
	}
	// Lenient reading lets no other link in: a changed signature still fails.
	other := []byte(rawSig)
	other[5] ^= 1
	if status, ans := s.get(signedQuery(urlSafe, string(other))); status != http.StatusUnauthorized {
		t.Fatalf("a changed signature: %d %v", status, ans)
	}

	// A browser's prefetch or prerender fires nothing, and its answer is no
	// 2xx, so that the browser asks again when the link is really opened.
	plain := "api_key=" + key + "&payload=" + urlSafe
	for _, h := range [][2]string{{"Sec-Purpose", "prefetch;prerender"}, {"Sec-Purpose", "prefetch"}, {"Purpose", "prefetch"}, {"X-Moz", "prefetch"}, {"X-Purpose", "preview"}} {
		req, _ := http.NewRequest("GET", s.base+"/public-api/integration/webhooks?"+plain, nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set(h[0], h[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %s: %d, Cache-Control %q", h[0], h[1], resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
	for _, ua := range []string{
		"http.rb/5.1.1 (Mastodon/4.2.10; +https://mastodon.social/)",
		"Synapse (bot; +https://github.com/matrix-org/synapse)",
		"Mozilla/5.0 (compatible; ZulipURLPreview/7.0; +https://zulip.com/)",
		"Nextcloud Server Crawler",
		// Outlook's preview, and Word or Excel fetching a clicked link
		// before they hand it to the browser (which then fires it).
		"Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
		"Microsoft Office Word 2014",
		"Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
	} {
		if status, _ := s.get(plain, "User-Agent", ua); status != http.StatusOK {
			t.Fatalf("preview %q: %d", ua, status)
		}
	}
	p.none(200 * time.Millisecond)

	// A confirm link asks a browser; an API client, which cannot click, hears
	// that it fired nothing, in JSON.
	for _, accept := range []string{"", "*/*", "application/json"} {
		status, ans := s.get(plain+"&confirm=1", "Accept", accept)
		wantError(t, "a confirm link for Accept "+accept, status, ans, http.StatusForbidden, "forbidden")
	}
	p.none(200 * time.Millisecond)
}

// TestWebhookBodiesAsClientsSendThem: what real HTTP clients send gets read,
// or a 400 that says what to change.
func TestWebhookBodiesAsClientsSendThem(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	sensor := s.createAction("sensor_event", map[string]any{"type": "device", "id": "lobby-1"}, nil)
	latin1 := fmt.Sprintf("{\"event_id\":%q,\"sensor_data\":{\"id\":\"T\xfcr 3\",\"event\":\"ge\xf6ffnet\",\"value\":\"M\xfcller \x80 5\"}}", sensor)

	// Windows PowerShell 5 sends Windows-1252, naming no charset or UTF-8:
	// text that is not UTF-8 is read as Windows-1252, whatever the label;
	// nothing is refused for its encoding (it was read before, with U+FFFD).
	for _, ctype := range []string{"application/json", "application/json; charset=utf-8", "application/json; charset=ISO-8859-1", "application/json; charset=utf-16"} {
		if status, ans := s.post(key, latin1, "Content-Type", ctype); status != http.StatusOK {
			t.Fatalf("a Windows-1252 body as %s: %d %v", ctype, status, ans)
		}
		data := p.next(5 * time.Second)["params"].(map[string]any)
		if data["id"] != "Tür 3" || data["event"] != "geöffnet" || data["value"] != "Müller € 5" {
			t.Fatalf("a Windows-1252 body as %s reached the player as %v", ctype, data)
		}
	}
	for _, c := range []struct{ name, ctype, body, detail string }{
		{"typographic quotes", "application/json", `{ “event_id”: “` + eventID + `” }`, "straight quotes"},
		{"a form", "application/x-www-form-urlencoded", "event_id=" + eventID, "the body is a form"},
		{"a form labelled JSON", "application/json", "event_id=" + eventID, "the body is a form"}, // PowerShell's -Body @{…} -ContentType application/json
		{"a multipart form", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"event_id\"\r\n\r\n" + eventID + "\r\n--x--\r\n", "the body is a form"},
	} {
		status, ans := s.post(key, c.body, "Content-Type", c.ctype)
		wantError(t, c.name, status, ans, http.StatusBadRequest, "bad_request")
		if d, _ := ans["error"].(map[string]any)["detail"].(string); !strings.Contains(d, c.detail) {
			t.Fatalf("%s: detail %q does not say %q", c.name, d, c.detail)
		}
	}
	p.none(200 * time.Millisecond)

	// Two different keys: which one is meant is not guessed.
	req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks", strings.NewReader(`{"event_id":"`+eventID+`"}`))
	req.Header.Add("x-webhook-apikey", "dhk_wrong")
	req.Header.Add("x-webhook-apikey", key)
	status, ans := s.do(req)
	wantError(t, "two keys", status, ans, http.StatusBadRequest, "bad_request")
	p.none(200 * time.Millisecond)

	// RFC 7240: preference names are case-insensitive, with spaces around
	// '=', and the answer says the wait was applied. No answer is cached.
	type answer struct {
		resp *http.Response
		body map[string]any
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks", strings.NewReader(`{"event_id":"`+eventID+`"}`))
		req.Header.Set("x-webhook-apikey", key)
		req.Header.Set("Prefer", "respond-async, Wait = 5")
		var a answer
		if a.resp, a.err = http.DefaultClient.Do(req); a.err == nil {
			_ = json.NewDecoder(a.resp.Body).Decode(&a.body)
			a.resp.Body.Close()
		}
		answered <- a
	}()
	p.ack("devicehooks", p.next(5 * time.Second)["id"].(string), "succeeded")
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	if resp := a.resp; resp.StatusCode != 200 || a.body["settled"] != true || resp.Header.Get("Preference-Applied") != "wait=5" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Prefer: Wait = 5: %d %v %v", resp.StatusCode, resp.Header, a.body)
	}
	// A preference is a hint: one that cannot be honoured is ignored (RFC
	// 7240), not a 400 that loses the trigger.
	status, ans, h := postHeader(t, s, key, `{"event_id":"`+eventID+`"}`, "Prefer", "wait=soon")
	if status != 200 || ans["settled"] != nil || h.Get("Preference-Applied") != "" {
		t.Fatalf("Prefer: wait=soon: %d %v %v", status, h, ans)
	}
	p.next(5 * time.Second)
}

// A key whose stored limits do not read (its row edited by hand) refuses
// every call rather than restricting nothing, and the API says why; an edit,
// which would save what it read, is refused.
func TestAKeyWhoseLimitsDoNotReadRefusesCalls(t *testing.T) {
	s := startServer(t, Config{})
	id, key := s.createKey("hand-edited")
	ev := s.createAction("refresh_content", map[string]any{"type": "all"}, nil)
	testenv.SQLiteSide(t, s.cfg.DB)(`UPDATE api_keys SET scope_actions = '["a1"' WHERE id = '` + id + `'`)
	status, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	wantError(t, "a call with the key", status, ans, http.StatusUnauthorized, "unauthorized")
	// A signed link made with it is refused too, at every call, and logged
	// once in 10 s however often it is called.
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"event_id":"` + ev + `"}`))
	exp := time.Now().Add(time.Hour).Unix()
	link := url.Values{"key_id": {id}, "expires": {strconv.FormatInt(exp, 10)}, "payload": {payload},
		"sig": {auth.SignLink(key, id, exp, payload, false)}}.Encode()
	for range 5 {
		status, ans = s.get(link)
		wantError(t, "its signed link", status, ans, http.StatusUnauthorized, "unauthorized")
	}
	if n := strings.Count(s.logs.String(), "its stored limits cannot be read"); n != 1 {
		t.Fatalf("%d log lines for a key refused 6 times in a row, want 1:\n%s", n, s.logs.String())
	}
	got := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys/"+id, nil)
	if why, _ := got["limits_error"].(string); !strings.Contains(why, "refuses every call") {
		t.Fatalf("limits_error %v", got["limits_error"])
	}
	if ok := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil)["items"].([]any); len(ok) != 1 {
		t.Fatalf("keys: %v", ok)
	}
	status, ans = s.call("PUT", "/api/v1/api-keys/"+id, map[string]any{"name": "renamed"})
	wantError(t, "an edit", status, ans, http.StatusConflict, "conflict")
}

// TestTrustedProxiesAppendTheClient: behind --trusted-proxies, the client is
// the last address a trusted proxy appended to X-Forwarded-For; an address
// the caller wrote before it, or in X-Real-IP, does not get a key past its
// ranges. Without the flag, X-Forwarded-For is not read at all.
func TestTrustedProxiesAppendTheClient(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprint("trusted ", trusted), func(t *testing.T) {
			cfg := Config{}
			if trusted {
				cfg.TrustedProxies = "127.0.0.1" // the test's calls come from there: the proxy
			}
			s := startServer(t, cfg)
			s.createDevice("lobby-1")
			ev := s.createAction("restart", map[string]any{"type": "device", "id": "lobby-1"}, nil)
			k := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "office", "cidrs": []string{"203.0.113.0/24"}})
			key := k["key"].(string)
			for _, tc := range []struct {
				headers []string
				want    int
			}{
				{[]string{"X-Forwarded-For", "203.0.113.5"}, map[bool]int{true: 200, false: 403}[trusted]},
				{[]string{"X-Forwarded-For", "203.0.113.5, 198.51.100.7"}, 403}, // the caller's own, then the proxy's
				{[]string{"X-Real-IP", "203.0.113.5"}, 403},
				{[]string{"X-Forwarded-For", "198.51.100.7:51234", "X-Real-IP", "203.0.113.5"}, 403},
				{nil, 403},
				{[]string{"X-Forwarded-For", "::ffff:203.0.113.6"}, map[bool]int{true: 200, false: 403}[trusted]}, // IPv4 as IPv6
			} {
				status, ans := s.post(key, `{"event_id":"`+ev+`"}`, tc.headers...)
				if status != tc.want {
					t.Errorf("%v: %d %v, want %d", tc.headers, status, ans, tc.want)
				}
			}
			if !trusted {
				return
			}
			// The request log keeps one caller as one source.
			testenv.WaitFor(t, 5*time.Second, "the calls in the request log", func() bool {
				return s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=success", nil)["total"] == float64(2)
			})
			var sources []string
			for _, it := range s.mustCall(http.StatusOK, "GET", "/api/v1/requests?code=success", nil)["items"].([]any) {
				sources = append(sources, it.(map[string]any)["source"].(string))
			}
			if slices.Sort(sources); fmt.Sprint(sources) != "[203.0.113.5 203.0.113.6]" {
				t.Errorf("the accepted calls' sources: %v", sources)
			}
		})
	}
}
