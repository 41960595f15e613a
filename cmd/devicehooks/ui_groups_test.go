package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"devicehooks/store"
)

// The group form in a large fleet, in a real Chromium against the real
// server: past pickerLimit devices, a group's edit page lists its members a
// page at a time and saves only what changed on that page.

// seedDevices adds devices straight to the store, named "Screen <id>": the
// API's credentials for each would make a fleet of thousands slow to build,
// and these tests need no device to connect.
func seedDevices(t *testing.T, s *server, ids ...string) {
	t.Helper()
	for _, id := range ids {
		now := time.Now().UTC()
		d := &store.Device{ID: id, Name: "Screen " + id, TokenHash: "seeded-" + id, MosquittoHash: "-", CreatedAt: now, UpdatedAt: now}
		if err := s.app.store.CreateDevice(context.Background(), d); err != nil {
			t.Fatalf("seed device %s: %v", id, err)
		}
	}
}

// deviceIDs returns ids prefix-0000 to prefix-(n-1), from from.
func deviceIDs(prefix string, from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, from+i)
	}
	return ids
}

// groupMembers returns a group's members as the API has them.
func groupMembers(s *server, id string) []string {
	s.t.Helper()
	var ids []string
	for _, m := range s.mustCall(http.StatusOK, "GET", "/api/v1/groups/"+id, nil)["device_ids"].([]any) {
		ids = append(ids, m.(string))
	}
	return ids
}

