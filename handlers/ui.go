package handlers

import (
	"crypto/cipher"
	"net/http"
	"net/url"
	"sync"

	"github.com/gin-gonic/gin"
)

// ui serves the admin web UI: server-rendered pages from web's templates, plain
// forms for every change, and a little JavaScript (copy buttons, live status).
// One file per area: ui_session.go (sign-in, CSRF, headers), ui_render.go, and
// ui_<page>.go.
type ui struct {
	Deps
	cop *http.CrossOriginProtection
	// secretSeal encrypts the cookie that carries a new secret to the page that
	// shows it (see showSecret).
	secretSeal func() (cipher.AEAD, error)
}

// registerUI adds the admin web UI's routes; cop refuses what another site's
// page sends (crossOriginProtection).
func registerUI(r *gin.Engine, d Deps, cop *http.CrossOriginProtection) *ui {
	u := &ui{Deps: d, cop: cop}
	u.secretSeal = sync.OnceValues(u.newSecretSeal)

	r.GET("/static/*filepath", u.static)
	r.HEAD("/static/*filepath", u.static)

	open := r.Group("", u.securityHeaders, u.crossOrigin)
	open.GET("/login", u.loginPage)
	open.POST("/login", u.login)
	open.GET("/logout", u.logoutPage)
	open.POST("/logout", u.logout)

	app := r.Group("", u.securityHeaders, u.crossOrigin, u.requireSession, u.checkCSRF)
	app.GET("/", u.dashboard)

	app.GET("/api-keys", u.apiKeys)
	app.POST("/api-keys", u.createAPIKey)
	app.GET(apiKeySecretPath, u.secretPage)
	app.POST("/api-keys/:id/reveal", u.revealAPIKey)
	app.POST(apiKeyCopyPath, u.copyAPIKey)
	app.GET("/api-keys/:id/limits", u.keyLimits)
	app.POST("/api-keys/:id/limits", u.saveKeyLimits)
	app.GET("/api-keys/:id/delete", u.confirmDeleteAPIKey)
	app.POST("/api-keys/:id/delete", u.deleteAPIKey)

	app.GET("/actions", u.actionList)
	app.GET("/actions/new", u.newAction)
	app.POST("/actions/new", u.createAction)
	app.GET("/actions/:id/edit", u.editAction)
	app.POST("/actions/:id/edit", u.updateAction)
	app.POST("/actions/:id/enabled", u.setActionEnabled)
	app.GET("/actions/:id/delete", u.confirmDeleteAction)
	app.POST("/actions/:id/delete", u.deleteAction)
	app.GET("/actions/:id/link", u.actionLink)
	app.POST("/actions/:id/link", u.generateLink)
	app.POST("/actions/:id/test", u.testAction)

	app.GET("/devices", u.deviceList)
	app.POST("/devices", u.createDevice)
	app.GET(deviceSecretPath, u.secretPage)
	app.GET("/devices/live", u.devicesLive)
	app.GET("/devices/suggest", u.suggestDevices)
	app.GET("/devices/:id/history", u.devicePage)
	app.GET("/devices/:id/history/live", u.devicePageLive)
	app.GET("/devices/:id/edit", u.editDevice)
	app.POST("/devices/:id/edit", u.updateDevice)
	app.GET("/devices/:id/token", u.confirmRotateToken)
	app.POST("/devices/:id/token", u.rotateToken)
	app.GET("/devices/:id/delete", u.confirmDeleteDevice)
	app.POST("/devices/:id/delete", u.deleteDevice)

	app.GET("/groups", u.groupList)
	app.GET("/groups/new", u.newGroup)
	app.POST("/groups/new", u.createGroup)
	app.GET("/groups/:id/edit", u.editGroup)
	app.POST("/groups/:id/edit", u.updateGroup)
	app.GET("/groups/:id/delete", u.confirmDeleteGroup)
	app.POST("/groups/:id/delete", u.deleteGroup)

	app.GET("/dispatches", u.dispatchList)
	app.GET("/dispatches/:id", u.dispatchPage)
	app.GET("/dispatches/:id/live", u.dispatchLive)

	app.GET("/requests", u.requestList)

	app.GET("/settings", u.settings)
	app.POST("/settings/password", u.changePassword)
	app.POST("/settings/tokens", u.createAdminToken)
	app.GET(adminTokenSecretPath, u.secretPage)
	app.GET("/settings/tokens/:id/delete", u.confirmDeleteAdminToken)
	app.POST("/settings/tokens/:id/delete", u.deleteAdminToken)
	return u
}

// crossOriginProtection refuses the requests that a browser marks as sent by
// another site's page (Sec-Fetch-Site, or else an Origin other than Host),
// trusting --public-url's origin, which a proxy in front may not pass as Host.
func crossOriginProtection(d Deps) *http.CrossOriginProtection {
	cop := http.NewCrossOriginProtection()
	if d.PublicURL != "" {
		if err := cop.AddTrustedOrigin(originOf(d.PublicURL)); err != nil {
			d.Log.Warn("--public-url is not a usable origin", "url", d.PublicURL, "err", err)
		}
	}
	return cop
}

// originOf returns the scheme://host of a URL.
func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Scheme + "://" + p.Host
}
