package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"devicehooks/store"
)

// The dispatches page, in a real Chromium against the real server, narrows
// to an action, a key and the dispatches that need attention: from a click
// on a row's action or key, from the actions and keys pages, and from the
// dashboard; each filter shows as a chip that removes it.
func TestUIDispatchFilters(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	seedDevices(t, s, "lobby-1")
	keyID, key := s.createKey("Signage CMS")
	action := func(name string) string {
		return s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
			"name": name, "function": "restart", "target": map[string]any{"type": "device", "id": "lobby-1"}})["id"].(string)
	}
	welcome, night := action("Welcome"), action("Night mode")
	// Three triggers, seeded as the writer would leave them once settled:
	// Welcome by the key (failed on the screen), Welcome from the UI's test
	// button, Night mode by the key.
	now := time.Now().UTC()
	var nds []*store.NewDispatch
	for i, d := range []struct{ id, action, name, key, state string }{
		{"d-welcome-failed", welcome, "Welcome", keyID, store.StateFailed},
		{"d-welcome-test", welcome, "Welcome", "", store.StateSucceeded},
		{"d-night", night, "Night mode", keyID, store.StateSucceeded},
	} {
		at := now.Add(time.Duration(i-3) * time.Minute)
		nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: d.id, ActionID: d.action, ActionName: d.name, EventID: "evt", Function: "restart",
			APIKeyID: d.key, Method: "POST", Targets: 1, CreatedAt: at}}
		if d.key != "" {
			nd.Dispatch.APIKeyPrefix = key[:12]
		} else {
			nd.Dispatch.Method = "TEST"
		}
		nd.Commands = []store.Command{{ID: d.id + "-c", DispatchID: d.id, DeviceID: "lobby-1", State: d.state, Function: "restart",
			Payload: "{}", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}}
		nds = append(nds, nd)
	}
	if _, err := s.app.store.WriteDispatches(context.Background(), nds); err != nil {
		t.Fatal(err)
	}
	b.signIn(uiUser, uiPassword)

	rows := func() []string {
		return evalIn[[]string](b, `[...document.querySelectorAll("#dispatches tbody tr")].map(r => r.dataset.dispatch)`)
	}
	chip := func(name string) string { return `#filter-chips .chip[data-filter="` + name + `"]` }
	want := func(what string, ids ...string) {
		t.Helper()
		if got := rows(); !slices.Equal(got, ids) {
			t.Fatalf("%s: rows %v, want %v (at %s)", what, got, ids, b.location())
		}
	}

	b.open("/dispatches")
	want("all", "d-night", "d-welcome-test", "d-welcome-failed")
	if b.has("#filter-chips") || b.has("#clear-filters") {
		t.Fatal("chips or 'Show all' without a filter")
	}

	// A click on a row's action shows that action's dispatches only.
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-dispatch="d-welcome-test"] a.action-filter`)))
	want("by action", "d-welcome-test", "d-welcome-failed")
	if got := b.text(chip("action") + " strong"); got != "Welcome" {
		t.Fatalf("action chip %q", got)
	}
	if title := evalIn[string](b, `document.title`); !strings.HasPrefix(title, "Dispatches: action Welcome") {
		t.Fatalf("title %q", title)
	}

	// The checkbox narrows further, keeping the action.
	b.submit(chromedp.Click(chromedp.ID("f-failed")), chromedp.Click(chromedp.ID("filter")))
	want("failed of the action", "d-welcome-failed")
	if u, _ := url.Parse(b.location()); u.Query().Get("action") != welcome || u.Query().Get("failed") != "true" {
		t.Fatalf("at %s", b.location())
	}
	if !evalIn[bool](b, `document.getElementById("f-failed").checked`) || b.text(chip("failed")+" strong") != "needs attention" {
		t.Fatalf("the failed filter is not shown: %q", b.text("#filter-chips"))
	}

	// Each chip's × removes its own filter only.
	b.submit(chromedp.Click(chromedp.CSS(chip("action") + " a.chip-remove")))
	want("failed", "d-welcome-failed")
	if u, _ := url.Parse(b.location()); u.RawQuery != "failed=true" {
		t.Fatalf("after removing the action: at %s", b.location())
	}
	b.submit(chromedp.Click(chromedp.ID("f-failed")), chromedp.Click(chromedp.ID("filter")))
	want("nothing after unticking", "d-night", "d-welcome-test", "d-welcome-failed")

	// A click on a key prefix: that key's dispatches (not the test button's).
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-dispatch="d-night"] a.key-filter`)))
	want("by key", "d-night", "d-welcome-failed")
	if got := b.text(chip("key") + " strong"); !strings.HasSuffix(got, "…") || !strings.HasPrefix(key, strings.TrimSuffix(got, "…")) {
		t.Fatalf("key chip %q", got)
	}
	b.submit(chromedp.Click(chromedp.ID("clear-filters")))
	want("shown all", "d-night", "d-welcome-test", "d-welcome-failed")

	// From the actions page and the keys page.
	b.open("/actions")
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-action="` + night + `"] a.dispatches-link`)))
	want("from the actions page", "d-night")
	b.open("/api-keys")
	b.submit(chromedp.Click(chromedp.CSS(`tr[data-key="` + keyID + `"] a.dispatches-link`)))
	want("from the keys page", "d-night", "d-welcome-failed")

	// From the dashboard: the failed dispatches of the last 24 hours.
	b.open("/")
	if got := b.text("#stat-failed"); got != "1" {
		t.Fatalf("failed stat %q", got)
	}
	b.submit(chromedp.Click(chromedp.ID("all-failed")))
	want("from the dashboard", "d-welcome-failed")
	if !b.has(chip("since")) || !b.has(chip("failed")) {
		t.Fatalf("chips %q", b.text("#filter-chips"))
	}

	// An action deleted since is named as its dispatches name it.
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/actions/"+night, nil)
	b.open("/dispatches?action=" + night)
	want("a deleted action", "d-night")
	if got, title := b.text(chip("action")+" strong"), evalIn[string](b, `document.querySelector('`+chip("action")+`').title`); got != "Night mode" || title != "a deleted action" {
		t.Fatalf("deleted action chip %q (%q)", got, title)
	}

	// A key revoked since is named by its prefix and name, as before.
	s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/api-keys/"+keyID, nil)
	b.open("/dispatches?key=" + keyID)
	want("a revoked key", "d-night", "d-welcome-failed")
	if got, title := b.text(chip("key")+" strong"), evalIn[string](b, `document.querySelector('`+chip("key")+`').title`); !strings.HasPrefix(key, strings.TrimSuffix(got, "…")) || title != "Signage CMS (revoked)" {
		t.Fatalf("revoked key chip %q (%q)", got, title)
	}

	// A filter that matches nothing says so; a time it cannot read is 400.
	b.open("/dispatches?action=no-such-action")
	if got := b.text(".empty"); got != "No dispatch matches these filters." {
		t.Fatalf("empty result says %q", got)
	}
	if st := b.open("/dispatches?since=yesterday"); st != http.StatusBadRequest {
		t.Fatalf("a bad time: status %d", st)
	}
}

// seededDispatch is a dispatch of one restart command to lobby-1, as the
// writer leaves it: its command is c-… for dispatch d-….
type seededDispatch struct {
	id, name, state  string
	created, expires time.Time // expires: an hour after created, if zero
	published        *time.Time
}

func seedDispatch(t *testing.T, s *server, d seededDispatch) {
	t.Helper()
	if d.expires.IsZero() {
		d.expires = d.created.Add(time.Hour)
	}
	nd := &store.NewDispatch{Dispatch: store.Dispatch{ID: d.id, ActionID: "a", ActionName: d.name, EventID: "evt", Function: "restart",
		Method: "TEST", Targets: 1, CreatedAt: d.created}}
	nd.Commands = []store.Command{{ID: "c-" + strings.TrimPrefix(d.id, "d-"), DispatchID: d.id, DeviceID: "lobby-1", State: d.state,
		Function: "restart", Payload: "{}", CreatedAt: d.created, ExpiresAt: d.expires, PublishedAt: d.published}}
	if _, err := s.app.store.WriteDispatches(context.Background(), []*store.NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
}

// The pages show times in the browser's time zone, to the same precision as
// the UTC the server writes (which a page without script shows): a dispatch's
// time, its commands' publish, ack and expiry times, also as the live refresh
// brings them, a list's tooltips and a time filter's chip.
func TestUITimesInTheBrowsersZone(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	if _, err := chromedp.Call(b.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"}); err != nil {
		t.Fatal(err)
	}
	kolkata := time.FixedZone("", 5*3600+30*60) // no daylight saving time
	full := func(at time.Time) string { return at.In(kolkata).Format("2006-01-02 15:04:05") + " GMT+5:30" }
	clock := func(at time.Time) string {
		local := at.In(kolkata)
		if y, m, d := time.Now().In(kolkata).Date(); local.Year() != y || local.Month() != m || local.Day() != d {
			return full(at)
		}
		return local.Format("15:04:05.000") + " GMT+5:30"
	}

	seedDevices(t, s, "lobby-1")
	created := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Millisecond)
	published, expires := created.Add(1234*time.Millisecond), created.Add(time.Hour)
	seedDispatch(t, s, seededDispatch{id: "d-zone", name: "Welcome", state: store.StatePublished, created: created, expires: expires, published: &published})
	ctx := context.Background()
	b.signIn(uiUser, uiPassword)

	b.open("/dispatches/d-zone")
	row := `tr[data-command="c-zone"]`
	for sel, want := range map[string]string{
		"#dispatch-when time": full(created),
		row + " .published":   clock(published),
		row + " .acked":       "—",
		row + " .detail":      "expires " + clock(expires),
	} {
		if got := b.text(sel); got != want {
			t.Errorf("%s shows %q, want %q", sel, got, want)
		}
	}

	// The ack, as the live refresh brings it. The publish time, which it does
	// not change, stays the element it was (not redrawn every second).
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('` + row + ` .published time').dataset.kept = "yes"`))
	acked := time.Now().UTC()
	if _, err := s.app.store.ApplyAcks(ctx, []store.Ack{{CommandID: "c-zone", DeviceID: "lobby-1", State: store.StateSucceeded, At: acked}}); err != nil {
		t.Fatal(err)
	}
	b.waitJS(`document.querySelector('`+row+`').dataset.state === "succeeded"`, 10*time.Second)
	if got, want := b.text(row+" .acked"), clock(acked.Truncate(time.Millisecond)); got != want {
		t.Errorf("the ack's time %q, want %q", got, want)
	}
	if got := b.text(row + " .detail"); got != "" {
		t.Errorf("the detail of the acked command %q", got)
	}
	if !b.has(row + ` .published time[data-kept="yes"]`) {
		t.Error("the refresh redrew the publish time it did not change")
	}

	// A list's relative times: the tooltip and the hidden text.
	b.open("/dispatches")
	at := `tr[data-dispatch="d-zone"] time`
	if got := evalIn[string](b, `document.querySelector('`+at+`').title`); got != full(created) {
		t.Errorf("tooltip %q, want %q", got, full(created))
	}
	if got := evalIn[string](b, `document.querySelector('`+at+` .sr-only').textContent`); got != " ("+full(created)+")" {
		t.Errorf("hidden text %q", got)
	}
	if got := evalIn[string](b, `document.querySelector('tr[data-dispatch="d-zone"] a[aria-label]').getAttribute("aria-label")`); !strings.HasPrefix(got, "Dispatch of Welcome, ") || !strings.HasSuffix(got, " ("+full(created)+")") {
		t.Errorf("the link's name %q", got)
	}

	// A time filter's chip.
	since := created.Add(-time.Hour)
	b.open("/dispatches?since=" + url.QueryEscape(since.Format(time.RFC3339)))
	if got := b.text(`#filter-chips .chip[data-filter="since"] strong`); got != full(since.Truncate(time.Second)) {
		t.Errorf("since chip %q, want %q", got, full(since))
	}
	if got, want := evalIn[string](b, `document.title`), "since "+since.Format("2006-01-02 15:04:05")+" UTC"; !strings.Contains(got, want) {
		t.Errorf("title %q, want it to say %q", got, want) // a tab's title stays in UTC
	}

	// When a signed link stops working, to the minute.
	s.createKey("CRM")
	action := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "Restart", "function": "restart", "target": map[string]any{"type": "device", "id": "lobby-1"}})["id"].(string)
	b.open("/actions/" + action + "/link")
	before := time.Now()
	b.submit(chromedp.Click(chromedp.ID("generate")))
	got := b.text(`#link-result time[data-local="minute"]`)
	if want := before.Add(24*time.Hour).In(kolkata).Format("2006-01-02 15:04") + " GMT+5:30"; got != want &&
		got != time.Now().Add(24*time.Hour).In(kolkata).Format("2006-01-02 15:04")+" GMT+5:30" {
		t.Errorf("the link stops working at %q, want %q", got, want)
	}
}