// sessionGet sends a GET with a session cookie, without following redirects.
func sessionGet(t *testing.T, s *server, session *http.Cookie, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.base+path, nil)
	if session != nil {
		req.AddCookie(session)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestUIGroupsInALargeFleet(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	b := newUIBrowser(t, s.base)
	use := func(t *testing.T) { b.t, s.t = t, t }
	b.signIn(uiUser, uiPassword)
	checked := func(id string) bool {
		return evalIn[bool](b, `document.querySelector('input[name="device_ids"][value="`+id+`"]').checked`)
	}

	t.Run("a small fleet keeps the form that lists every device", func(t *testing.T) {
		use(t)
		seedDevices(t, s, "few-1", "few-2", "few-3")
		g := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Few", "device_ids": []string{"few-1", "few-2"}})["id"].(string)
		t.Cleanup(func() { s.call("DELETE", "/api/v1/groups/"+g, nil) })
		b.open("/groups/" + g + "/edit")
		if n := evalIn[int](b, `document.querySelectorAll('#device-checklist input[name="device_ids"]').length`); n != 3 ||
			!checked("few-1") || !checked("few-2") || checked("few-3") {
			t.Fatalf("%d devices listed, or not ticked as the members", n)
		}
		if b.has("#add-devices") || b.has("#member-checklist") || b.has(`input[name="members"]`) {
			t.Fatal("a small fleet's form has the id field or the paged members")
		}
		// It saves the list as ticked.
		b.submit(chromedp.Click(chromedp.CSS(`input[value="few-1"]`)), chromedp.Click(chromedp.CSS(`input[value="few-3"]`)), chromedp.Click(chromedp.ID("save-group")))
		b.wantPage("groups")
		if got := fmt.Sprint(groupMembers(s, g)); got != "[few-2 few-3]" {
			t.Fatalf("members %s", got)
		}
	})

	// 610 devices, past the form's list of 500; a group of 250.
	seedDevices(t, s, deviceIDs("g", 0, 600)...)
	seedDevices(t, s, deviceIDs("z", 0, 10)...)
	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Big", "device_ids": deviceIDs("g", 0, 250)})["id"].(string)
	edit := "/groups/" + group + "/edit"
	listed := func() int {
		return evalIn[int](b, `document.querySelectorAll('#member-checklist input[name="device_ids"]').length`)
	}

	t.Run("the edit page lists a page of the members, not all of them", func(t *testing.T) {
		use(t)
		b.open(edit)
		if n := listed(); n != 100 || !checked("g-0000") || !checked("g-0099") || b.has(`input[name="device_ids"][value="g-0100"]`) {
			t.Fatalf("page 1 lists %d members, want g-0000 to g-0099 ticked", n)
		}
		if b.has(`input[name="device_ids"][value="g-0300"]`) || b.has("#device-checklist") || b.has("datalist") {
			t.Fatal("the page lists devices that are not members, or a list of every id")
		}
		if got := b.text("#member-count"); got != "(250 devices)" {
			t.Fatalf("member count %q", got)
		}
		if got := evalIn[string](b, `document.querySelector('a[rel="next"]').getAttribute("href")`); got != edit+"?page=2" {
			t.Fatalf("next page link %q", got)
		}
		// A page's size does not grow with the group.
		_, body := sessionGet(t, s, b.cookie(), edit)
		if len(body) > 40<<10 {
			t.Fatalf("the edit page is %d bytes", len(body))
		}
		// The search finds members by id or name, paged as well.
		b.submit(chromedp.SetValue(chromedp.ID("members-q"), "SCREEN g-012"), chromedp.Click(chromedp.ID("find-members-button")))
		if n := listed(); n != 10 || !checked("g-0120") || !checked("g-0129") {
			t.Fatalf("the search lists %d members", n)
		}
		if got := b.text("#members-filter"); !strings.Contains(got, "“SCREEN g-012” (10)") {
			t.Fatalf("filter note %q", got)
		}
		b.open(edit + "?q=g-05")
		if got := b.text("#no-members"); !strings.Contains(got, "No member's id or name contains “g-05”") {
			t.Fatalf("a search of no member says %q", got)
		}
	})

	t.Run("unticking a member on page 2 removes only it", func(t *testing.T) {
		use(t)
		b.open(edit)
		b.submit(chromedp.Click(chromedp.CSS(`a[rel="next"]`)))
		if n := listed(); n != 100 || !checked("g-0100") || !checked("g-0199") {
			t.Fatalf("page 2 lists %d members", n)
		}
		if got := evalIn[string](b, `document.title`); !strings.Contains(got, "(page 2)") {
			t.Fatalf("title %q", got)
		}
		// Leaving the page with a change not saved asks first (the search
		// box is not a change); saving does not.
		leavingAsks := func() bool {
			return evalIn[bool](b, `(e => (window.dispatchEvent(e), e.defaultPrevented))(new Event("beforeunload", {cancelable: true}))`)
		}
		b.do(chromedp.SendKeys(chromedp.ID("members-q"), "g-01"))
		if leavingAsks() {
			t.Fatal("leaving asks before anything changed")
		}
		b.do(chromedp.Click(chromedp.CSS(`input[name="device_ids"][value="g-0150"]`)))
		if !leavingAsks() {
			t.Fatal("leaving with a member unticked does not ask")
		}
		// The page's first pageshow comes at its load event, which a quick
		// change, or a quick save, can come before: it undoes neither (a
		// save on a loaded machine asked "Leave site?" and went nowhere).
		evalIn[bool](b, `window.dispatchEvent(new PageTransitionEvent("pageshow", {persisted: false}))`)
		if !leavingAsks() {
			t.Fatal("a first pageshow after the change forgot it")
		}
		b.submit(chromedp.Click(chromedp.ID("save-group")))
		// Back on page 2, to go on from there.
		b.wantPage("group_form")
		if u, _ := url.Parse(b.location()); u.Query().Get("page") != "2" || !strings.HasPrefix(b.text("#flash"), "Saved the group") {
			t.Fatalf("after saving page 2: at %s, %q", b.location(), b.text("#flash"))
		}
		got := groupMembers(s, group)
		if len(got) != 249 || slices.Contains(got, "g-0150") || !slices.Contains(got, "g-0000") || !slices.Contains(got, "g-0249") {
			t.Fatalf("%d members after unticking g-0150 (in: %v)", len(got), slices.Contains(got, "g-0150"))
		}
	})

	t.Run("ids added in the text area; an unknown one is refused at the field", func(t *testing.T) {
		use(t)
		b.open(edit)
		st := b.submit(
			chromedp.SendKeys(chromedp.ID("add-devices"), "g-0300\ng-0301, no-such-screen"),
			chromedp.Click(chromedp.ID("save-group")),
		)
		if st != http.StatusUnprocessableEntity || !strings.Contains(b.text("#err-add-devices"), "no-such-screen") {
			t.Fatalf("an unknown id: status %d", st)
		}
		if !evalIn[bool](b, `(f => f.getAttribute("aria-invalid") === "true" && document.activeElement === f &&
				f.getAttribute("aria-describedby").split(" ").includes("err-add-devices"))(document.getElementById("add-devices"))`) {
			t.Fatal("the id field is not marked invalid, described by its error and focused")
		}
		if got := evalIn[string](b, `document.getElementById("add-devices").value`); got != "g-0300\ng-0301, no-such-screen" {
			t.Fatalf("the typed ids are lost: %q", got)
		}
		if n := len(groupMembers(s, group)); n != 249 {
			t.Fatalf("a refused save changed the members: %d", n)
		}
		// What it holds is not saved: leaving asks first.
		if !evalIn[bool](b, `(e => (window.dispatchEvent(e), e.defaultPrevented))(new Event("beforeunload", {cancelable: true}))`) {
			t.Fatal("leaving a form whose save was refused does not ask")
		}
		// The form comes back as sent: the same page of members, ticked.
		if n := listed(); n != 100 || !checked("g-0000") {
			t.Fatalf("shown again with %d members", n)
		}
		b.submit(chromedp.SetValue(chromedp.ID("add-devices"), "g-0300\ng-0301 g-0302,g-0000"), chromedp.Click(chromedp.ID("save-group")))
		b.wantPage("group_form")
		got := groupMembers(s, group)
		if len(got) != 252 || !slices.Contains(got, "g-0302") || !slices.Contains(got, "g-0000") {
			t.Fatalf("%d members after adding three", len(got))
		}
	})

	t.Run("suggestions as an id is typed", func(t *testing.T) {
		use(t)
		session := b.cookie()
		suggest := func(query string) []string {
			t.Helper()
			resp, body := sessionGet(t, s, session, "/devices/suggest?"+query)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("suggest %s: %d, Cache-Control %q", query, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
			var out struct{ Devices []struct{ ID, Name string } }
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("suggest %s: %v: %s", query, err, body)
			}
			var ids []string
			for _, d := range out.Devices {
				ids = append(ids, d.ID)
			}
			return ids
		}
		// At most 20, those whose id starts with the text first; a
		// group's members are left out.
		if got := suggest("q=g-02"); len(got) != 20 || got[0] != "g-0200" {
			t.Fatalf("g-02: %v", got)
		}
		if got := suggest("q=g-02&not_in_group=" + group); len(got) != 20 || got[0] != "g-0250" {
			t.Fatalf("g-02 outside the group: %v", got)
		}
		if got := fmt.Sprint(suggest("q=0599")); got != "[g-0599]" {
			t.Fatalf("0599: %s", got)
		}
		if got := fmt.Sprint(suggest("q=screen+Z-0003")); got != "[z-0003]" { // by name, any case
			t.Fatalf("screen Z-0003: %s", got)
		}
		if got := suggest("q=%25"); len(got) != 0 { // a LIKE wildcard is a character
			t.Fatalf("%%: %v", got)
		}
		// Signed out, it answers with the way to sign in, not with devices.
		if resp, body := sessionGet(t, s, nil, "/devices/suggest?q=g-02"); resp.StatusCode != http.StatusSeeOther ||
			!strings.HasPrefix(resp.Header.Get("Location"), "/login?") || strings.Contains(string(body), `"devices"`) {
			t.Fatalf("signed out: %d to %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}

		// In the form: typing shows them, Down goes to them, one picked
		// replaces the id being typed.
		b.open(edit)
		b.do(chromedp.SendKeys(chromedp.ID("add-devices"), "g-0301, z-00"))
		b.waitJS(`document.querySelectorAll("#add-devices-suggestions button").length === 10`, 5*time.Second)
		b.do(chromedp.SendKeys(chromedp.ID("add-devices"), kb.ArrowDown+kb.ArrowDown))
		if got := evalIn[string](b, `document.activeElement.dataset.id`); got != "z-0001" {
			t.Fatalf("Down twice is on %q", got)
		}
		b.do(chromedp.SetValue(chromedp.ID("add-devices"), "g-0301, "), chromedp.SendKeys(chromedp.ID("add-devices"), "g-05"))
		b.waitJS(`document.querySelectorAll("#add-devices-suggestions button").length === 20`, 5*time.Second)
		b.do(chromedp.Click(chromedp.CSS(`#add-devices-suggestions button[data-id="g-0507"]`)))
		if got := evalIn[string](b, `document.getElementById("add-devices").value`); got != "g-0301, g-0507, " {
			t.Fatalf("after picking: %q", got)
		}
		if !evalIn[bool](b, `document.getElementById("add-devices-suggestions").hidden`) {
			t.Fatal("the suggestions stay after one is picked")
		}
		b.submit(chromedp.Click(chromedp.ID("save-group")))
		b.wantPage("group_form")
		if got := groupMembers(s, group); len(got) != 253 || !slices.Contains(got, "g-0507") {
			t.Fatalf("%d members after adding a suggestion", len(got))
		}
	})

	t.Run("a change made elsewhere meanwhile is not undone; a name changed elsewhere is", func(t *testing.T) {
		use(t)
		b.open(edit)
		// Elsewhere: g-0400 joins, g-0249 (not on this page) leaves.
		now := groupMembers(s, group)
		now = append(slices.DeleteFunc(now, func(id string) bool { return id == "g-0249" }), "g-0400")
		s.mustCall(http.StatusNoContent, "PUT", "/api/v1/groups/"+group, map[string]any{"name": "Big", "device_ids": now})
		b.submit(chromedp.Click(chromedp.CSS(`input[name="device_ids"][value="g-0001"]`)), chromedp.Click(chromedp.ID("save-group")))
		b.wantPage("group_form")
		got := groupMembers(s, group)
		if len(got) != 252 || !slices.Contains(got, "g-0400") || slices.Contains(got, "g-0249") || slices.Contains(got, "g-0001") {
			t.Fatalf("%d members: g-0400 in %v, g-0249 in %v, g-0001 in %v", len(got),
				slices.Contains(got, "g-0400"), slices.Contains(got, "g-0249"), slices.Contains(got, "g-0001"))
		}

		// A rename elsewhere: the form's save would undo it, so it is
		// refused, and says what is saved now; the form stays as sent.
		b.open(edit)
		s.mustCall(http.StatusNoContent, "PUT", "/api/v1/groups/"+group, map[string]any{"name": "Renamed elsewhere"})
		st := b.submit(chromedp.Click(chromedp.CSS(`input[name="device_ids"][value="g-0002"]`)), chromedp.Click(chromedp.ID("save-group")))
		if st != http.StatusConflict || !strings.Contains(b.text("#form-error"), "It is now “Renamed elsewhere” with 252 devices") {
			t.Fatalf("a stale name: %d", st)
		}
		if !slices.Contains(groupMembers(s, group), "g-0002") || checked("g-0002") || !checked("g-0003") {
			t.Fatal("a refused save changed the members, or the form is not shown as sent")
		}
		b.submit(chromedp.Click(chromedp.ID("save-group"))) // knowingly
		b.wantPage("group_form")
		g := s.mustCall(http.StatusOK, "GET", "/api/v1/groups/"+group, nil)
		if g["name"] != "Big" || len(g["device_ids"].([]any)) != 251 {
			t.Fatalf("the second save: %v with %d members", g["name"], len(g["device_ids"].([]any)))
		}
	})
}

// TestGroupEditPageAtScale: a group of 9,000 of 10,000 devices, whose edit
// page once carried a checkbox for each member and every other id (1.5 MB).
func TestGroupEditPageAtScale(t *testing.T) {
	s := startServer(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	ids := deviceIDs("screen", 0, 10000)
	seedDevices(t, s, ids...)
	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "Nine thousand", "device_ids": ids[:9000]})["id"].(string)
	var session *http.Cookie
	for _, c := range postSignIn(t, s.base, uiUser, uiPassword).Cookies() {
		if c.Name == "devicehooks_session" {
			session = c
		}
	}
	resp, body := sessionGet(t, s, session, "/groups/"+group+"/edit?page=90")
	if resp.StatusCode != http.StatusOK || len(body) > 40<<10 {
		t.Fatalf("the last page of members: %d, %d bytes", resp.StatusCode, len(body))
	}
	if n := strings.Count(string(body), `type="checkbox"`); n != 100 || !strings.Contains(string(body), `value="screen-8999"`) {
		t.Fatalf("%d checkboxes on the last page", n)
	}
}
