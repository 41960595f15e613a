package simulator

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// dial opens the network connection for a broker URL, covering the schemes paho
// itself supports for players: tcp/mqtt, tls/ssl/mqtts and ws/wss. It exists because
// paho's custom connection hook (needed by Drop) replaces paho's own dialing.
func dial(uri *url.URL, opts paho.ClientOptions) (net.Conn, error) {
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: opts.ConnectTimeout}
	}
	switch uri.Scheme {
	case "tcp", "mqtt":
		return d.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts", "tcps":
		return tls.DialWithDialer(d, "tcp", uri.Host, opts.TLSConfig)
	case "ws", "wss":
		u := *uri
		u.User = nil // gorilla/websocket rejects URLs with user info
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = opts.TLSConfig
		}
		return paho.NewWebsocket(u.String(), tlsc, opts.ConnectTimeout, opts.HTTPHeaders, opts.WebsocketOptions)
	default:
		return nil, fmt.Errorf("simulator: unsupported broker URL scheme %q", uri.Scheme)
	}
}
