package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"devicehooks/internal/testenv"
)

// TestMain lets the test binary be the naive handler too, as the benchmark
// runs itself for it; testenv.Main stops the PostgreSQL server it may start.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == naiveCommand {
		os.Exit(naiveMain(os.Args[2:]))
	}
	os.Exit(testenv.Main(m))
}

// TestShortRun runs the benchmark's short path end to end against a real server
// process with its embedded broker: every accepted trigger must reach its player
// exactly once, and the results must be written as JSON.
func TestShortRun(t *testing.T) {
	v, out := shortRun(t)
	if s := v.RawSerial; s == nil || s.Window != 1 || s.Rate <= 0 || s.Lost != 0 || v.RatioSerial <= 0 {
		t.Fatalf("raw broker one message at a time: %+v, ratio %v", s, v.RatioSerial)
	}
	if n := v.Naive; n == nil || n.Throughput == nil || n.Throughput.Accepted == 0 || n.Throughput.Delivered == 0 ||
		n.HalfRate == nil || n.HalfRate.Accepted == 0 || n.Ratio <= 0 || v.VersusNaive <= 0 {
		t.Fatalf("naive handler: %+v, devicehooks against it %v", n, v.VersusNaive)
	}
	if !strings.Contains(out, "ratio to one at a time") {
		t.Errorf("the table has no ratio to the one-at-a-time rate:\n%s", out)
	}
	if !strings.Contains(out, "database: SQLite") || strings.Contains(out, "PostgreSQL") {
		t.Errorf("the table does not say the database is SQLite:\n%s", out)
	}
}

// With --postgres the same run goes through a database of its own on that server,
// dropped at the end, and PostgreSQL's CPU is measured apart from the server's.
func TestShortRunPostgres(t *testing.T) {
	admin := testenv.Postgres(t)
	v, out := shortRun(t, "--postgres", admin)
	if !strings.Contains(out, "database: PostgreSQL 1") {
		t.Errorf("the table does not name PostgreSQL and its version:\n%s", out)
	}
	for _, l := range []*loadFigures{v.Throughput, v.HalfRate} {
		if l.CPU.DatabasePercent <= 0 || l.CPU.DatabasePerTriggerMicros <= 0 {
			t.Errorf("PostgreSQL's CPU was not measured: %+v", l.CPU)
		}
	}
	if !strings.Contains(out, "; PostgreSQL ") {
		t.Errorf("the table has no PostgreSQL CPU:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname LIKE 'devicehooks_bench_%'").Scan(&left); err != nil || left != 0 {
		t.Errorf("databases the run left behind: %d (%v)", left, err)
	}
}

// shortRun runs the short benchmark with the embedded broker and small figures,
// checks that nothing was lost and every phase measured, and returns the
// broker's results and the printed table.
func shortRun(t *testing.T, args ...string) (*variantResult, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short (testing.Short): builds devicehooks and runs it as a child process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var out bytes.Buffer
	code := run(ctx, append([]string{
		"--short", "--brokers", "embedded", "--results", dir,
		"--small-players", "20", "--players", "200", "--conns", "8",
		"--warmup", "500ms", "--duration", "2s",
	}, args...), &out, &out)
	if code != 0 {
		t.Fatalf("bench exited %d:\n%s", code, out.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-short.json"))
	if len(files) != 1 {
		t.Fatalf("results files: %v\n%s", files, out.String())
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Variants) != 1 {
		t.Fatalf("variants: %d", len(rep.Variants))
	}
	v := rep.Variants[0]
	for i, l := range []*loadFigures{v.Throughput, v.HalfRate, v.ThroughputAllConnected, v.HalfRateAllConnected} {
		if l == nil || l.Accepted == 0 || l.Delivered != l.Accepted || l.Duplicates != 0 {
			t.Fatalf("load phase: %+v\n%s", l, out.String())
		}
		if want := []int{20, 20, 200, 200}[i]; l.Players != want || l.Devices != 200 {
			t.Errorf("load phase %d ran with %d players connected and %d devices registered, want %d and 200", i, l.Players, l.Devices, want)
		}
		if l.E2E.P50 <= 0 || l.E2E.Max < l.E2E.P99 || l.CPU.PerTriggerMicros <= 0 {
			t.Errorf("implausible figures: %+v", l)
		}
	}
	if len(v.Fanout) != 2 || v.Fanout[1].Received != 200 || v.Fanout[1].Succeeded != 200 {
		t.Fatalf("fan-out: %+v", v.Fanout)
	}
	if v.Raw == nil || v.Raw.Rate <= 0 || v.Memory.IdleRSSMB <= 0 || v.Memory.ConnectedRSSMB <= 0 {
		t.Fatalf("raw broker or memory figures missing: %+v %+v", v.Raw, v.Memory)
	}
	return v, out.String()
}

func TestReadAnswer(t *testing.T) {
	for name, resp := range map[string]string{
		"length":  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n{\"dispatch_id\":\"abc\",\"targets\":1}",
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"dispatch_id\":\"\r\n11\r\nabc\",\"targets\":1}\r\n0\r\n\r\n",
	} {
		k := &conn{}
		k.r = bufioReader(resp)
		status, keep, err := k.readAnswer()
		if err != nil || status != 200 || !keep {
			t.Fatalf("%s: %d %v %v", name, status, keep, err)
		}
		if id := jsonField(k.body, `"dispatch_id":"`); id != "abc" {
			t.Errorf("%s: dispatch_id %q in %q", name, id, k.body)
		}
		if n := jsonNumber(k.body, `"targets":`); n != 1 {
			t.Errorf("%s: targets %d", name, n)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// The players' MQTT packets read back as written, including a remaining length
// over one byte.
func TestPlayerPackets(t *testing.T) {
	for _, tc := range []struct {
		payload string
		qos     byte
		id      uint16
	}{{"{}", 0, 0}, {strings.Repeat("x", 300), 1, 513}} {
		raw := publishPacket("devicehooks/devices/d1/commands", []byte(tc.payload), tc.qos, true, tc.id)
		first, body, err := readPacket(bufioReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if first>>4 != 3 || first&1 != 1 || (first>>1)&3 != tc.qos {
			t.Fatalf("first byte %#x", first)
		}
		topic, payload, id, err := parsePublish(first, body)
		if err != nil || topic != "devicehooks/devices/d1/commands" || string(payload) != tc.payload || id != tc.id {
			t.Fatalf("read back %q %q %d %v", topic, payload, id, err)
		}
	}
	if _, _, err := readPacket(bufioReader("\x30\xff\xff\xff\xff\x01")); err == nil {
		t.Fatal("a five-byte remaining length was accepted")
	}
}
