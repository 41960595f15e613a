package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/store"
)

type deviceView struct {
	ID        string                  `json:"id"`
	Name      string                  `json:"name"`
	Online    bool                    `json:"online"`
	LastSeen  *time.Time              `json:"last_seen"`
	CreatedAt time.Time               `json:"created_at"`
	Desired   *actions.DesiredMessage `json:"desired,omitempty"`
	Token     string                  `json:"token,omitempty"`
}

func (a *api) deviceViewOf(d *store.Device) deviceView {
	v := deviceView{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt}
	v.Online, v.LastSeen = a.Presence.Of(d)
	if d.DesiredVersion > 0 {
		ds := actions.DesiredOf(d)
		v.Desired = &ds
	}
	return v
}

func (a *api) createDevice(c *gin.Context) {
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := bindJSON(c, &in, deviceView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	d, token, err := a.Devices.Create(c.Request.Context(), in.ID, in.Name)
	if err != nil {
		respondError(c, a.Log, conflictDetail(err, "a device with id %q already exists", strings.TrimSpace(in.ID)))
		return
	}
	v := a.deviceViewOf(d)
	v.Token = token
	created(c, "/api/v1/devices/"+d.ID, v)
}

func (a *api) listDevices(c *gin.Context) {
	serveList(a, c, a.Store.Devices, a.deviceViewOf)
}

func (a *api) getDevice(c *gin.Context) {
	d, err := a.Store.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, a.deviceViewOf(d))
}

func (a *api) updateDevice(c *gin.Context) {
	var in struct {
		Name *string `json:"name"`
	}
	if err := bindJSON(c, &in, deviceView{}); err != nil {
		respondError(c, a.Log, err)
		return
	}
	if in.Name == nil {
		respondError(c, a.Log, actions.Invalid("name", "is required (at most %d characters; empty for the device's id)", actions.MaxName))
		return
	}
	if _, err := a.Devices.Rename(c.Request.Context(), c.Param("id"), *in.Name); err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *api) rotateDeviceToken(c *gin.Context) {
	token, err := a.Devices.Rotate(c.Request.Context(), c.Param("id"))
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": c.Param("id"), "token": token})
}

func (a *api) deleteDevice(c *gin.Context) {
	id := c.Param("id")
	if err := a.Devices.Delete(c.Request.Context(), id); err != nil {
		respondError(c, a.Log, conflictDetail(err, "device %q is the target of an action; change or delete the action first", id))
		return
	}
	c.Status(http.StatusNoContent)
}
