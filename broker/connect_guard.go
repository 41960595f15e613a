package broker

import (
	"errors"
	"io"
	"net"
	"time"
)

// Before a client has logged in, mochi allocates whatever size its first
// packet's header claims (up to MaxPacketSize): 5 bytes could hold 256 KiB of
// memory per connection, from anyone. guardConnect checks that header first.
const (
	// MaxConnectSize bounds a CONNECT packet: a client id, a device's
	// username and token, and a small will fit many times over.
	MaxConnectSize = 16 << 10
	// connectWait is how long a new connection has to send its CONNECT; mochi
	// sets the keep-alive deadline once it has it.
	connectWait = 10 * time.Second
)

var (
	errNotConnect   = errors.New("broker: the first packet is not a CONNECT")
	errConnectSize  = errors.New("broker: CONNECT packet over the size limit")
	errBadRemaining = errors.New("broker: malformed remaining length")
)

// guardConnect reads the fixed header of conn's first packet and returns conn
// with those bytes put back, or an error if the packet is not a CONNECT of at
// most MaxConnectSize bytes.
func guardConnect(conn net.Conn) (net.Conn, error) {
	_ = conn.SetReadDeadline(time.Now().Add(connectWait))
	var hdr [5]byte // the type byte and a remaining length of up to 4 bytes
	if _, err := io.ReadFull(conn, hdr[:1]); err != nil {
		return nil, err
	}
	if hdr[0]>>4 != 1 { // CONNECT
		return nil, errNotConnect
	}
	n, size, shift := 1, 0, 0
	for {
		if n == len(hdr) {
			return nil, errBadRemaining
		}
		if _, err := io.ReadFull(conn, hdr[n:n+1]); err != nil {
			return nil, err
		}
		size |= int(hdr[n]&0x7f) << shift
		shift += 7
		n++
		if hdr[n-1]&0x80 == 0 {
			break
		}
	}
	if size > MaxConnectSize {
		return nil, errConnectSize
	}
	return &replayConn{Conn: conn, head: hdr[:n]}, nil
}

// replayConn reads head before the rest of its connection.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
