package web

import (
	"bytes"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryTemplateIsRegistered fails when a page file is not in PageNames (it
// would never be parsed) or a registered page has no file.
func TestEveryTemplateIsRegistered(t *testing.T) {
	files, err := fs.Glob(uiFS, "ui/pages/*.html")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, f := range files {
		onDisk = append(onDisk, strings.TrimSuffix(path.Base(f), ".html"))
	}
	for _, name := range onDisk {
		if !slices.Contains(PageNames, name) {
			t.Errorf("ui/pages/%s.html is not registered in PageNames", name)
		}
	}
	for _, name := range PageNames {
		if !slices.Contains(onDisk, name) {
			t.Errorf("PageNames lists %q but ui/pages/%s.html does not exist", name, name)
		}
	}
	all, err := fs.Glob(uiFS, "ui/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if f != "ui/layout.html" && f != "ui/pages" {
			t.Errorf("%s is neither the layout nor a page, so it is never parsed", f)
		}
	}
}

func TestTemplatesParse(t *testing.T) {
	ts, err := uiTemplates()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != len(PageNames) {
		t.Fatalf("parsed %d pages, want %d", len(ts), len(PageNames))
	}
}

// TestRenderSimplePages renders the pages whose data is small, checking the
// layout's common parts.
func TestRenderSimplePages(t *testing.T) {
	var buf bytes.Buffer
	err := Render(&buf, "error", &View{Title: "Not found", User: "ada", CSRF: "tok<en>", Flash: "Saved <b>", Data: struct {
		Status int
		Detail string
	}{404, "no such object"}})
	if err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{
		`data-page="error"`, "no such object", "Saved &lt;b&gt;", `value="tok&lt;en&gt;"`,
		`/static/app.css?v=` + AssetVersion("app.css"), `<script src="/static/app.js?v=`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(html, "<style") || strings.Contains(html, "style=") || strings.Contains(html, "<script>") {
		t.Error("inline style or script would break the CSP")
	}
	if err := Render(&buf, "nope", &View{}); err == nil {
		t.Error("an unknown page rendered")
	}
}

// TestNoInlineStyleOrScript keeps the templates compatible with the CSP, which
// allows neither.
func TestNoInlineStyleOrScript(t *testing.T) {
	_ = fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(uiFS, p)
		s := string(b)
		for _, bad := range []string{"<style", " style=", "<script>", " onclick=", " onsubmit=", " onchange=", "javascript:"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
}

func TestAssetVersions(t *testing.T) {
	for _, name := range []string{"app.css", "app.js", "favicon.svg"} {
		if v := AssetVersion(name); len(v) != 12 {
			t.Errorf("AssetVersion(%q) = %q", name, v)
		}
	}
	if AssetVersion("missing.css") != "" {
		t.Error("a missing asset has a version")
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Second: "just now", 30 * time.Second: "30 s ago", 5 * time.Minute: "5 min ago",
		3 * time.Hour: "3 h ago", 72 * time.Hour: "3 days ago", -time.Minute: "in the future",
	} {
		if got := Ago(d); got != want {
			t.Errorf("Ago(%v) = %q, want %q", d, got, want)
		}
	}
}

// A Stamp's text is UTC, what a page shows without its script; its At is the
// instant for the browser, to the millisecond, whatever zone the time was in.
func TestStamps(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	at := time.Date(2025, 11, 24, 23, 11, 55, 603_900_000, berlin)
	today := time.Now()
	for name, c := range map[string]struct {
		got  Stamp
		text string
		iso  string
	}{
		"when":          {WhenStamp(at), "2025-11-24 22:11:55 UTC", "2025-11-24T22:11:55.603Z"},
		"minute":        {MinuteStamp(at), "2025-11-24 22:11 UTC", "2025-11-24T22:11:55.603Z"},
		"clock, a day":  {ClockStamp(&at), "2025-11-24 22:11:55 UTC", "2025-11-24T22:11:55.603Z"},
		"clock, today":  {ClockStamp(&today), today.UTC().Format("15:04:05.000") + " UTC", ISO(today)},
		"clock of none": {ClockStamp(nil), "—", ""},
	} {
		if c.got.Text != c.text || c.got.At != c.iso {
			t.Errorf("%s: %+v, want text %q at %q", name, c.got, c.text, c.iso)
		}
	}
}

func TestWebhookResultStillRenders(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderWebhookResult(&buf, WebhookResult{OK: true, DispatchID: "d1", Function: "load_url", Targets: 2}); err != nil {
		t.Fatal(err)
	}
	// Accepted, not "sent": the command is queued. The dispatch id links to its page.
	for _, want := range []string{`<a href="/dispatches/d1" id="dispatch-link"><code id="dispatch-id">d1</code></a>`, "Accepted: <code>load_url</code> for 2 devices"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("webhook page lacks %q: %s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "was sent to") {
		t.Errorf("webhook page says the command was sent: %s", buf.String())
	}
	// A refused signed link shows the error's detail, and what a signed link needs.
	buf.Reset()
	if err := RenderWebhookResult(&buf, WebhookResult{Code: "unauthorized", Detail: "the detail <b>", SignedLink: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `<p id="error-detail">the detail &lt;b&gt;</p>`) || !strings.Contains(buf.String(), `id="signed-link-hint"`) {
		t.Errorf("refused signed link page: %s", buf.String())
	}
}
