package store

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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

// errPostgresURL says how to write a PostgreSQL URL, without quoting one.
var errPostgresURL = errors.New("cannot parse the PostgreSQL URL: write it as postgres://user:password@host:port/database?sslmode=…, " +
	"with any /, ?, #, @, : or % in the user or the password percent-encoded (%2F, %3F, %23, %40, %3A, %25)")

// isURLShapeError tells pgx's complaints about a URL whose parts could not be
// told apart (pgconn's words) from those about a setting's value (sslmode,
// a CA file). Since pgx v5.11, which reads URLs as libpq does, an unencoded
// / in the password ends the host part, so that what came before it is
// read as a host and a port: "invalid port". A port that is wrong in itself
// gets the same advice, which covers it too.
func isURLShapeError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to parse as URL") || strings.Contains(msg, ": invalid port")
}

// hostHasAt tells a configuration whose host, or a fallback's, has an '@'
// in it, which no host name has.
func hostHasAt(pc *pgx.ConnConfig) bool {
	if strings.Contains(pc.Host, "@") {
		return true
	}
	for _, f := range pc.Fallbacks {
		if strings.Contains(f.Host, "@") {
			return true
		}
	}
	return false
}

// libpqKeywords are the keywords of a libpq key=value connection string
// ("host=db user=app password=…") that one begins with, or that holds a
// password.
var libpqKeywords = []string{"host", "hostaddr", "port", "dbname", "user", "password", "passfile",
	"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options", "service"}

// isKeywordDSN tells a libpq key=value connection string, which devicehooks
// does not take, from an SQLite file's path: read as a path, it would make
// a new SQLite database named after it, password and all. It begins with
// one of libpq's keywords and '=', or has a password= in it.
func isKeywordDSN(dsn string) bool {
	fields := strings.Fields(dsn)
	if len(fields) == 0 {
		return false
	}
	k, _, ok := strings.Cut(fields[0], "=")
	return ok && slices.Contains(libpqKeywords, k) ||
		slices.ContainsFunc(fields, func(f string) bool { return strings.HasPrefix(f, "password=") })
}

// CheckDSN refuses, before anything is made of it, a database setting that
// is neither an SQLite file's path nor a postgres:// URL.
func CheckDSN(dsn string) error {
	if isKeywordDSN(dsn) {
		return errKeywordDSN
	}
	return nil
}

// errKeywordDSN refuses a key=value connection string, without quoting it.
var errKeywordDSN = errors.New("the database is given as a key=value connection string (host=… user=…), which devicehooks does not take: " +
	"write it as a URL, postgres://user:password@host:port/database?sslmode=…")

// openPostgres opens a PostgreSQL database through gorm with dialPostgres.
func openPostgres(dsn string, cfg *gorm.Config) (*gorm.DB, error) {
	pc, err := pgx.ParseConfig(dsn)
	switch {
	case err != nil && isURLShapeError(err):
		// The URL's parts could not be told apart, so pgx's masking of
		// the password in its message is a guess: say what to check instead.
		return nil, errPostgresURL
	case err != nil:
		return nil, err // pgx's own, the password masked: "unable to read CA file", say
	case hostHasAt(pc):
		// An unencoded @ in the password: pgx, as libpq, ends the user
		// info at the first one, and the rest of the password is taken
		// for the host, which the connection's error would quote.
		return nil, errPostgresURL
	}
	pc.DialFunc = postgresDialer(max(10*time.Second, pc.ConnectTimeout)).DialContext
	if pc.RuntimeParams["application_name"] == "" {
		// Its connections, told apart in pg_stat_activity.
		pc.RuntimeParams["application_name"] = "devicehooks"
	}
	return gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(readTimesInUTC))}), cfg)
}

// readTimesInUTC has a connection read a timestamptz in UTC, as SQLite's are
// read and as every time is written: pgx reads one in the machine's zone, so
// a server run with TZ=America/New_York answered its API's times at -05:00.
func readTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}
