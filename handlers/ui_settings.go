package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"devicehooks/auth"
	"devicehooks/store"
	"devicehooks/web"
)

type settingsView struct {
	Tokens    []store.AdminToken
	Bootstrap bool // a --admin-token works too
	TokenName string
	MinLen    int
}

func (u *ui) settings(c *gin.Context) { u.renderSettings(c, http.StatusOK, settingsView{}, nil, "") }

func (u *ui) renderSettings(c *gin.Context, status int, v settingsView, errs map[string]string, msg string) {
	ts, err := u.Store.AdminTokens(c.Request.Context())
	if err != nil {
		u.fail(c, err)
		return
	}
	v.Tokens, v.Bootstrap, v.MinLen = ts, u.Admins.HasBootstrap(), auth.MinPasswordLen
	u.render(c, status, "settings", &web.View{Title: "Settings", Nav: "settings", Errors: errs, Error: msg, Data: v})
}

func (u *ui) changePassword(c *gin.Context) {
	current, next, again := c.PostForm("current_password"), c.PostForm("new_password"), c.PostForm("confirm_password")
	acc := account(c)
	if err := u.Users.ChangePassword(c.Request.Context(), acc, current, next, again); err != nil {
		if errors.Is(err, auth.ErrSessionEnded) {
			u.Log.Warn("ui: too many wrong current passwords; session ended", "user", acc.User.Username, "ip", c.ClientIP())
			u.clearCookie(c, u.sessionCookie())
			u.setFlash(c, "Too many wrong current passwords: you were signed out.", true)
			c.Redirect(http.StatusSeeOther, "/login")
			return
		}
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, func(f string) string { return f })
		u.renderSettings(c, http.StatusUnprocessableEntity, settingsView{}, errs, msg)
		return
	}
	u.Log.Info("ui: password changed", "user", acc.User.Username)
	u.redirect(c, "/settings", "Your password was changed. Other browsers signed in as you were signed out.")
}

func (u *ui) createAdminToken(c *gin.Context) {
	name := form(c, "name")
	t, plain, err := u.Admins.CreateToken(c.Request.Context(), name)
	if err != nil {
		if !isUserError(err) {
			u.fail(c, err)
			return
		}
		errs, msg := fieldErrors(err, func(string) string { return "token_name" })
		u.renderSettings(c, http.StatusUnprocessableEntity, settingsView{TokenName: name}, errs, msg)
		return
	}
	u.Log.Info("ui: admin token created", "id", t.ID, "prefix", t.Prefix, "by", account(c).User.Username)
	u.showSecret(c, adminTokenSecretPath, "Admin token created", secretView{
		Intro: "Scripts use it for the management API as Authorization: Bearer <token> on " + u.baseURL(c) + "/api/v1/….",
		Label: "Admin token", Value: plain,
		Note: "This token is shown only now, and it can do everything an admin can. Revoke it on the settings page when it is no longer needed.",
		Back: "Back to settings", BackTo: "/settings",
	})
}

func (u *ui) adminToken(c *gin.Context) (*store.AdminToken, error) {
	ts, err := u.Store.AdminTokens(c.Request.Context())
	if err != nil {
		return nil, err
	}
	for i := range ts {
		if ts[i].ID == c.Param("id") {
			return &ts[i], nil
		}
	}
	return nil, store.ErrNotFound
}

func (u *ui) confirmDeleteAdminToken(c *gin.Context) {
	t, err := u.adminToken(c)
	if err != nil {
		u.fail(c, gone(err, tokenGone))
		return
	}
	u.confirm(c, "Revoke admin token “"+t.Name+"”", "settings", confirmView{
		Message: "Revoke the admin token “" + t.Name + "” (" + t.Prefix + "…)?",
		Detail:  "Scripts using it are refused from now on. This cannot be undone.",
		Action:  "/settings/tokens/" + t.ID + "/delete", Button: "Revoke token", Cancel: "/settings", Danger: true,
	})
}

func (u *ui) deleteAdminToken(c *gin.Context) {
	t, err := u.adminToken(c)
	if err != nil {
		u.redirectError(c, "/settings", gone(err, tokenGone))
		return
	}
	if err := u.Store.DeleteAdminToken(c.Request.Context(), t.ID); err != nil {
		u.redirectError(c, "/settings", gone(err, tokenGone))
		return
	}
	u.Log.Info("ui: admin token revoked", "id", t.ID, "prefix", t.Prefix, "by", account(c).User.Username)
	u.redirect(c, "/settings", "Revoked the admin token “"+t.Name+"”.")
}