// A time of day shown without its date, today's, gets it at midnight when
// the page stays open, and a time of tomorrow loses its date. The browser's
// clock is set to six seconds before a midnight (UTC, its zone here).
func TestUIClocksGetTheirDateAtMidnight(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	seedDevices(t, s, "lobby-1")
	midnight := time.Date(2031, 1, 16, 0, 0, 0, 0, time.UTC)
	published, expires := midnight.Add(-10*time.Second), midnight.Add(30*time.Minute)
	seedDispatch(t, s, seededDispatch{id: "d-night", name: "Night", state: store.StatePublished, created: published, expires: expires, published: &published})
	b.signIn(uiUser, uiPassword)
	// Every page's clock starts at 23:59:54 and runs from there. What the
	// page shows once its script has run (at DOMContentLoaded, which comes
	// after it) is kept, with the page's time then.
	row := `tr[data-command="c-night"]`
	fake := fmt.Sprintf(`(() => {
		const Real = Date, off = %d - Real.now();
		class Fake extends Real {
			constructor(...a) { if (a.length === 0) { super(Real.now() + off); } else { super(...a); } }
			static now() { return Real.now() + off; }
		}
		window.Date = Fake;
		document.addEventListener("DOMContentLoaded", () => {
			const text = sel => document.querySelector(%q + " " + sel).textContent;
			window.before = {published: text(".published"), detail: text(".detail"), day: new Date().getUTCDate()};
		});
	})();`, midnight.Add(-6*time.Second).UnixMilli(), row)
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fake}); err != nil {
		t.Fatal(err)
	}

	b.open("/dispatches/d-night")
	before := evalIn[map[string]any](b, `window.before`)
	if before["day"] != float64(15) {
		t.Fatalf("the page took more than 6 s to load: it was past midnight already (%v)", before)
	}
	if before["published"] != "23:59:50.000 UTC" || before["detail"] != "expires 2031-01-16 00:30:00 UTC" {
		t.Fatalf("before midnight, the publish time showed %q and the expiry %q", before["published"], before["detail"])
	}
	b.waitJS(`document.querySelector('`+row+` .published').textContent === "2031-01-15 23:59:50 UTC"`, 15*time.Second)
	if got := b.text(row + " .detail"); got != "expires 00:30:00.000 UTC" {
		t.Errorf("after midnight, the expiry shows %q", got)
	}
}

