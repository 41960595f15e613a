package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"devicehooks/internal/logevery"
	"devicehooks/secrets"
)

// authHook admits clients by username and password, enforces the ACL, and
// keeps wills to the ACL too.
type authHook struct {
	mqtt.HookBase
	cfg EmbeddedConfig
	srv *mqtt.Server
	log *slog.Logger

	refused    atomic.Int64 // logins refused, since start
	denied     atomic.Int64 // wills, subscriptions and publishes of logged-in clients refused, since start
	refusedLog *refusalLog
}

func (h *authHook) ID() string { return "devicehooks-auth" }

func (h *authHook) Provides(b byte) bool {
	switch b { // asked for every hook on every event: keep it cheap
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnWill:
		return true
	}
	return false
}

// OnConnect refuses, as not authorised, a client whose will names a topic it
// may not (WillAllowed, or else a topic its username may not publish to).
// mochi publishes a will without asking the ACL, so a device could otherwise
// send any message to any topic, retained, by connecting with it as its will
// and dropping the connection. Authentication follows and checks that the
// username is the client's own; a client it would refuse too is refused here
// as a bad login.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	user, topic := string(pk.Connect.Username), pk.Connect.WillTopic
	allowed := h.cfg.Allow != nil && h.cfg.Allow(user, topic, true)
	if h.cfg.WillAllowed != nil {
		allowed = h.cfg.WillAllowed(user, topic)
	}
	if allowed {
		return nil
	}
	// Refused before authentication. A client whose credentials are good (a
	// player with another topic prefix than the server's) gets a line,
	// limited as refused logins are. Any other would be refused its login
	// too (a username and password swapped: its will names the device's
	// topic, not the token's): it is a refused login, counted and logged as
	// one, its username masked.
	code := packets.ErrNotAuthorized
	if h.authenticated(user, pk.Connect.Password) {
		h.denied.Add(1)
		h.refusedLog.warn(h.log, "will:"+user, time.Now(), "mqtt: connection refused: its will names a topic the device may not use",
			"user", user, "will_topic", clip(topic), "why", h.why(user, topic, "will"), "remote", cl.Net.Remote)
	} else {
		h.refuse(user, cl.Net.Remote)
		code = packets.ErrBadUsernameOrPassword
	}
	if cl.Properties.ProtocolVersion < 5 {
		// mochi sends MQTT 3's "not authorised" (5) for this one; it has no
		// MQTT 3 code for ErrNotAuthorized and would send 0x87.
		code = packets.ErrBadUsernameOrPassword
	}
	if err := h.srv.SendConnack(cl, code, false, nil); err != nil {
		return err
	}
	return code
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if h.authenticated(user, pk.Connect.Password) {
		// Sessions are found by client id: put each login's ids in its own
		// namespace, so a device that reuses another's client id cannot take
		// over (and disconnect) that device's session.
		cl.ID = user + "\x00" + cl.ID
		return true
	}
	h.refuse(user, cl.Net.Remote)
	return false
}

// refuse counts and logs a refused login.
func (h *authHook) refuse(user, remote string) {
	h.refused.Add(1)
	h.refusedLog.note(h.log, user, remote, time.Now())
}

// authenticated tells whether a login with user and password is let in.
func (h *authHook) authenticated(user string, password []byte) bool {
	if user == "" {
		return h.cfg.AllowAnonymous && len(password) == 0
	}
	return h.cfg.Authenticate != nil && h.cfg.Authenticate(user, string(password))
}

// refusalLogEvery is how often at most a refused login is logged for one
// username. Anyone can try to log in, so each refusal cannot have its line:
// one per username every few seconds, with the count of those it stands for,
// tells an operator which player is misconfigured; refusalLinesMax bounds the
// lines of all usernames together, so that a scan through many names does not
// fill the log either.
const (
	refusalLogEvery = 10 * time.Second
	refusalLinesMax = 10 // per refusalLogEvery, for all usernames
)

// refusalLog logs refused logins: once per refusalLogEvery for each username,
// and refusalLinesMax lines per refusalLogEvery at most.
type refusalLog struct {
	once      *logevery.Limiter // per username
	plausible func(string) bool // EmbeddedConfig.PlausibleUser

	mu     sync.Mutex
	window time.Time // the start of the current refusalLogEvery
	lines  int       // written in it
}

func newRefusalLog(plausible func(string) bool) *refusalLog {
	return &refusalLog{once: logevery.New(refusalLogEvery), plausible: plausible}
}

func (r *refusalLog) note(log *slog.Logger, user, remote string, now time.Time) {
	shown := r.loggableUser(user)
	reason := "wrong username (device id) or password (token)"
	if user == "" {
		reason = "no username"
	}
	r.warn(log, shown, now, "mqtt: login refused", "reason", reason, "user", shown, "remote", remote)
}

// warn logs msg at Warn, once per refusalLogEvery for key, within the lines
// of all keys together, with how many like it were left out for key.
func (r *refusalLog) warn(log *slog.Logger, key string, now time.Time, msg string, attrs ...any) {
	ok, skipped := r.once.Allow(key, now)
	if !ok || !r.take(now) {
		return
	}
	if skipped > 0 {
		attrs = append(attrs, "more_since_last", skipped)
	}
	log.Warn(msg, attrs...)
}

// take reports whether the window has room for another line.
func (r *refusalLog) take(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.window) >= refusalLogEvery {
		r.window, r.lines = now, 0
	}
	if r.lines >= refusalLinesMax {
		return false
	}
	r.lines++
	return true
}

// loggableUser is a refused username as the log shows it: a possible
// username as it is, unless it is a token (a player with its username and
// password swapped), which is masked; anything else by its length.
func (r *refusalLog) loggableUser(user string) string {
	if r.plausible == nil || !r.plausible(user) {
		return fmt.Sprintf("(not a device id: %d bytes)", len(user))
	}
	return secrets.Mask(user)
}

// clip bounds a client's text (a topic) for a log line.
func clip(s string) string {
	const n = 200
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if h.cfg.Allow != nil && h.cfg.Allow(user, topic, write) {
		return true
	}
	if !cl.Net.Inline {
		// A logged-in player using a topic it may not: most often another
		// topic prefix than the server's, which it would never hear of.
		h.denied.Add(1)
		access := "subscribe"
		if write {
			access = "publish"
		}
		h.refusedLog.warn(h.log, "acl:"+user, time.Now(), "mqtt: refused a topic the device may not use",
			"user", user, "access", access, "topic", clip(topic), "why", h.why(user, topic, access), "remote", cl.Net.Remote)
	}
	return false
}

// why is the reason WhyRefused gives, or the likeliest one.
func (h *authHook) why(user, topic, access string) string {
	if h.cfg.WhyRefused == nil {
		return "a topic prefix other than the server's?"
	}
	return h.cfg.WhyRefused(user, topic, access)
}

// OnWill sends every will as a live message, never retained: the ACL lets a
// client set a will only on a topic it may publish to (OnConnect), and those
// are read by the server alone, which needs them live.
func (h *authHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	will.Retain = false
	return will, nil
}
