package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"
)

//go:embed ui static
var uiFS embed.FS

// PageNames lists every page of the admin UI. Each is ui/pages/<name>.html,
// rendered inside ui/layout.html; a test fails if a file and this list disagree.
var PageNames = []string{
	"login", "dashboard", "error", "confirm", "secret",
	"api_keys", "api_key_limits", "actions", "action_form", "action_link",
	"devices", "device", "device_form", "groups", "group_form", "dispatches", "dispatch", "requests", "settings",
}

// View is what every UI page is rendered with. The handler fills Data with the
// page's own values.
type View struct {
	Page       string            // set by Render: the page's name
	Title      string            // the document title and the page heading
	Nav        string            // which navigation entry is current
	User       string            // the signed-in username, "" on the sign-in page
	CSRF       string            // the session's form token
	Flash      string            // a one-time message from the previous request
	FlashError bool              // the flash reports a failure
	Error      string            // a message for the whole form
	Errors     map[string]string // field name -> message
	Data       any
	// Reload is where the page is loaded afresh when the browser shows it again
	// from its back/forward cache: its own address, or for a page shown in
	// answer to a form, the form's page.
	Reload string
	// Posted marks a page shown in answer to a form: the script makes its
	// history entry the form's page (Reload), loaded by GET.
	Posted bool

	focused bool // Autofocus has marked a field
}

// Autofocus marks the first invalid field of a form: the first call in a render
// returns the autofocus attribute and later calls nothing, so after a failed
// submit focus (and a screen reader) starts at the first error.
func (v *View) Autofocus() template.HTMLAttr {
	if v.focused {
		return ""
	}
	v.focused = true
	return "autofocus"
}

// Render writes a UI page. It renders into a buffer first, so a template error
// never sends half a page.
func Render(w io.Writer, page string, v *View) error {
	t, err := uiTemplates()
	if err != nil {
		return err
	}
	tmpl, ok := t[page]
	if !ok {
		return fmt.Errorf("web: no page %q", page)
	}
	v.Page = page
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("web: render %s: %w", page, err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// uiTemplates parses the layout and every page once, on first use.
var uiTemplates = sync.OnceValues(func() (map[string]*template.Template, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(uiFS, "ui/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	out := make(map[string]*template.Template, len(PageNames))
	for _, name := range PageNames {
		t, err := template.Must(base.Clone()).ParseFS(uiFS, "ui/pages/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
})

// Static is the file system of the static assets (app.css, app.js, ...).
func Static() fs.FS {
	sub, err := fs.Sub(uiFS, "static")
	if err != nil {
		panic(err) // "static" is embedded, so this cannot fail
	}
	return sub
}

// assetVersions maps each static file to a short hash of its content, so asset
// URLs change when the file does and can be cached for long.
var assetVersions = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(Static(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Static(), p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:6])
		return nil
	})
	return out
})

// AssetVersion returns the content hash of a static file, or "".
func AssetVersion(name string) string { return assetVersions()[name] }

var funcs = template.FuncMap{
	"asset": func(name string) string {
		return "/static/" + name + "?v=" + AssetVersion(name)
	},
	// fieldID turns a form field name ("p.load_url.url") into an element id.
	"fieldID": func(name string) string {
		return strings.NewReplacer(".", "-", "_", "-").Replace(name)
	},
	"iso":  isoTime,
	"when": whenText,
	"ago":  agoText,
	// renderedAt is the server's clock as it writes the page: app.js moves
	// the page's relative times ("5 min ago") on from it.
	"renderedAt": func() string { return ISO(time.Now()) },
	// whenStamp is an instant to the second, for the "stamp" template.
	"whenStamp": WhenStamp,
	// plural picks one or many by a count, an int or an int64.
	"plural": func(n any, one, many string) string {
		switch n := n.(type) {
		case int:
			return Plural(n, one, many)
		case int64:
			return Plural(int(n), one, many)
		}
		panic(fmt.Sprintf("plural of a %T", n)) // a template's mistake: fails its render
	},
}

// timeOf reads a time.Time or *time.Time; ok is false for nil or zero.
func timeOf(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t != nil && !t.IsZero() {
			return *t, true
		}
	}
	return time.Time{}, false
}

func isoTime(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return ""
	}
	return ISO(t)
}

// ISO is an instant as a <time datetime> gives it: UTC, to the millisecond.
func ISO(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Stamp is an instant as a page shows it. Text is in UTC: what a page shows
// without its script. app.js shows At (a <time datetime>) in the browser's
// time zone instead, to the same precision: Show is "full" (to the second),
// "minute", or "clock" (the time of day, to the millisecond, with the date
// unless it is today). A Stamp without At is Text alone ("—").
type Stamp struct {
	Text string `json:"text"`
	At   string `json:"at,omitempty"`
	Show string `json:"-"`
}

// WhenStamp is an instant to the second: "2026-11-24 22:11:55 UTC".
func WhenStamp(t time.Time) Stamp { return Stamp{Text: When(t), At: ISO(t), Show: "full"} }

// MinuteStamp is an instant to the minute: "2026-11-24 22:11 UTC".
func MinuteStamp(t time.Time) Stamp {
	return Stamp{Text: t.UTC().Format("2006-01-02 15:04") + " UTC", At: ISO(t), Show: "minute"}
}

// ClockStamp is an optional instant as a time of day, "22:11:55.603 UTC",
// with the date if it is not today; "—" for none.
func ClockStamp(t *time.Time) Stamp {
	if t == nil || t.IsZero() {
		return Stamp{Text: "—"}
	}
	u := t.UTC()
	text := u.Format("2006-01-02 15:04:05") + " UTC"
	if y, m, d := time.Now().UTC().Date(); u.Year() == y && u.Month() == m && u.Day() == d {
		text = u.Format("15:04:05.000") + " UTC"
	}
	return Stamp{Text: text, At: ISO(u), Show: "clock"}
}

// whenText formats an instant for people: UTC, to the second.
func whenText(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return "never"
	}
	return When(t)
}

// When formats an instant for people: UTC, to the second.
func When(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" }

// agoText says how long ago an instant was: "just now", "5 min ago", "3 h ago".
func agoText(v any) string {
	t, ok := timeOf(v)
	if !ok {
		return "never"
	}
	return Ago(time.Since(t))
}

// Ago says how long ago something was, roughly. app.js's ago takes the same
// steps, to move a page's relative times on, and its ages pattern matches
// every text of them: change all three together.
func Ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future"
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// Plural picks one or many by a count: "1 device", "2 devices".
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