// A list's relative times move on while the page stays open, counted from
// the server's clock, not the browser's: here the browser's is an hour
// behind (it would say "in the future"), then jumps five minutes.
func TestUIRelativeTimesMoveOn(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	seedDevices(t, s, "lobby-1")
	created := time.Now().UTC().Add(-30 * time.Second)
	seedDispatch(t, s, seededDispatch{id: "d-ago", name: "Welcome", state: store.StateSucceeded, created: created})
	b.signIn(uiUser, uiPassword)
	skewed := `(() => {
		const Real = Date;
		window.jump = -3600 * 1000;
		class Skewed extends Real {
			constructor(...a) { if (a.length === 0) { super(Real.now() + window.jump); } else { super(...a); } }
			static now() { return Real.now() + window.jump; }
		}
		window.Date = Skewed;
	})();`
	if _, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: skewed}); err != nil {
		t.Fatal(err)
	}

	b.open("/dispatches")
	at := `tr[data-dispatch="d-ago"] time`
	shown := `document.querySelector('` + at + `').firstChild.nodeValue`
	if got := evalIn[string](b, shown); !regexp.MustCompile(`^[3-5][0-9] s ago$`).MatchString(got) {
		t.Fatalf("the dispatch of 30 s ago shows %q", got)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`window.jump += 5 * 60 * 1000`))
	b.waitJS(shown+` === "5 min ago"`, 20*time.Second)
	label := evalIn[string](b, `document.querySelector('tr[data-dispatch="d-ago"] a[aria-label]').getAttribute("aria-label")`)
	if !strings.HasPrefix(label, "Dispatch of Welcome, 5 min ago (") {
		t.Errorf("the link's name %q", label)
	}
	if got := evalIn[string](b, `document.querySelector('`+at+` .sr-only').textContent`); !strings.HasPrefix(got, " ("+created.Format("2006-01-02")) {
		t.Errorf("the hidden text %q", got)
	}
}

