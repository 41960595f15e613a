package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"devicehooks/auth"
	"devicehooks/internal/testenv"
)

func TestServeFlagsFromTheEnvironment(t *testing.T) {
	parse := func(t *testing.T, env map[string]string, args ...string) *Config {
		t.Helper()
		c, err := parseServeFlags(args, io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("a set but empty variable turns a text setting off", func(t *testing.T) {
		if c := parse(t, map[string]string{"DEVICEHOOKS_MQTT_WS_LISTEN": ""}); c.MQTTWSListen != "" {
			t.Fatalf("--mqtt-ws-listen = %q", c.MQTTWSListen)
		}
		if c := parse(t, nil); c.MQTTWSListen == "" {
			t.Fatal("unset, the websocket listener has no default")
		}
	})
	t.Run("an empty variable otherwise means the default", func(t *testing.T) {
		c := parse(t, map[string]string{"DEVICEHOOKS_MAX_TARGETS": "", "DEVICEHOOKS_SECURE_COOKIES": "",
			"DEVICEHOOKS_HTTP_ADDR": "", "DEVICEHOOKS_MQTT_LISTEN": "", "DEVICEHOOKS_ADMIN_USER": ""})
		if c.MaxTargets != 0 || c.SecureCookies || c.HTTPAddr != ":8080" || c.MQTTListen != ":1883" || c.AdminUser != "admin" {
			t.Fatalf("max targets %d, secure cookies %v, http %q, mqtt %q, admin user %q",
				c.MaxTargets, c.SecureCookies, c.HTTPAddr, c.MQTTListen, c.AdminUser)
		}
	})
	t.Run("an empty listen address or admin user as a flag is refused", func(t *testing.T) {
		for _, args := range [][]string{{"--http-addr="}, {"--admin-user="}} {
			if _, err := parseServeFlags(args, io.Discard, func(string) (string, bool) { return "", false }); err == nil {
				t.Errorf("%v accepted", args)
			}
		}
	})
	t.Run("a bad proxy range or public URL is refused before anything starts", func(t *testing.T) {
		for _, args := range [][]string{{"--trusted-proxies", "10.0.0.0/8,bogus"}, {"--public-url", "hooks.example.com"},
			{"--public-url", "ftp://hooks.example.com"}, {"--public-url", "https://user:pw@hooks.example.com"}} {
			_, err := parseServeFlags(args, io.Discard, func(string) (string, bool) { return "", false })
			if err == nil || !strings.Contains(err.Error(), args[0]) {
				t.Errorf("%v: %v", args, err)
			}
		}
		for _, args := range [][]string{{"--trusted-proxies", "10.0.0.0/8, 192.168.1.7,::1"}, {"--public-url", "https://hooks.example.com/dh"}} {
			if _, err := parseServeFlags(args, io.Discard, func(string) (string, bool) { return "", false }); err != nil {
				t.Errorf("%v: %v", args, err)
			}
		}
	})
	t.Run("a bad value in the environment is named with its variable, and what it must be", func(t *testing.T) {
		for _, c := range []struct{ env, value, want string }{
			{"DEVICEHOOKS_MAX_BODY_BYTES", "abc", `DEVICEHOOKS_MAX_BODY_BYTES="abc": parse error (a whole number)`},
			{"DEVICEHOOKS_HTTP_IDLE_TIMEOUT", "5", `DEVICEHOOKS_HTTP_IDLE_TIMEOUT="5": parse error (a duration with its unit, such as 30s, 5m or 1h30m)`},
			{"DEVICEHOOKS_MQTT_ALLOW_ANONYMOUS", "yes please", `DEVICEHOOKS_MQTT_ALLOW_ANONYMOUS="yes please": parse error (true or false)`},
		} {
			_, err := parseServeFlags(nil, io.Discard, func(k string) (string, bool) { return c.value, k == c.env })
			if err == nil || err.Error() != c.want {
				t.Errorf("%s=%q: error %v, want %s", c.env, c.value, err, c.want)
			}
		}
	})
	t.Run("a flag wins over the environment", func(t *testing.T) {
		if c := parse(t, map[string]string{"DEVICEHOOKS_MAX_TARGETS": "5"}, "--max-targets", "7"); c.MaxTargets != 7 {
			t.Fatalf("--max-targets = %d", c.MaxTargets)
		}
	})
	t.Run("cookies are Secure when the public URL is https", func(t *testing.T) {
		if c := parse(t, nil, "--public-url", "https://signage.example.com"); !c.SecureCookies {
			t.Fatal("https public URL without --secure-cookies: cookies not Secure")
		}
		if c := parse(t, nil, "--public-url", "http://10.0.0.5:8080"); c.SecureCookies {
			t.Fatal("http public URL: cookies Secure")
		}
		if c := parse(t, map[string]string{"DEVICEHOOKS_SECURE_COOKIES": "false"}, "--public-url", "https://x.example"); c.SecureCookies {
			t.Fatal("DEVICEHOOKS_SECURE_COOKIES=false did not win")
		}
		if c := parse(t, nil, "--public-url", "https://x.example", "--secure-cookies=false"); c.SecureCookies {
			t.Fatal("--secure-cookies=false did not win")
		}
	})
}

// A first start that fails (its HTTP port taken) creates no credentials: the
// next start creates them and prints them, once.
func TestFirstStartCredentialsSurviveAFailedStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	open := func(httpAddr string) (*App, string, error) {
		cfg := withDefaults(Config{DB: filepath.Join(dir, "dh.db"), SecretFile: filepath.Join(dir, "dh.secret"),
			HTTPAddr: httpAddr, MQTTListen: "127.0.0.1:0"})
		cfg.MQTTWSListen = ""
		out := &testenv.Buffer{}
		a := &App{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: out}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := a.Open(ctx)
		return a, out.String(), err
	}
	if _, out, err := open(taken.Addr().String()); err == nil || out != "" {
		t.Fatalf("start on a taken port: err %v, printed %q", err, out)
	}
	a, out, err := open("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !strings.Contains(out, "First start: web UI") || !strings.Contains(out, "created an admin token") {
		t.Fatalf("the start after a failed one printed:\n%s", out)
	}
}

// A start with another secret than the database was made with is refused,
// not run with every key, token and password failing; so is an upgrade from
// before the secret's fingerprint was kept, once an API key shows the secret
// is wrong.
func TestStartRefusesAnotherSecret(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "dh.db")
	open := func(secret string) error {
		cfg := withDefaults(Config{DB: db, Secret: secret, HTTPAddr: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", AdminToken: testAdminToken})
		cfg.MQTTWSListen = ""
		a := &App{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := a.Open(ctx)
		if err == nil {
			key, _, kerr := a.keys.Create(ctx, "k", auth.Limits{})
			if kerr != nil || key == nil {
				t.Fatalf("create a key: %v", kerr)
			}
		}
		a.Close()
		return err
	}
	first, other := strings.Repeat("a1", 32), strings.Repeat("b2", 32)
	if err := open(first); err != nil {
		t.Fatal(err)
	}
	if err := open(other); !errors.Is(err, auth.ErrWrongSecret) {
		t.Fatalf("start with another secret: %v", err)
	}
	if err := open(first); err != nil {
		t.Fatalf("start with the right secret again: %v", err)
	}
	// A database from before the fingerprint: its API keys tell.
	testenv.SQLiteSide(t, db)(`DELETE FROM settings`)
	if err := open(other); !errors.Is(err, auth.ErrWrongSecret) {
		t.Fatalf("upgrade with another secret: %v", err)
	}
	if err := open(first); err != nil {
		t.Fatalf("upgrade with the right secret: %v", err)
	}
	if err := open(other); !errors.Is(err, auth.ErrWrongSecret) {
		t.Fatalf("after the upgrade, another secret: %v", err)
	}
	// A start that finds no secret file (from another directory) makes one,
	// which cannot be the database's: it says so, and takes the file away
	// again, so that nobody backs it up for the right one.
	stray := filepath.Join(t.TempDir(), "devicehooks.secret")
	cfg := withDefaults(Config{DB: db, SecretFile: stray, HTTPAddr: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", AdminToken: testAdminToken})
	cfg.MQTTWSListen = ""
	var logs testenv.Buffer
	a := &App{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil)), Stdout: io.Discard}
	err := a.Open(context.Background())
	a.Close()
	if !errors.Is(err, auth.ErrWrongSecret) || !strings.Contains(err.Error(), "no secret file was at "+stray) {
		t.Fatalf("a start that made a new secret: %v", err)
	}
	if _, serr := os.Stat(stray); !errors.Is(serr, os.ErrNotExist) || strings.Contains(logs.String(), "back it up") {
		t.Fatalf("the new secret is still there (%v), or was announced:\n%s", serr, logs.String())
	}
}

// A first start whose database does not open (here PostgreSQL refuses TLS)
// takes away the secret file it made, so that the start that opens it makes
// the file again and says so; a database setting that cannot be read makes
// nothing at all, and is not quoted.
func TestSecretOfAStartThatFailedGoes(t *testing.T) {
	dsn := strings.Replace(testenv.Postgres(t), "sslmode=disable", "sslmode=require", 1)
	for _, db := range []string{dsn, "host=127.0.0.1 user=dh password=s3cretPGpass dbname=devicehooks"} {
		secret := filepath.Join(t.TempDir(), "devicehooks.secret")
		cfg := withDefaults(Config{DB: db, SecretFile: secret, HTTPAddr: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", AdminToken: testAdminToken})
		cfg.MQTTWSListen = ""
		var logs testenv.Buffer
		a := &App{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil)), Stdout: io.Discard}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := a.Open(ctx)
		cancel()
		a.Close()
		if err == nil || strings.Contains(err.Error()+logs.String(), "s3cretPGpass") {
			t.Fatalf("%s: %v\n%s", db, err, logs.String())
		}
		if _, serr := os.Stat(secret); !errors.Is(serr, os.ErrNotExist) || strings.Contains(logs.String(), "back it up") {
			t.Fatalf("%s: the new secret is still there (%v), or was announced:\n%s", db, serr, logs.String())
		}
	}
}

// A database from before the fingerprint that holds credentials but no API
// key cannot check the secret: it is not pinned to the one given (which may be
// wrong, and would then lock the right one out). A standby with another
// secret than the active instance's is refused at once, not at takeover.
func TestSecretThatCannotBeCheckedIsNotPinned(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "dh.db")
	first, other := strings.Repeat("a1", 32), strings.Repeat("b2", 32)
	open := func(secret string) (*App, error) {
		cfg := withDefaults(Config{DB: db, Secret: secret, HTTPAddr: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", AdminToken: testAdminToken})
		cfg.MQTTWSListen = ""
		a := &App{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return a, a.Open(ctx)
	}
	a, err := open(first)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.devices.Create(context.Background(), "d1", ""); err != nil {
		t.Fatal(err)
	}
	a.Close()
	exec := testenv.SQLiteSide(t, db)
	exec(`DELETE FROM settings`) // as before fingerprints
	if a, err = open(other); err != nil {
		t.Fatalf("a start that cannot check the secret: %v", err)
	}
	a.Close()
	if a, err = open(first); err != nil {
		t.Fatalf("the right secret after an unchecked start with another: %v", err)
	}
	if _, _, err := a.keys.Create(context.Background(), "k", auth.Limits{}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// The next start checks the secret with the key, and pins it.
	if a, err = open(first); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// With the first running, a standby with another secret: refused at once.
	start := time.Now()
	if b, err := open(other); !errors.Is(err, auth.ErrWrongSecret) || time.Since(start) > 10*time.Second {
		b.Close()
		t.Fatalf("standby with another secret: %v after %v", err, time.Since(start))
	}
}

// Help texts show no secret from the environment (a flag's default is printed
// with -h): an admin token, a broker password, a PostgreSQL URL's password.
func TestHelpShowsNoSecretFromTheEnvironment(t *testing.T) {
	t.Setenv("DEVICEHOOKS_ADMIN_TOKEN", "dha_envtoken-0123456789abcdef0123456789")
	t.Setenv("DEVICEHOOKS_MQTT_PASSWORD", "env-broker-password")
	t.Setenv("DEVICEHOOKS_DB", "postgres://dh:env-db-password@127.0.0.1/dh")
	for _, cmd := range []string{"serve", "simulate", "mosquitto-passwd", "reset-password", "copy-db"} {
		out := &testenv.Buffer{}
		if code := run(context.Background(), []string{cmd, "-h"}, out, out); code != 0 {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
		for _, secret := range []string{"envtoken", "env-broker-password", "env-db-password"} {
			if strings.Contains(out.String(), secret) {
				t.Errorf("%s -h shows %q:\n%s", cmd, secret, out)
			}
		}
		if !strings.Contains(out.String(), "Usage") {
			t.Errorf("%s -h has no usage text:\n%s", cmd, out)
		}
	}
}

// The JSON log writes durations as the text log and the docs do ("390ms"),
// not as nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger(&out, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("database ready", "schema_checked_in", 390*time.Millisecond)
	if !strings.Contains(out.String(), `"schema_checked_in":"390ms"`) {
		t.Fatalf("logged %s", out.String())
	}
}

// A broker that lets clients in without credentials says so at start.
func TestAnonymousBrokerIsWarnedOf(t *testing.T) {
	s := startServer(t, Config{MQTTAllowAnonymous: true})
	if logs := s.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "--mqtt-allow-anonymous") {
		t.Fatalf("no warning in:\n%s", logs)
	}
}
