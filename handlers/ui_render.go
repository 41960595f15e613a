package handlers

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/web"
)

// render writes a UI page with the signed-in user, the form token and any flash
// message filled in.
func (u *ui) render(c *gin.Context, status int, page string, v *web.View) {
	if acc := account(c); acc != nil {
		v.User = acc.User.Username
		v.CSRF = u.Users.CSRFToken(c.GetString(ctxSession))
	}
	// A page loaded again in the background (the dashboard's live refresh:
	// a fetch, not a navigation) leaves the flash to the page it was set for,
	// in this tab or another.
	if mode := c.GetHeader("Sec-Fetch-Mode"); v.Flash == "" && (mode == "" || mode == "navigate") {
		v.Flash, v.FlashError = u.takeFlash(c)
	}
	if c.FullPath() != "" { // a page of ours, not the "Not found" page of any path
		reload := c.Request.URL.RequestURI()
		if c.Request.Method != http.MethodGet {
			reload = formPage(c.FullPath(), c.Request.URL.Path, c.Param("id"))
			v.Posted = true
		}
		v.Reload = safeNext(reload) // a path on this site, never "//elsewhere"
	}
	var buf bytes.Buffer
	if err := web.Render(&buf, page, v); err != nil {
		u.Log.Error("ui: render", "page", page, "err", err)
		c.String(http.StatusInternalServerError, "internal error; see the server log")
		c.Abort()
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// errorView is the error page's data.
type errorView struct {
	Status int
	Detail string
}

// fail shows an error page with the status the error's code maps to; server-side
// failures are logged and their text is not shown.
func (u *ui) fail(c *gin.Context, err error) {
	status, e := statusFor(err)
	logFailure(c, u.Log, status, err)
	title := map[int]string{
		http.StatusNotFound: "Not found", http.StatusForbidden: "Refused", http.StatusConflict: "Conflict",
		http.StatusUnprocessableEntity: "Invalid input", http.StatusBadRequest: "Bad request",
		http.StatusRequestEntityTooLarge: "Too large", http.StatusMethodNotAllowed: "Not a page",
	}[status]
	if title == "" {
		title = "Something went wrong"
	}
	u.render(c, status, "error", &web.View{Title: title, Data: errorView{Status: status, Detail: e.Detail}})
	c.Abort()
}

// redirect ends a successful form post: POST-redirect-GET with a flash message.
func (u *ui) redirect(c *gin.Context, to, flash string) {
	if flash != "" {
		u.setFlash(c, flash, false)
	}
	c.Redirect(http.StatusSeeOther, to)
}

// redirectError ends a failed form post that has no form to show again.
func (u *ui) redirectError(c *gin.Context, to string, err error) {
	status, e := statusFor(err)
	if status >= http.StatusInternalServerError {
		u.fail(c, err)
		return
	}
	u.setFlash(c, e.Detail, true)
	c.Redirect(http.StatusSeeOther, to)
}

// setFlash keeps a message for the next page in a short-lived signed cookie.
func (u *ui) setFlash(c *gin.Context, msg string, isError bool) {
	kind := "i"
	if isError {
		kind = "e"
	}
	val := kind + base64.RawURLEncoding.EncodeToString([]byte(msg))
	http.SetCookie(c.Writer, &http.Cookie{
		Name: u.flashCookie(), Value: val + "." + u.Users.Sign("flash", val), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// takeFlash reads and clears the flash message.
func (u *ui) takeFlash(c *gin.Context) (string, bool) {
	raw, err := c.Cookie(u.flashCookie())
	if err != nil || raw == "" {
		return "", false
	}
	u.clearCookie(c, u.flashCookie())
	val, sig, ok := strings.Cut(raw, ".")
	if !ok || len(val) < 1 || !u.Users.Verify("flash", val, sig) {
		return "", false
	}
	msg, err := base64.RawURLEncoding.DecodeString(val[1:])
	if err != nil {
		return "", false
	}
	return string(msg), val[0] == 'e'
}

// Said when what a page or a form names was deleted meanwhile (a stale tab, a
// form sent twice), instead of "no such object".
const (
	keyGone    = "This API key no longer exists (already revoked?)."
	deviceGone = "This device no longer exists (already deleted?)."
	groupGone  = "This group no longer exists (already deleted?)."
	actionGone = "This action no longer exists (already deleted?)."
	tokenGone  = "This admin token no longer exists (already revoked?)."
	// A dispatch is deleted by the sweep, not by an admin.
	dispatchGone = "There is no such dispatch: its id is wrong, or it was settled longer ago than the server keeps dispatches (--dispatch-days) and removed."
)

// gone says what a "not found" error means on a page: msg, one of the above.
func gone(err error, msg string) error {
	if asError(err).Code == actions.CodeNotFound {
		return actions.Errorf(actions.CodeNotFound, "%s", msg)
	}
	return err
}

// editVersion is a digest of what an edit form shows of a stored record. The
// form carries it back (its "version" field), so that saving a form opened
// before someone else saved the record is noticed instead of silently undoing
// their change. A digest of the content, not a timestamp: a change undone
// again is no conflict, and PostgreSQL's microseconds cannot make one.
func editVersion(shown any) string {
	b, err := json.Marshal(shown)
	if err != nil {
		panic(err) // the forms' own types: always encodable
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// errStale is what an edit's callback returns when the record's version is no
// longer the one the form was opened with.
var errStale = errors.New("changed since the form was opened")

// staleMessage says that a record (what: "action") was saved by someone else
// while its form was open, and what it is now.
func staleMessage(what, now string) string {
	return "Someone else saved this " + what + " after you opened this form. It is now " + now +
		". Your changes below are not saved: save again to replace that version with them, or reload the page to start from it."
}

// stale reports whether a posted form was opened on another version of the
// record than now. A form without a version (one opened before an upgrade)
// saves as before.
func stale(posted, now string) bool { return posted != "" && posted != now }

// form reads a trimmed form field.
func form(c *gin.Context, name string) string { return strings.TrimSpace(c.PostForm(name)) }

// fieldErrors turns a validation error (or several, joined) into messages next
// to their fields, the first for each field; names maps the domain's field
// names to the form's, and other errors stay whole-form.
func fieldErrors(err error, names func(string) string) (map[string]string, string) {
	errs := map[string]string{}
	for _, one := range flatten(err) {
		var e *actions.Error
		if errors.As(one, &e) && e.Code == actions.CodeInvalidParams && e.Field != "" {
			if f := names(e.Field); errs[f] == "" {
				errs[f] = e.Detail
			}
		}
	}
	switch len(errs) {
	case 0:
		return nil, asError(err).Detail
	case 1:
		return errs, "Please correct the marked field."
	}
	return errs, "Please correct the marked fields."
}

// flatten lists the errors joined in err (errors.Join), or err alone.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

// isUserError tells input errors (shown on the form) from server failures.
// A server failure joined with input errors is a server failure: the form
// would show the input errors and hide it.
func isUserError(err error) bool {
	for _, one := range flatten(err) {
		if status, _ := statusFor(one); status >= http.StatusInternalServerError {
			return false
		}
	}
	return true
}

// confirmView is the confirmation page shown before a deletion or a rotation.
type confirmView struct {
	Message string
	Detail  string
	Note    string            // a warning, such as the API keys scoped to what is deleted
	Action  string            // where the confirming form posts
	Fields  map[string]string // posted with it, as the form before asked
	Button  string
	Cancel  string
	Danger  bool
	// Blocked lists what keeps the change from being made (the actions that
	// target a device): the page then says so and offers no button.
	Blocked []confirmLink
}

// confirmLink is a link on a confirmation page, with a few words after it.
type confirmLink struct{ Text, Href, Note string }

func (u *ui) confirm(c *gin.Context, title, nav string, v confirmView) {
	u.render(c, http.StatusOK, "confirm", &web.View{Title: title, Nav: nav, Data: v})
}

// secretView shows a secret once (a new key or token), with a copy button.
type secretView struct {
	Intro   string
	Label   string
	Value   string
	Note    string
	Details [][2]string // label, value pairs shown under the secret
	Back    string
	BackTo  string
	Gone    string // set instead of Value when the page is opened again
}

// The pages that show a new secret once, after the POST that made it.
const (
	apiKeySecretPath     = "/api-keys/secret"
	deviceSecretPath     = "/devices/secret"
	adminTokenSecretPath = "/settings/tokens/secret"
)

// secretPages says, for each of them, where it belongs and what to do when the
// secret is no longer there to show.
var secretPages = map[string]struct{ Nav, Gone, Back, BackTo string }{
	apiKeySecretPath: {"api_keys", "This page shows a new secret once; opened again, it shows nothing and changes nothing. " +
		"If you did not see the key, reveal it again from the API keys page.", "Back to API keys", "/api-keys"},
	deviceSecretPath: {"devices", "This page shows a new secret once; opened again, it shows nothing and changes nothing. " +
		"If you did not see the token, rotate the device's token again from the devices page.", "Back to devices", "/devices"},
	adminTokenSecretPath: {"settings", "This page shows a new secret once; opened again, it shows nothing and changes nothing. " +
		"If you did not see the token, revoke it and create a new one.", "Back to settings", "/settings"},
}

// secretCookieAge is how long a new secret waits for its page.
const secretCookieAge = 60 * time.Second

// sealedSecret is what the secret cookie carries.
type sealedSecret struct {
	Title   string     `json:"title"`
	View    secretView `json:"view"`
	Expires int64      `json:"exp"`
}

// showSecret ends a POST that made a secret (POST-redirect-GET): the page at path
// shows it, once. The secret travels in a cookie for that path only, HttpOnly,
// SameSite=Strict, for a minute, encrypted (AES-GCM under a key derived from the
// server secret) and bound to the session and the path; it is never in a URL, a
// log or the database. Reloading the page shows it no more and makes nothing.
func (u *ui) showSecret(c *gin.Context, path, title string, v secretView) {
	raw, err := json.Marshal(sealedSecret{Title: title, View: v, Expires: time.Now().Add(secretCookieAge).Unix()})
	if err != nil {
		u.fail(c, err)
		return
	}
	aead, err := u.secretSeal()
	if err != nil {
		u.fail(c, err)
		return
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(raw)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		u.fail(c, err)
		return
	}
	sealed := aead.Seal(nonce, nonce, raw, u.secretBinding(c, path))
	http.SetCookie(c.Writer, &http.Cookie{
		Name: u.secretCookie(), Value: base64.RawURLEncoding.EncodeToString(sealed), Path: path,
		MaxAge: int(secretCookieAge.Seconds()), HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
	c.Redirect(http.StatusSeeOther, path)
}

// secretPage shows the secret that showSecret sent here, and clears it; opened
// again (a reload, the back button, another tab), it says the secret is gone.
func (u *ui) secretPage(c *gin.Context) {
	path := c.FullPath()
	p := secretPages[path]
	raw, err := c.Cookie(u.secretCookie())
	if err == nil {
		http.SetCookie(c.Writer, &http.Cookie{
			Name: u.secretCookie(), Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteStrictMode,
		})
	}
	if s, ok := u.openSecret(c, path, raw); ok {
		u.render(c, http.StatusOK, "secret", &web.View{Title: s.Title, Nav: p.Nav, Data: s.View})
		return
	}
	u.render(c, http.StatusGone, "secret", &web.View{Title: "Shown once", Nav: p.Nav, Data: secretView{Gone: p.Gone, Back: p.Back, BackTo: p.BackTo}})
}

// openSecret reverses showSecret's sealing; ok is false for no cookie, a broken
// or expired one, or one made for another session or page.
func (u *ui) openSecret(c *gin.Context, path, raw string) (sealedSecret, bool) {
	var s sealedSecret
	aead, err := u.secretSeal()
	if raw == "" || err != nil {
		return s, false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return s, false
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], u.secretBinding(c, path))
	if err != nil || json.Unmarshal(plain, &s) != nil || time.Now().Unix() > s.Expires {
		return sealedSecret{}, false
	}
	return s, true
}

// secretBinding ties a sealed secret to the page and the session it was made for.
func (u *ui) secretBinding(c *gin.Context, path string) []byte {
	return []byte(path + "\x00" + u.Users.CSRFToken(c.GetString(ctxSession)))
}

// newSecretSeal derives the secret cookie's AES-256-GCM key from the server
// secret: the signing key's HMAC of a label used for nothing else.
func (u *ui) newSecretSeal() (cipher.AEAD, error) {
	key, err := base64.RawURLEncoding.DecodeString(u.Users.Sign("ui secret cookie", "aes-256-gcm v1"))
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// pager is a list page's position, from ?page=N (1-based).
type pager struct {
	Page, Pages int
	Total       int64
	Path        string
	query       url.Values // the list's other parameters (filters), kept from page to page
}

func pagerOf(c *gin.Context, perPage int) (pager, int) {
	n, err := strconv.Atoi(c.Query("page"))
	if err != nil || n < 1 {
		n = 1
	}
	q := c.Request.URL.Query()
	q.Del("page")
	return pager{Page: n, Path: c.Request.URL.Path, query: q}, (n - 1) * perPage
}

// Link is the address of page n of the list, with the same filters.
func (p pager) Link(n int) string {
	q := url.Values{}
	for k, v := range p.query {
		q[k] = v
	}
	q.Set("page", strconv.Itoa(n))
	return p.Path + "?" + q.Encode()
}

func (p *pager) setTotal(total int64, perPage int) {
	p.Total = total
	p.Pages = max(int((total+int64(perPage)-1)/int64(perPage)), 1)
}

// title is the document title of a list's page: the list's name, what it is
// filtered to ("" for nothing) and the page number past the first, so that a
// tab or a history entry says which part of the list it shows ("Requests:
// code unauthorized (page 2)").
func (p pager) title(name, filter string) string {
	if filter != "" {
		name += ": " + filter
	}
	if p.Page > 1 {
		name += " (page " + strconv.Itoa(p.Page) + ")"
	}
	return name
}

// Prev and Next are the neighbouring pages' numbers, 0 when there is none.
func (p pager) Prev() int {
	if p.Page > 1 {
		return p.Page - 1
	}
	return 0
}

func (p pager) Next() int {
	if p.Page < p.Pages {
		return p.Page + 1
	}
	return 0
}