// The dashboard follows what happens while it stays open: a new trigger
// shows in its lists and counts without a reload, with its time in the
// browser's zone; "Pause updates" holds it; a session that ends leads to
// sign-in, which says why.
func TestUIDashboardFollowsWhatHappens(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	if _, err := chromedp.Call(b.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"}); err != nil {
		t.Fatal(err)
	}
	seedDevices(t, s, "lobby-1")
	trigger := func(id, state string) {
		t.Helper()
		seedDispatch(t, s, seededDispatch{id: id, name: "Evacuate", state: state, created: time.Now().UTC()})
	}
	b.signIn(uiUser, uiPassword) // which leads to the dashboard (opening it again would race that load)
	b.wantPage("dashboard")
	if b.has(`#recent a[href="/dispatches/d-first"]`) || b.text("#stat-failed") != "0" {
		t.Fatalf("the dashboard before any trigger: failed %q", b.text("#stat-failed"))
	}
	b.do(chromedp.Evaluate[chromedp.Void](`window.stillThisPage = true`))

	trigger("d-first", store.StateFailed)
	b.waitJS(`document.querySelector('#recent a[href="/dispatches/d-first"]') !== null`, 15*time.Second)
	if !evalIn[bool](b, `window.stillThisPage === true`) {
		t.Fatal("the dashboard reloaded instead of updating in place")
	}
	if got := b.text("#stat-failed"); got != "1" {
		t.Errorf("failed count %q after a failed trigger", got)
	}
	if !b.has(`#attention a[href="/dispatches/d-first"]`) {
		t.Error("the failed trigger is not under Needs attention")
	}
	if got := b.text("#live-note"); got != "1 trigger needs attention (24 h)." {
		t.Errorf("the hidden note says %q", got)
	}
	if got := evalIn[string](b, `document.querySelector('#recent a[href="/dispatches/d-first"] time').title`); !strings.HasSuffix(got, " GMT+5:30") {
		t.Errorf("the new row's time %q is not in the browser's zone", got)
	}
	if b.has(`#recent .table-wrap[tabindex]`) {
		t.Error("the new table, which fits, is a Tab stop")
	}

	// A part is put in only when something in it changed: not for its
	// relative times ("just now", "10 s ago"), which the page moves on.
	rounds := func(n int) {
		t.Helper()
		for range n {
			at := evalIn[string](b, `document.querySelector("[data-live]").dataset.liveUpdated || ""`)
			b.waitJS(`(document.querySelector("[data-live]").dataset.liveUpdated || "") !== "`+at+`"`, 15*time.Second)
		}
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#recent table").dataset.kept = "yes"`))
	rounds(2)
	if !b.has(`#recent table[data-kept="yes"]`) {
		t.Error("the recent triggers were put in again though nothing in them changed")
	}

	// Not under the keyboard's focus: the part waits until focus leaves it.
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#recent a[href="/dispatches/d-first"]').focus()`))
	trigger("d-focus", store.StateSucceeded)
	b.waitJS(`document.getElementById("stat-last-hour").textContent === "2"`, 15*time.Second)
	if b.has(`#recent a[href="/dispatches/d-focus"]`) {
		t.Fatal("the recent triggers were put in under the keyboard's focus")
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	b.waitJS(`document.querySelector('#recent a[href="/dispatches/d-focus"]') !== null`, 15*time.Second)

	// Paused, it stays as it was; resumed, it catches up.
	b.do(chromedp.Click(chromedp.ID("pause-updates")))
	trigger("d-paused", store.StateSucceeded)
	skipped := evalIn[int](b, `Number(document.querySelector("[data-live]").dataset.liveSkipped || 0)`)
	b.waitJS(fmt.Sprintf(`Number(document.querySelector("[data-live]").dataset.liveSkipped || 0) > %d`, skipped), 15*time.Second)
	if b.has(`#recent a[href="/dispatches/d-paused"]`) {
		t.Fatal("the dashboard changed while its updates were paused")
	}
	b.do(chromedp.Click(chromedp.ID("pause-updates")))
	b.waitJS(`document.querySelector('#recent a[href="/dispatches/d-paused"]') !== null`, 15*time.Second)

	// The session ends (it expired, or another tab signed out).
	b.setCookie("devicehooks_session", "dhs_ended")
	b.do(chromedp.WaitVisible(`body[data-page="login"] #flash`)) // the page's next round loads it again
	if got := b.text("#flash"); !strings.Contains(got, "session has ended") {
		t.Errorf("the sign-in page says %q", got)
	}
}

// A page loaded again in the background (the dashboard's live refresh: a
// fetch, Sec-Fetch-Mode: cors) leaves the flash message, meant for the page
// another tab is about to show; a navigation shows it and clears it.
func TestABackgroundLoadLeavesTheFlash(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	session := signedInSession(t, s.base, uiUser, uiPassword)
	// A flash, as an ended session's page sets it.
	req, _ := http.NewRequest(http.MethodGet, s.base+"/", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: "dhs_ended"})
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var flash *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "devicehooks_flash" && c.Value != "" {
			flash = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || flash == nil {
		t.Fatalf("an ended session: %d, flash cookie %v", resp.StatusCode, flash)
	}
	load := func(mode string) (page string, cleared bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.base+"/", nil)
		req.AddCookie(session)
		req.AddCookie(flash)
		req.Header.Set("Sec-Fetch-Mode", mode)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the dashboard (%s): %d", mode, resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			cleared = cleared || c.Name == "devicehooks_flash" && c.MaxAge < 0
		}
		return string(body), cleared
	}
	if page, cleared := load("cors"); strings.Contains(page, "session has ended") || cleared {
		t.Fatalf("a background load took the flash (cleared %v)", cleared)
	}
	if page, cleared := load("navigate"); !strings.Contains(page, "session has ended") || !cleared {
		t.Fatalf("a navigation did not show the flash and clear it (cleared %v)", cleared)
	}
}

// The dashboard, left open, says when an external broker goes away (an
// alert) and when it is back (the hidden note).
func TestUIDashboardFollowsTheBroker(t *testing.T) {
	s, m, _ := startMosquittoWithRecipe(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	b.signIn(uiUser, uiPassword) // which leads to the dashboard: opening it again raced that load
	b.wantPage("dashboard")
	if b.has("#broker-down") {
		t.Fatal("the dashboard says the broker is down while it is up")
	}
	m.Kill()
	b.waitJS(`document.querySelector('#broker-down[role="alert"]') !== null`, 20*time.Second)
	m.Start()
	b.waitJS(`document.getElementById("broker-down") === null`, 30*time.Second)
	if got := b.text("#live-note"); got != "The MQTT broker is reachable again." {
		t.Errorf("the hidden note says %q", got)
	}
}
