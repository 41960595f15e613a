package handlers

import (
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/store"
	"devicehooks/web"
)

// attentionWindow is how far back the dashboard looks for failed dispatches.
const attentionWindow = 24 * time.Hour

type dashboardView struct {
	BrokerDown               bool // an external broker is unreachable: nothing is delivered
	Devices, Online, Offline int
	Emergency, Paused        int // devices in emergency mode, with their loop paused
	Keys, Actions            int64
	LastHour                 int64
	Failed                   int64
	LastHourLink, FailedLink string // the dispatches page with those, from this moment's time back
	Attention                []dispatchRow
	Recent                   []dispatchRow
}

// Setup tells whether the getting-started steps should be shown.
func (v dashboardView) Setup() bool { return v.Devices == 0 || v.Keys == 0 || v.Actions == 0 }

func (u *ui) dashboard(c *gin.Context) {
	ctx := c.Request.Context()
	// To the minute: the page is loaded again every 5 s (app.js), and its
	// links ("since …") stay the same within a minute, so its parts are
	// put in again only when something changed.
	now := time.Now().UTC().Truncate(time.Minute)
	v := dashboardView{BrokerDown: u.BrokerConnected != nil && !u.BrokerConnected(),
		LastHourLink: "/dispatches?" + url.Values{"since": {now.Add(-time.Hour).Format(time.RFC3339Nano)}}.Encode(),
		FailedLink:   "/dispatches?" + url.Values{"failed": {"true"}, "since": {now.Add(-attentionWindow).Format(time.RFC3339Nano)}}.Encode(),
	}
	one := store.Page{Limit: 1}
	_, devices, err := u.Store.Devices(ctx, one)
	if err == nil {
		_, v.Keys, err = u.Store.APIKeys(ctx, one)
	}
	if err == nil {
		_, v.Actions, err = u.Store.Actions(ctx, one)
	}
	var emergency, paused int64
	if err == nil {
		_, emergency, err = u.Store.FindDevices(ctx, store.DeviceFilter{State: store.DeviceStateEmergency}, one)
	}
	if err == nil {
		_, paused, err = u.Store.FindDevices(ctx, store.DeviceFilter{State: store.DeviceStatePaused}, one)
	}
	if err == nil {
		_, v.LastHour, err = u.Store.Dispatches(ctx, store.DispatchFilter{Since: now.Add(-time.Hour)}, one)
	}
	var failed, recent []store.Dispatch
	if err == nil {
		failed, v.Failed, err = u.Store.Dispatches(ctx, store.DispatchFilter{Failed: true, Since: now.Add(-attentionWindow)}, store.Page{Limit: 8})
	}
	if err == nil {
		recent, _, err = u.Store.Dispatches(ctx, store.DispatchFilter{}, store.Page{Limit: 8})
	}
	if err == nil {
		v.Attention, err = u.withOutcomes(c, failed)
	}
	if err == nil {
		v.Recent, err = u.withOutcomes(c, recent)
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	v.Devices, v.Online = int(devices), u.Presence.OnlineCount()
	v.Emergency, v.Paused = int(emergency), int(paused)
	v.Offline = max(v.Devices-v.Online, 0)
	u.render(c, http.StatusOK, "dashboard", &web.View{Title: "Dashboard", Nav: "dashboard", Data: v})
}
