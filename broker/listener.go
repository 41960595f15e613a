// Package broker is devicehooks' MQTT transport: an embedded mochi-mqtt broker with
// device authentication and ACLs, or a paho client of an external broker. It knows
// nothing of commands or devices beyond what its callbacks say.
package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// netListener serves MQTT over an already bound TCP listener, so that a bad
// address fails at start and tests can listen on port 0.
type netListener struct {
	id           string
	ln           net.Listener
	once         sync.Once
	closeClients listeners.CloseFn // safeCloseClients: see there
}

func (l *netListener) ID() string              { return l.id }
func (l *netListener) Address() string         { return l.ln.Addr().String() }
func (l *netListener) Protocol() string        { return "tcp" }
func (l *netListener) Init(*slog.Logger) error { return nil }

func (l *netListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		go func() {
			guarded, err := guardConnect(conn)
			if err != nil {
				_ = conn.Close()
				return
			}
			_ = establish(l.id, guarded)
		}()
	}
}

func (l *netListener) Close(listeners.CloseFn) {
	l.once.Do(func() { _ = l.ln.Close() })
	l.closeClients(l.id)
}

// wsListener serves MQTT over WebSocket (subprotocol "mqtt") on an already bound
// listener, for browser-based players.
type wsListener struct {
	id       string
	ln       net.Listener
	srv      *http.Server
	upgrader websocket.Upgrader
	once     sync.Once

	closeClients listeners.CloseFn // safeCloseClients: see there
}

func newWSListener(id string, ln net.Listener) *wsListener {
	l := &wsListener{id: id, ln: ln, upgrader: websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Players are served from anywhere (a kiosk's file://, a CMS origin);
		// they authenticate with their device token, not with cookies.
		CheckOrigin: func(*http.Request) bool { return true },
	}}
	// Built here, not in Serve, so Close (on another goroutine) never races it.
	// A connection is here for one upgrade: one that waits for another
	// request after a refused one is closed (IdleTimeout too, in case), so
	// that no one can hold connections open without logging in, as on the
	// TCP port (guardConnect).
	l.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10} // room for a browser's cookies
	return l
}

func (l *wsListener) ID() string              { return l.id }
func (l *wsListener) Address() string         { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string        { return "ws" }
func (l *wsListener) Init(*slog.Logger) error { return nil }

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // the answer to a refused upgrade; an upgrade writes its own
		c, err := l.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(MaxPacketSize + 16) // one MQTT packet per message
		guarded, err := guardConnect(&wsConn{Conn: c.UnderlyingConn(), c: c})
		if err != nil {
			return
		}
		_ = establish(l.id, guarded)
	})
	l.srv.Handler = handler
	_ = l.srv.Serve(l.ln)
}

func (l *wsListener) Close(listeners.CloseFn) {
	l.once.Do(func() {
		_ = l.srv.Close()
		_ = l.ln.Close() // Serve may not have started
	})
	l.closeClients(l.id)
}

// wsConn presents a WebSocket connection as a net.Conn of MQTT bytes; each MQTT
// write is one binary message. (After mochi-mqtt's listeners/websocket.go, MIT.)
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader
}

var errNotBinary = errors.New("websocket message is not binary")

func (ws *wsConn) Read(p []byte) (int, error) {
	if ws.r == nil {
		op, r, err := ws.c.NextReader()
		if err != nil {
			return 0, err
		}
		if op != websocket.BinaryMessage {
			return 0, errNotBinary
		}
		ws.r = r
	}
	n := 0
	for n < len(p) {
		m, err := ws.r.Read(p[n:])
		n += m
		if err != nil {
			ws.r = nil
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
	}
	return n, nil
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
