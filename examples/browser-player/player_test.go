package browserplayer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"devicehooks/actions"
	"devicehooks/broker"
	"devicehooks/internal/testenv"
)

// The browser player in a real headless Chromium, against the real embedded
// broker's WebSocket listener with the server's device authentication and ACL.

const (
	device  = "lobby-1"
	token   = "dhd_browser-player-test-token"
	wait    = 8 * time.Second
	devBase = "devicehooks/devices/" + device + "/"
)

func TestBrowserPlayer(t *testing.T) {
	testenv.Chromium(t) // before anything starts: skips (fails under CI=true) without Chromium
	topics := actions.Topics{Prefix: "devicehooks"}
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{
		TCPAddr:      "127.0.0.1:0",
		WSAddr:       "127.0.0.1:0",
		Authenticate: func(user, pass string) bool { return user == device && pass == token },
		Allow:        topics.Allowed,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	status := record(t, b, devBase+"status")
	acks := record(t, b, devBase+"acks")

	// The example directory as a web server would serve it, plus a page to show.
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(".")))
	mux.HandleFunc("/content/menu.html", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><body style="margin:0;display:grid;place-items:center;height:100vh;`+
			`background:#0b4f6c;color:#fff;font:48px system-ui">Today's menu: soup &amp; bread</body>`)
	})
	mux.HandleFunc("/content/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><body style="font:48px system-ui">%s</body>`, html.EscapeString(r.URL.Path))
	})
	web := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(web.Close)

	br := newBrowser(t)
	t.Cleanup(func() { // before the browser closes
		if t.Failed() {
			t.Logf("player log:\n%s\nstatus messages: %v\nacks: %v", br.playerLog(), status.all(), acks.all())
		}
	})
	fragment := url.Values{"broker": {"ws://" + b.WSAddr() + "/mqtt"}, "device": {device}, "token": {token}}.Encode()
	br.do(chromedp.Navigate(web.URL + "/index.html#" + fragment))

	// Subscribed, then online with a time.
	online := status.waitN(t, 1, map[string]any{"state": "online"})
	if at, _ := online["at"].(string); at == "" {
		t.Fatalf("online status without at: %v", online)
	}
	br.waitJS(`document.getElementById("conn").textContent === "online"`)

	// load_url: the iframe shows the page, and the command is acked.
	menu := web.URL + "/content/menu.html"
	load := command("c1", "load_url", map[string]any{"url": menu}, nil)
	publish(t, b, "commands", load, false)
	acks.waitN(t, 1, map[string]any{"id": "c1", "status": "succeeded"})
	br.waitJS(fmt.Sprintf(`document.getElementById("content").src === %q`, menu))
	// A repeat is acked again but not applied again; an expired command is rejected.
	publish(t, b, "commands", load, false)
	acks.waitN(t, 2, map[string]any{"id": "c1", "status": "succeeded"})
	past := time.Now().Add(-time.Minute).UTC()
	publish(t, b, "commands", command("c2", "pause_loop", nil, &past), false)
	acks.waitN(t, 1, map[string]any{"id": "c2", "status": "rejected", "detail": "expired"})
	applied := `[...document.querySelectorAll("#log li")].filter(li => li.textContent.includes("load_url http")).length`
	if n := br.evalInt(applied); n != 1 {
		t.Fatalf("load_url applied %d times, want 1\nplayer log:\n%s", n, br.playerLog())
	}
	// A javascript: URL is refused, not shown.
	publish(t, b, "commands", command("c3", "load_url", map[string]any{"url": "javascript:alert(1)"}, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "c3", "status": "failed"})
	br.waitJS(fmt.Sprintf(`document.getElementById("content").src === %q`, menu))

	// A timed page gives way to the last page loaded without a duration, also
	// when a newer timed page replaced it: A, then B for 30 s, then C for 3 s,
	// shows A after C's seconds, and nothing is left to come back. (Three: the
	// test must see C first, after its ack, on a loaded machine.)
	publish(t, b, "commands", command("c6", "load_url", map[string]any{"url": web.URL + "/content/b.html", "duration_s": 30}, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "c6", "status": "succeeded"})
	br.waitJS(fmt.Sprintf(`document.getElementById("content").src === %q`, web.URL+"/content/b.html"))
	publish(t, b, "commands", command("c7", "load_url", map[string]any{"url": web.URL + "/content/c.html", "duration_s": 3}, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "c7", "status": "succeeded"})
	br.waitJS(fmt.Sprintf(`document.getElementById("content").src === %q`, web.URL+"/content/c.html"))
	br.waitJS(fmt.Sprintf(`document.getElementById("content").src === %q && window.player.state.until === 0`, menu))

	// Desired state, retained: the emergency overlay shows its message, and the
	// "paused" badge shows.
	const msg = "Evacuate via the north stairs"
	publish(t, b, "desired", actions.DesiredMessage{Version: 1, LoopPaused: true, UpdatedAt: time.Now().UTC(),
		Emergency: actions.EmergencyDesired{Enabled: true, Message: msg}}, true)
	br.waitJS(fmt.Sprintf(`(() => { const o = document.getElementById("emergency");
		return getComputedStyle(o).display !== "none" && o.textContent.includes(%q); })()`, msg))
	br.waitJS(`getComputedStyle(document.getElementById("paused")).display !== "none"`)
	if os.Getenv("DEVICEHOOKS_SCREENSHOTS") == "1" {
		br.screenshot(filepath.Join("..", "..", "docs", "screenshots", "browser-player.png"))
	}

	// The same page opened as a file (no web server) works too. Leaving the
	// page closes its connection: the broker publishes its last will (offline,
	// without "at"). The retained desired state applies at once on connect.
	abs, err := filepath.Abs("index.html")
	if err != nil {
		t.Fatal(err)
	}
	br.do(chromedp.Navigate("file://" + abs + "#" + fragment))
	if will := status.waitN(t, 1, map[string]any{"state": "offline"}); will["at"] != nil {
		t.Fatalf("offline status with an at: %v, want the last will", will)
	}
	status.waitN(t, 2, map[string]any{"state": "online"})
	br.waitJS(fmt.Sprintf(`document.getElementById("emergency-message").textContent === %q`, msg))
	// A timed page on an idle player goes back to idle (under the emergency
	// overlay, which stays on top meanwhile).
	publish(t, b, "commands", command("c8", "load_url", map[string]any{"url": menu, "duration_s": 3}, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "c8", "status": "succeeded"})
	br.waitJS(fmt.Sprintf(`document.getElementById("content").src === %q && window.player.state.until > 0`, menu))
	br.waitJS(`!document.getElementById("content").hasAttribute("src") && !document.getElementById("idle").hidden &&
		window.player.state.until === 0 && !document.getElementById("emergency").hidden`)
	// Emergency off, as the server sends it: a command and a newer desired state.
	publish(t, b, "commands", command("c4", "set_emergency", map[string]any{"enabled": false}, nil), false)
	publish(t, b, "desired", actions.DesiredMessage{Version: 2, UpdatedAt: time.Now().UTC()}, true)
	acks.waitN(t, 1, map[string]any{"id": "c4", "status": "succeeded"})
	br.waitJS(`document.getElementById("emergency").hidden && window.player.state.version === 2`)

	// A connection closed by the broker (as a token rotation does): the will
	// says offline, and the player reconnects by itself, after a short pause.
	b.Disconnect(device)
	status.waitN(t, 2, map[string]any{"state": "offline"})
	status.waitN(t, 3, map[string]any{"state": "online"})
	br.waitJS(`document.getElementById("conn").textContent === "online"`)

	// restart: acked, then the page reloads, connects again and applies the
	// retained desired state; its memory of handled commands starts empty.
	publish(t, b, "commands", command("c5", "restart", nil, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "c5", "status": "succeeded"})
	status.waitN(t, 4, map[string]any{"state": "online"})
	br.waitJS(`window.player.state.version === 2 && window.player.state.acked.size === 0 &&
		document.getElementById("emergency").hidden && document.getElementById("paused").hidden`)
}

