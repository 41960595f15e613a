package handlers

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

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
	if v.Flash == "" {
		v.Flash, v.FlashError = u.takeFlash(c)
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
	e := asError(err)
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= http.StatusInternalServerError {
		u.Log.Error("ui: request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	}
	title := map[int]string{
		http.StatusNotFound: "Not found", http.StatusForbidden: "Refused", http.StatusConflict: "Conflict",
		http.StatusUnprocessableEntity: "Invalid input", http.StatusBadRequest: "Bad request",
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
	e := asError(err)
	if statusOf[e.Code] >= http.StatusInternalServerError {
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

// form reads a trimmed form field.
func form(c *gin.Context, name string) string { return strings.TrimSpace(c.PostForm(name)) }

// fieldErrors turns a validation error into a message next to its field; names
// maps the domain's field names to the form's, and other errors stay whole-form.
func fieldErrors(err error, names func(string) string) (map[string]string, string) {
	e := asError(err)
	if e.Code == actions.CodeInvalidParams && e.Field != "" {
		return map[string]string{names(e.Field): e.Detail}, "Please correct the marked field."
	}
	return nil, e.Detail
}

// isUserError tells input errors (shown on the form) from server failures.
func isUserError(err error) bool {
	return statusOf[asError(err).Code] < http.StatusInternalServerError
}

// confirmView is the confirmation page shown before a deletion or a rotation.
type confirmView struct {
	Message string
	Detail  string
	Action  string // where the confirming form posts
	Button  string
	Cancel  string
	Danger  bool
}

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
}

func (u *ui) secret(c *gin.Context, title, nav string, v secretView) {
	u.render(c, http.StatusOK, "secret", &web.View{Title: title, Nav: nav, Data: v})
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
