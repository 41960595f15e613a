package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestStartAndCloseAtOnce starts the broker with both listeners and closes it
// straight away: the WebSocket listener's server is read by Close while Serve is
// only starting (a data race under -race before it was built up front).
func TestStartAndCloseAtOnce(t *testing.T) {
	for i := 0; i < 20; i++ {
		e, err := StartEmbedded(EmbeddedConfig{
			TCPAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Before a client has logged in, its first packet must be a CONNECT of at most
// MaxConnectSize bytes: mochi would otherwise allocate what the header claims
// (up to MaxPacketSize) for anyone, 5 bytes at a time.
func TestFirstPacketIsABoundedConnect(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{WSAddr: "127.0.0.1:0"})
	dialTCP := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", e.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedAtOnce := func(t *testing.T, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection is still open: %v", err)
		}
	}
	for name, head := range map[string][]byte{
		"a CONNECT claiming 200 KiB": {0x10, 0x80, 0xc0, 0x0c}, // 204,800
		"a PUBLISH first":            {0x30, 0x02},
		"a malformed length":         {0x10, 0xff, 0xff, 0xff, 0xff},
	} {
		t.Run(name, func(t *testing.T) {
			c := dialTCP(t)
			c.Write(head)
			closedAtOnce(t, c)
		})
	}
	t.Run("many claims hold no memory", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < 200; i++ {
			dialTCP(t).Write([]byte{0x10, 0x80, 0xc0, 0x0c})
		}
		time.Sleep(200 * time.Millisecond)
		runtime.ReadMemStats(&after)
		if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 10<<20 {
			t.Fatalf("200 oversized CONNECT headers grew the heap by %d MB", grown>>20)
		}
	})
	t.Run("over WebSocket too", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+e.WSAddr()+"/mqtt", http.Header{"Sec-WebSocket-Protocol": {"mqtt"}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		ws.WriteMessage(websocket.BinaryMessage, []byte{0x10, 0x80, 0xc0, 0x0c})
		ws.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := ws.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection is still open: %v", err)
		}
	})
	t.Run("a refused WebSocket upgrade closes its connection", func(t *testing.T) {
		// A plain GET (no upgrade) is answered 400, and its connection not
		// kept alive for another: else anyone could hold connections (and
		// file descriptors) open for ever.
		c, err := net.Dial("tcp", e.WSAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("the connection is still open after its answer %q: %v", got, err)
		}
		if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
			t.Fatalf("answered %q", got)
		}
	})
	t.Run("a client still connects", func(t *testing.T) {
		connect(t, e, "ok", nil)
	})
}
