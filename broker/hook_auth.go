package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
// username is the client's own.
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
	// Debug: logged before authentication, so anyone could fill the log.
	h.log.Debug("mqtt: connection refused: its will's topic is not one the client may name",
		"user", user, "will_topic", pk.Connect.WillTopic, "remote", cl.Net.Remote)
	code := packets.ErrNotAuthorized
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
	ok := false
	if user == "" {
		ok = h.cfg.AllowAnonymous && len(pk.Connect.Password) == 0
	} else {
		ok = h.cfg.Authenticate != nil && h.cfg.Authenticate(user, string(pk.Connect.Password))
	}
	if ok {
		// Sessions are found by client id: put each login's ids in its own
		// namespace, so a device that reuses another's client id cannot take
		// over (and disconnect) that device's session.
		cl.ID = user + "\x00" + cl.ID
	} else {
		h.refused.Add(1)
		h.refusedLog.note(h.log, user, cl.Net.Remote, time.Now())
	}
	return ok
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
	ok, skipped := r.once.Allow(shown, now)
	if !ok || !r.take(now) {
		return
	}
	reason := "wrong username (device id) or password (token)"
	if user == "" {
		reason = "no username"
	}
	attrs := []any{"reason", reason, "user", shown, "remote", remote}
	if skipped > 0 {
		attrs = append(attrs, "more_since_last", skipped)
	}
	log.Warn("mqtt: login refused", attrs...)
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

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return h.cfg.Allow != nil && h.cfg.Allow(string(cl.Properties.Username), topic, write)
}

// OnWill sends every will as a live message, never retained: the ACL lets a
// client set a will only on a topic it may publish to (OnConnect), and those
// are read by the server alone, which needs them live.
func (h *authHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	will.Retain = false
	return will, nil
}
