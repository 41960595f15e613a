package testenv

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// mainRunning is set while Main runs the tests; Postgres refuses to start a
// server that nothing would stop.
var mainRunning atomic.Bool

// Main runs the package's tests and then stops anything this package started
// once per binary (the PostgreSQL server: pg_ctl -m immediate stop, remove its
// dir). Packages use it as:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	mainRunning.Store(true)
	code := m.Run()
	mainRunning.Store(false)
	if pgServer != nil {
		if err := pgServer.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}
