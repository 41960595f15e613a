// Package testenv gives tests the real external services devicehooks talks
// to: a throwaway PostgreSQL server, a throwaway Mosquitto broker and a
// headless Chromium binary, plus small helpers (free ports, polling waits).
//
// Rule: when the environment variable CI is true, a test that needs a
// service which is missing fails; outside CI it is skipped with the reason
// (see Need). Everything listens on 127.0.0.1 only, every wait has a
// deadline, and whatever is started is stopped again: per test through
// t.Cleanup, per test binary through Main.
//
// A package that uses Postgres must run its tests through Main:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
package testenv
