package broker

import (
	"io"
	"log/slog"
	"testing"
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