// browser is one headless Chromium tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	errs []string // uncaught exceptions in the page
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := testenv.ChromiumOptions(t, 1280, 720)
	deadline, cancelDeadline := context.WithTimeout(context.Background(), 90*time.Second)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(deadline, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelDeadline() })
	br := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			br.mu.Lock()
			br.errs = append(br.errs, text)
			br.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		br.mu.Lock()
		defer br.mu.Unlock()
		for _, e := range br.errs {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return br
}

func (br *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		br.t.Fatalf("browser: %v", err)
	}
}

// waitJS waits until a JavaScript expression is true, showing the player's log if not.
func (br *browser) waitJS(js string) {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, wait+2*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingTimeout(wait), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		br.t.Fatalf("browser: waiting for %s: %v\nplayer log:\n%s", js, err, br.playerLog())
	}
}

func (br *browser) evalInt(js string) int {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, wait)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
	if err != nil {
		br.t.Fatalf("browser: %s: %v", js, err)
	}
	return n
}

func (br *browser) playerLog() string {
	ctx, cancel := context.WithTimeout(br.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("log").innerText`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

func (br *browser) screenshot(path string) {
	br.t.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, wait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		br.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		br.t.Fatal(err)
	}
	br.t.Logf("wrote %s", path)
}

// recorder keeps what the player published on one topic, decoded.
type recorder struct {
	mu   sync.Mutex
	msgs []map[string]any
}

func record(t *testing.T, b *broker.Embedded, topic string) *recorder {
	t.Helper()
	r := &recorder{}
	if err := b.Subscribe(topic, func(_ string, payload []byte, _ bool) {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Errorf("%s: not JSON: %s", topic, payload)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// all returns the messages so far.
func (r *recorder) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitN waits until n messages have the fields of want, and returns the last.
func (r *recorder) waitN(t *testing.T, n int, want map[string]any) map[string]any {
	t.Helper()
	var last map[string]any
	testenv.WaitFor(t, wait, fmt.Sprintf("%d message(s) matching %v", n, want), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		count := 0
	next:
		for _, m := range r.msgs {
			for k, v := range want {
				if m[k] != v {
					continue next
				}
			}
			count, last = count+1, m
		}
		return count >= n
	})
	return last
}

// publish sends a message as the server would (the inline client bypasses the ACL).
func publish(t *testing.T, b *broker.Embedded, kind string, msg any, retained bool) {
	t.Helper()
	payload, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	b.Publish(devBase+kind, payload, retained, func(err error) {
		if err != nil {
			t.Errorf("publish %s: %v", kind, err)
		}
	})
}

func command(id, function string, params map[string]any, expires *time.Time) actions.CommandMessage {
	return actions.CommandMessage{ID: id, DispatchID: "d-" + id, Function: function, Params: params,
		IssuedAt: time.Now().UTC(), ExpiresAt: expires}
}
