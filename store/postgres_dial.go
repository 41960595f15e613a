package store

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// deadPeerAfter bounds how long a PostgreSQL connection whose server vanished
// (its machine lost, or the network between) holds up whoever uses it. With
// the system's defaults, a query sent on it waits for TCP's retransmissions
// to give up (about 15 minutes), and an idle one is found dead after hours:
// an instance that lost its claim could not stop meanwhile, and a standby's
// pool would keep such connections.
const deadPeerAfter = 20 * time.Second

// postgresDialer connects as pgx does, with keepalives that find an idle
// connection's server gone within deadPeerAfter, and (on Linux) a TCP user
// timeout that ends a connection whose data goes unacknowledged that long. A
// connection attempt takes timeout at most (the DSN's connect_timeout also
// bounds it, through the context pgx gives).
func postgresDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control:         userTimeout(deadPeerAfter),
	}
}

// openPostgres opens a PostgreSQL database through gorm with dialPostgres.
func openPostgres(dsn string, cfg *gorm.Config) (*gorm.DB, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	pc.DialFunc = postgresDialer(max(10*time.Second, pc.ConnectTimeout)).DialContext
	return gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDB(*pc)}), cfg)
}
