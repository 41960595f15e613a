package broker

import (
	"context"
	"log/slog"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLogger is the logger handed to mochi. mochi logs a packet it refuses
// (a device's forbidden publish, say) as the whole struct, payload and all,
// in one long line; this logs it as its type, topic and packet id. And it logs
// a client's id, which the auth hook puts in its login's namespace
// ("<user>\x00<client id>"), as client.user and client.id.
func mochiLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(packetSummary{l.Handler()})
}

type packetSummary struct{ slog.Handler }

func (h packetSummary) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(summarize(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h packetSummary) WithAttrs(as []slog.Attr) slog.Handler {
	for i := range as {
		as[i] = summarize(as[i])
	}
	return packetSummary{h.Handler.WithAttrs(as)}
}

func (h packetSummary) WithGroup(name string) slog.Handler {
	return packetSummary{h.Handler.WithGroup(name)}
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
