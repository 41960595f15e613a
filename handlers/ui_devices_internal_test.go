package handlers

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gin-gonic/gin"
)

// The broker's address on a device's pages is one a player can use: a
// wildcard listener, or an external broker on the loopback, at the host the
// admin reached the page at; a specific address, an external broker's path,
// and a host the server names as it is.
func TestBrokerAddresses(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for _, c := range []struct {
		name, pageHost string
		broker         PlayerBroker
		want           []string
	}{
		{"embedded, every interface", "signage.example.com:8080", PlayerBroker{TCPAddr: "[::]:1883", WSAddr: "0.0.0.0:8083"},
			[]string{"mqtt://signage.example.com:1883", "ws://signage.example.com:8083"}},
		{"embedded on one address, WebSocket off", "signage.example.com", PlayerBroker{TCPAddr: "10.0.0.5:1883"},
			[]string{"mqtt://10.0.0.5:1883"}},
		{"external on the loopback", "signage.example.com:8080", PlayerBroker{URL: "tcp://127.0.0.1:1883"},
			[]string{"tcp://signage.example.com:1883"}},
		{"external WebSocket with a path", "signage.example.com", PlayerBroker{URL: "wss://broker.example.com/mqtt"},
			[]string{"wss://broker.example.com/mqtt"}},
		{"external on the loopback, no port, an IPv6 page", "[2001:db8::1]:8080", PlayerBroker{URL: "ws://[::1]/mqtt"},
			[]string{"ws://[2001:db8::1]/mqtt"}},
	} {
		ctx, _ := gin.CreateTestContext(httptest.NewRecorder())
		ctx.Request = httptest.NewRequest("GET", "/devices/d1/history", nil)
		ctx.Request.Host = c.pageHost
		u := &ui{Deps: Deps{PlayerBroker: c.broker}}
		got := u.brokerAddresses(ctx)
		var addrs []string
		for _, a := range got {
			addrs = append(addrs, a[1])
		}
		if !slices.Equal(addrs, c.want) {
			t.Errorf("%s: %v, want %v", c.name, addrs, c.want)
		}
	}
}
