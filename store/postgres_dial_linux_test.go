package store

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sys/unix"

	"devicehooks/internal/testenv"
)

// The store's connections to PostgreSQL end once the server stops
// acknowledging for deadPeerAfter, and are probed when idle: the settings are
// on the sockets of its pool.
func TestPostgresConnectionsFindADeadServer(t *testing.T) {
	st, err := Open(context.Background(), testenv.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sqlDB, err := st.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var sock net.Conn
	if err := conn.Raw(func(c any) error { sock = c.(*stdlib.Conn).Conn().PgConn().Conn(); return nil }); err != nil {
		t.Fatal(err)
	}
	raw, err := sock.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var timeout, keepalive, idle int
	var serr error
	raw.Control(func(fd uintptr) {
		if timeout, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); serr != nil {
			return
		}
		if keepalive, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE); serr != nil {
			return
		}
		idle, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	})
	if serr != nil {
		t.Fatal(serr)
	}
	if timeout != int(deadPeerAfter.Milliseconds()) || keepalive != 1 || idle != 5 {
		t.Fatalf("TCP_USER_TIMEOUT %d ms, SO_KEEPALIVE %d, TCP_KEEPIDLE %d s", timeout, keepalive, idle)
	}
}
