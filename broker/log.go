package broker

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"devicehooks/internal/logevery"
)

// mochiLogger is the logger handed to mochi. mochi logs a packet it refuses
// (a device's forbidden publish, say) as the whole struct, payload and all,
// in one long line; this logs it as its type, topic and packet id. And it logs
// a client's id, which the auth hook puts in its login's namespace
// ("<user>\x00<client id>"), as client.user and client.id.
//
// mochi logs every refused packet, and a player whose library sends a refused
// publish again at each reconnect repeats it every second or so, forever: a
// warning that names a client is logged once per refusalLogEvery for that
// login, message and error, the next line counting those left out
// (more_since_last).
func mochiLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(packetSummary{Handler: l.Handler(), every: logevery.New(refusalLogEvery)})
}

type packetSummary struct {
	slog.Handler
	every *logevery.Limiter
}

func (h packetSummary) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	user, reason := "", ""
	r.Attrs(func(a slog.Attr) bool {
		a = summarize(a)
		switch {
		case a.Key == "client" && a.Value.Kind() == slog.KindGroup:
			user = a.Value.Group()[0].Value.String()
		case a.Key == "error":
			reason = a.Value.String()
		}
		out.AddAttrs(a)
		return true
	})
	if r.Level >= slog.LevelWarn && user != "" {
		at := r.Time
		if at.IsZero() { // slog allows a record without a time
			at = time.Now()
		}
		ok, skipped := h.every.Allow(r.Message+"\x00"+user+"\x00"+reason, at)
		if !ok {
			return nil
		}
		if skipped > 0 {
			out.AddAttrs(slog.Int("more_since_last", skipped))
		}
	}
	return h.Handler.Handle(ctx, out)
}

func (h packetSummary) WithAttrs(as []slog.Attr) slog.Handler {
	for i := range as {
		as[i] = summarize(as[i])
	}
	return packetSummary{h.Handler.WithAttrs(as), h.every}
}

func (h packetSummary) WithGroup(name string) slog.Handler {
	return packetSummary{h.Handler.WithGroup(name), h.every}
}

func summarize(a slog.Attr) slog.Attr {
	var pk *packets.Packet
	switch v := a.Value.Any().(type) {
	case packets.Packet:
		pk = &v
	case *packets.Packet:
		pk = v
	case string:
		if user, id, ok := strings.Cut(v, "\x00"); ok && a.Key == "client" {
			return slog.Group(a.Key, "user", user, "id", id)
		}
		return a
	default:
		return a
	}
	if pk == nil {
		return a
	}
	attrs := []any{"type", packets.PacketNames[pk.FixedHeader.Type]}
	if pk.TopicName != "" {
		attrs = append(attrs, "topic", pk.TopicName)
	}
	if pk.PacketID != 0 {
		attrs = append(attrs, "id", pk.PacketID)
	}
	return slog.Group(a.Key, attrs...)
}
