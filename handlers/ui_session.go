package handlers

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/auth"
	"devicehooks/secrets"
	"devicehooks/web"
)

// contentSecurityPolicy allows only our own scripts, styles and images: no inline
// script or style, no framing, forms that post only to us.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a UI form body: a group's form names every member (some
// 15,000 of the longest device ids fit).
const maxFormBytes = 1 << 20

// Gin context keys of the signed-in session.
const (
	ctxAccount = "ui.account"
	ctxSession = "ui.session"
)

// securityHeaders sets the usual headers on every UI answer. Every page is
// no-store: pages show keys and tokens, and a shared machine's back button must
// not bring them back. Referrer-Policy no-referrer matters: webhook GET links
// carry API keys.
func (u *ui) securityHeaders(c *gin.Context) {
	u.setSecurityHeaders(c)
	c.Next()
}

func (u *ui) setSecurityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cache-Control", "no-store")
	if u.SecureCookies {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// notFound answers a browser's request for a page that does not exist with the
// "Not found" page, with the navigation if the browser is signed in.
func (u *ui) notFound(c *gin.Context) {
	u.failOutside(c, actions.Errorf(actions.CodeNotFound, "There is no page at %s.", c.Request.URL.Path))
}

// noPage answers a browser that opens an address which only takes a form
// (/settings/password, /actions/…/test), as a restored tab or a URL typed
// again does: the UI's page, not the API's JSON error.
func (u *ui) noPage(c *gin.Context) {
	u.failOutside(c, actions.Errorf(actions.CodeMethod,
		"%s takes what a form sends and has no page of its own: go back to the form, or start from the dashboard.", c.Request.URL.Path))
}

// failOutside shows the error page for a request no UI route took, with the
// signed-in user's navigation if there is a session.
func (u *ui) failOutside(c *gin.Context, err error) {
	u.setSecurityHeaders(c)
	token := u.sessionToken(c)
	if acc, err := u.Users.Authenticate(c.Request.Context(), token); err == nil {
		c.Set(ctxAccount, acc)
		c.Set(ctxSession, token)
	}
	u.fail(c, err)
}

// crossOrigin refuses state-changing requests that a browser marks as coming
// from another site (Sec-Fetch-Site, or Origin against Host): the first CSRF
// layer; the per-session form token is the second.
func (u *ui) crossOrigin(c *gin.Context) {
	if err := u.cop.Check(c.Request); err != nil {
		u.Log.Warn("ui: cross-origin request refused", "method", c.Request.Method, "path", c.Request.URL.Path, "ip", c.ClientIP())
		u.forbidden(c, "This request came from another site and was refused.")
		return
	}
	c.Next()
}

// requireSession lets signed-in admins through. Others go to the sign-in page
// (pages), or get 401 (the JSON endpoints: live status, copying a key).
func (u *ui) requireSession(c *gin.Context) {
	token := u.sessionToken(c)
	acc, err := u.Users.Authenticate(c.Request.Context(), token)
	if err == nil {
		c.Set(ctxAccount, acc)
		c.Set(ctxSession, token)
		c.Next()
		return
	}
	if asError(err).Code != actions.CodeUnauthorized {
		u.fail(c, err)
		return
	}
	if token != "" {
		u.clearCookie(c, u.sessionCookie())
	}
	if strings.HasSuffix(c.Request.URL.Path, "/live") || c.FullPath() == apiKeyCopyPath {
		respondError(c, u.Log, actions.Errorf(actions.CodeUnauthorized, "signed out"))
		return
	}
	next := c.Request.URL.RequestURI()
	switch {
	case c.Request.Method != http.MethodGet:
		// A form sent once the session had ended (it expired, or the admin
		// signed out in another tab): nothing of it was done, and that must
		// be said; after signing in, back to the form's page.
		next = formPage(c.FullPath(), c.Request.URL.Path, c.Param("id"))
		u.setFlash(c, "Your session had ended, so what you sent was not saved. Sign in, then send it again.", true)
	case token != "":
		u.setFlash(c, "Your session has ended. Please sign in again.", false)
	}
	target := "/login"
	if next = safeNext(next); next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	c.Redirect(http.StatusSeeOther, target)
	c.Abort()
}

// formPage is the page that a form posted to a route (its pattern and path)
// was sent from: most forms post to their own page.
func formPage(route, path, id string) string {
	switch route {
	case "/actions/:id/enabled":
		return "/actions"
	case "/actions/:id/test":
		return "/actions/" + url.PathEscape(id) + "/link"
	case "/api-keys/:id/reveal":
		return "/api-keys"
	case "/settings/password", "/settings/tokens":
		return "/settings"
	}
	return path
}

// checkCSRF requires the session's form token on every state-changing request,
// in the csrf_token form field or the X-CSRF-Token header.
func (u *ui) checkCSRF(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		c.Next()
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	got := c.GetHeader("X-CSRF-Token")
	if got == "" {
		// A form over the limit cannot be read, token included: say so,
		// rather than blame the token.
		var tooLarge *http.MaxBytesError
		if err := c.Request.ParseForm(); errors.As(err, &tooLarge) {
			u.fail(c, actions.Errorf(actions.CodeTooLarge, "The form is over %d KiB and was not saved.", maxFormBytes>>10))
			return
		}
		got = c.PostForm("csrf_token")
	}
	if !u.Users.ValidCSRF(c.GetString(ctxSession), got) {
		u.Log.Warn("ui: request without a valid CSRF token refused", "method", c.Request.Method, "path", c.Request.URL.Path, "ip", c.ClientIP())
		u.forbidden(c, "The form's security token is missing or out of date. Go back, reload the page and try again.")
		return
	}
	c.Next()
}

func (u *ui) forbidden(c *gin.Context, detail string) {
	u.fail(c, actions.Errorf(actions.CodeForbidden, "%s", detail))
}

// account is the signed-in admin (set by requireSession).
func account(c *gin.Context) *auth.Account {
	acc, _ := c.Get(ctxAccount)
	a, _ := acc.(*auth.Account)
	return a
}

type loginView struct {
	Username string
	Next     string
	Token    string // the sign-in form's own CSRF token (double-submit cookie)
}

func (u *ui) loginPage(c *gin.Context) {
	next := safeNext(c.Query("next"))
	if _, err := u.Users.Authenticate(c.Request.Context(), u.sessionToken(c)); err == nil {
		c.Redirect(http.StatusSeeOther, next)
		return
	}
	u.renderLogin(c, http.StatusOK, loginView{Next: next}, "")
}

func (u *ui) renderLogin(c *gin.Context, status int, v loginView, msg string) {
	v.Token = u.loginToken(c)
	u.render(c, status, "login", &web.View{Title: "Sign in", Error: msg, Data: v})
}

// loginToken returns the sign-in form's token, setting its cookie if needed:
// there is no session yet to bind a token to, so the form and a SameSite=Strict
// cookie must carry the same random value.
func (u *ui) loginToken(c *gin.Context) string {
	if v, err := c.Cookie(u.loginCookie()); err == nil && len(v) == 32 {
		return v
	}
	v := secrets.RandomString(32)
	http.SetCookie(c.Writer, &http.Cookie{
		Name: u.loginCookie(), Value: v, Path: "/", MaxAge: int((2 * time.Hour).Seconds()),
		HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
	return v
}

func (u *ui) login(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	v := loginView{Username: strings.TrimSpace(c.PostForm("username")), Next: safeNext(c.PostForm("next"))}
	password := c.PostForm("password")
	cookie, _ := c.Cookie(u.loginCookie())
	if cookie == "" || !secrets.Equal(cookie, c.PostForm("login_token")) {
		u.clearCookie(c, u.loginCookie())
		u.renderLogin(c, http.StatusForbidden, v, "The sign-in form had expired. Please try again.")
		return
	}
	known, _ := c.Cookie(u.browserCookie())
	token, user, err := u.Users.SignIn(c.Request.Context(), v.Username, password, c.ClientIP(), known)
	var locked *auth.LockedOutError
	switch {
	case errors.As(err, &locked) && locked.Busy:
		c.Header("Retry-After", strconv.Itoa(int(time.Until(locked.Until).Seconds())+1))
		u.Log.Warn("ui: sign-in refused: too many at once", "ip", c.ClientIP())
		u.renderLogin(c, http.StatusTooManyRequests, v, "Too many sign-ins at once. Try again in a few seconds.")
		return
	case errors.As(err, &locked):
		wait := time.Until(locked.Until).Round(time.Minute)
		c.Header("Retry-After", strconv.Itoa(int(time.Until(locked.Until).Seconds())+1))
		u.Log.Warn("ui: sign-in refused: locked out", "ip", c.ClientIP())
		u.renderLogin(c, http.StatusTooManyRequests, v,
			"Too many failed sign-ins. Try again in "+strconv.Itoa(max(int(wait.Minutes()), 1))+" min.")
		return
	case asError(err).Code == actions.CodeUnauthorized:
		u.Log.Warn("ui: sign-in failed", "ip", c.ClientIP())
		u.renderLogin(c, http.StatusUnauthorized, v, "Wrong username or password.")
		return
	case err != nil:
		u.fail(c, err)
		return
	}
	u.Log.Info("ui: signed in", "user", user.Username, "ip", c.ClientIP())
	u.clearCookie(c, u.loginCookie())
	http.SetCookie(c.Writer, &http.Cookie{
		Name: u.sessionCookie(), Value: token, Path: "/",
		HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	// This browser is now known for this username: a guesser elsewhere
	// cannot lock it out (auth.Users.KnownBrowser).
	http.SetCookie(c.Writer, &http.Cookie{
		Name: u.browserCookie(), Value: u.Users.KnownBrowser(user.Username), Path: "/",
		MaxAge: int(auth.KnownBrowserFor.Seconds()), HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
	c.Redirect(http.StatusSeeOther, v.Next)
}

func (u *ui) logoutPage(c *gin.Context) {
	token := u.sessionToken(c)
	acc, err := u.Users.Authenticate(c.Request.Context(), token)
	if err != nil {
		c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	u.render(c, http.StatusOK, "confirm", &web.View{
		Title: "Sign out", User: acc.User.Username, CSRF: u.Users.CSRFToken(token),
		Data: confirmView{Message: "Sign out of devicehooks on this browser?", Action: "/logout", Button: "Sign out", Cancel: "/"},
	})
}

func (u *ui) logout(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	token := u.sessionToken(c)
	if token == "" {
		c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	if !u.Users.ValidCSRF(token, c.PostForm("csrf_token")) {
		u.forbidden(c, "The form's security token is missing or out of date. Go back, reload the page and try again.")
		return
	}
	if err := u.Users.SignOut(c.Request.Context(), token); err != nil {
		u.fail(c, err)
		return
	}
	u.clearCookie(c, u.sessionCookie())
	u.setFlash(c, "You have signed out.", false)
	c.Redirect(http.StatusSeeOther, "/login")
}

// sessionCookie is the session cookie's name; behind TLS it takes the __Host-
// prefix, which browsers accept only Secure, for this host, on path /.
func (u *ui) sessionCookie() string { return u.cookieName("devicehooks_session") }
func (u *ui) loginCookie() string   { return u.cookieName("devicehooks_login") }
func (u *ui) flashCookie() string   { return u.cookieName("devicehooks_flash") }
func (u *ui) browserCookie() string { return u.cookieName("devicehooks_browser") }

// secretCookie is scoped to the page that shows a new secret, so behind TLS it
// takes the __Secure- prefix (__Host- requires path /).
func (u *ui) secretCookie() string {
	if u.SecureCookies {
		return "__Secure-devicehooks_secret"
	}
	return "devicehooks_secret"
}

func (u *ui) cookieName(name string) string {
	if u.SecureCookies {
		return "__Host-" + name
	}
	return name
}

func (u *ui) sessionToken(c *gin.Context) string {
	v, _ := c.Cookie(u.sessionCookie())
	return v
}

func (u *ui) clearCookie(c *gin.Context, name string) {
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: u.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// safeNext keeps a post-sign-in redirect on this site: a path, never a URL to
// another host ("//evil", "/\evil", "https://...").
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	p, err := url.Parse(next)
	if err != nil || p.Scheme != "" || p.Host != "" || p.Path == "/login" {
		return "/"
	}
	return p.RequestURI()
}

// static serves web/static. A request carrying the file's current version may be
// cached for a year; any other is revalidated.
func (u *ui) static(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("filepath"), "/")
	if st, err := fs.Stat(web.Static(), name); name == "" || err != nil || st.IsDir() {
		c.Status(http.StatusNotFound)
		return
	}
	if v := c.Query("v"); v != "" && v == web.AssetVersion(name) {
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		c.Header("Cache-Control", "no-cache")
	}
	c.Header("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(c.Writer, c.Request, web.Static(), name)
}
