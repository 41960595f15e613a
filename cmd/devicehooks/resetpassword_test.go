package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"devicehooks/internal/testenv"
)

// An admin who forgot the password sets a new one with reset-password while
// devicehooks runs: the new password signs in, the old one does not, and
// every browser signed in before is signed out. On both databases.
func TestResetPassword(t *testing.T) {
	for _, db := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "devicehooks.db") }},
		{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(db.name, func(t *testing.T) {
			dsn := db.dsn(t)
			s := startServer(t, Config{DB: dsn, AdminUser: uiUser, AdminPassword: uiPassword})
			session := signedInSession(t, s.base, uiUser, uiPassword)

			const next = "a brand new passphrase"
			out, notes, rc := resetPasswordCmd(t, strings.NewReader(next+"\n"), "--db", dsn)
			if rc != 0 || !strings.Contains(out, `The password of "admin" is reset`) {
				t.Fatalf("exit %d, said %q, %q", rc, out, notes)
			}
			if strings.Contains(out+notes, next) {
				t.Errorf("the password was echoed: %q %q", out, notes)
			}
			if st := pageStatus(t, s.base+"/settings", session); st != http.StatusSeeOther {
				t.Errorf("a browser signed in before the reset still opens /settings: %d", st)
			}
			if st, _ := httpSignIn(t, s.base, uiUser, uiPassword); st != http.StatusUnauthorized {
				t.Errorf("the old password: %d", st)
			}
			if st := pageStatus(t, s.base+"/settings", signedInSession(t, s.base, uiUser, next)); st != http.StatusOK {
				t.Errorf("signed in with the new password, /settings: %d", st)
			}

			// --generate prints a new one, once, and names nobody's password else.
			out, notes, rc = resetPasswordCmd(t, strings.NewReader(""), "--db", dsn, "--user", uiUser, "--generate")
			generated := regexp.MustCompile(`shown only now\):\n\n    (\S+)\n`).FindStringSubmatch(out)
			if rc != 0 || generated == nil {
				t.Fatalf("exit %d, said %q, %q", rc, out, notes)
			}
			signedInSession(t, s.base, uiUser, generated[1])
		})
	}
}

// What reset-password refuses, and that a refusal changes nothing.
func TestResetPasswordRefusals(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "devicehooks.db")
	s := startServer(t, Config{DB: dsn, AdminUser: uiUser, AdminPassword: uiPassword})
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.db")
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"an unknown account", "a long enough password\n", []string{"--db", dsn, "--user", "bob"}, `no account "bob" (accounts: admin)`},
		{"a short password", "short\n", []string{"--db", dsn}, "password: must be 10 to 256 characters long"},
		{"no password", "", []string{"--db", dsn}, "no password on standard input"},
		{"the password as an argument", "", []string{"--db", dsn, "hunter2hunter2"}, "unexpected argument (the password is read from standard input, not the command line)"},
		{"a missing database file", "a long enough password\n", []string{"--db", missing}, "no such file"},
		{"a database without tables", "a long enough password\n", []string{"--db", empty}, "creates the admin account at its first start"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, notes, rc := resetPasswordCmd(t, strings.NewReader(c.stdin), c.args...)
			if rc == 0 || !strings.Contains(notes, c.want) {
				t.Errorf("exit %d, said %q; want %q", rc, notes, c.want)
			}
			if strings.Contains(notes, "hunter2") || (c.stdin != "" && strings.Contains(notes, strings.TrimSpace(c.stdin))) {
				t.Errorf("the refusal shows the password: %q", notes)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing database file was created: %v", err)
	}
	if st, _ := httpSignIn(t, s.base, uiUser, uiPassword); st != http.StatusSeeOther {
		t.Errorf("after the refusals, the password signs in: %d", st)
	}

	// Two accounts: the command asks which.
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO admin_users (id, username, password_hash, created_at, updated_at)
		SELECT 'second', 'ops', password_hash, created_at, updated_at FROM admin_users`); err != nil {
		t.Fatal(err)
	}
	_, notes, rc := resetPasswordCmd(t, strings.NewReader("a long enough password\n"), "--db", dsn)
	if want := "there are 2 accounts (admin, ops): name one with --user"; rc == 0 || !strings.Contains(notes, want) {
		t.Errorf("exit %d, said %q; want %q", rc, notes, want)
	}
}

// On a terminal the password is asked twice and not echoed; two that differ
// change nothing, and neither does Ctrl-C, which puts the echo back.
func TestResetPasswordOnATerminal(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "devicehooks.db")
	s := startServer(t, Config{DB: dsn, AdminUser: uiUser, AdminPassword: uiPassword})
	s.stop() // and from a stopped server's database too

	type terminal struct {
		master, tty *os.File
		notes       *testenv.Buffer
		done        chan int
		interrupt   context.CancelFunc
	}
	start := func() *terminal {
		master, tty := openPTY(t)
		ctx, interrupt := context.WithCancel(context.Background())
		term := &terminal{master, tty, &testenv.Buffer{}, make(chan int, 1), interrupt}
		go func() {
			term.done <- runResetPassword(ctx, []string{"--db", dsn}, tty, &testenv.Buffer{}, term.notes)
		}()
		return term
	}
	echoes := func(term *terminal) bool {
		tio, err := unix.IoctlGetTermios(int(term.tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ECHO != 0
	}
	// awaitPrompt waits for the prompt, and for the echo to be off: typing
	// before that would be echoed.
	awaitPrompt := func(term *terminal, prompt string) {
		testenv.WaitFor(t, 10*time.Second, prompt, func() bool { return strings.Contains(term.notes.String(), prompt) })
		testenv.WaitFor(t, 10*time.Second, "the echo off", func() bool { return !echoes(term) })
	}
	finish := func(term *terminal) (string, int) {
		select {
		case rc := <-term.done:
			return term.notes.String(), rc
		case <-time.After(30 * time.Second):
			t.Fatal("reset-password did not finish")
			return "", 0
		}
	}
	run := func(first, second string) (string, int) {
		term := start()
		awaitPrompt(term, "New password: ")
		fmt.Fprintf(term.master, "%s\n", first)
		awaitPrompt(term, "Repeat it: ")
		fmt.Fprintf(term.master, "%s\n", second)
		notes, rc := finish(term)
		term.tty.Close() // the master then reads what the terminal wrote back, and EIO
		if echo := readAll(term.master); strings.Contains(echo, first) || strings.Contains(echo, second) {
			t.Errorf("the terminal echoed the password: %q", echo)
		}
		return notes, rc
	}
	if notes, rc := run("one new password", "another password"); rc == 0 || !strings.Contains(notes, "the two passwords differ; nothing was changed") {
		t.Errorf("two different passwords: exit %d, said %q", rc, notes)
	}
	if notes, rc := run("one new password", "one new password"); rc != 0 {
		t.Fatalf("exit %d, said %q", rc, notes)
	}

	// Last: the interrupted read stays blocked until the test's end closes
	// its terminal.
	term := start()
	awaitPrompt(term, "New password: ")
	term.interrupt() // main's context ends on SIGINT
	if notes, rc := finish(term); rc != 1 || !strings.Contains(notes, "interrupted; nothing was changed") {
		t.Errorf("Ctrl-C: exit %d, said %q", rc, notes)
	}
	if !echoes(term) {
		t.Error("after Ctrl-C the terminal does not echo")
	}

	s.start()
	if st, _ := httpSignIn(t, s.base, uiUser, "one new password"); st != http.StatusSeeOther {
		t.Errorf("the new password: %d", st)
	}
}

func resetPasswordCmd(t *testing.T, stdin *strings.Reader, args ...string) (stdout, stderr string, rc int) {
	t.Helper()
	var out, notes bytes.Buffer
	rc = runResetPassword(context.Background(), args, stdin, &out, &notes)
	return out.String(), notes.String(), rc
}

// signedInSession signs in and returns the session cookie.
func signedInSession(t *testing.T, base, user, password string) *http.Cookie {
	t.Helper()
	resp := postSignIn(t, base, user, password)
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "devicehooks_session") && c.Value != "" {
			return c
		}
	}
	t.Fatalf("signing in as %s: %d, no session cookie", user, resp.StatusCode)
	return nil
}

// pageStatus is the status of a UI page opened with that session.
func pageStatus(t *testing.T, url string, session *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.AddCookie(session)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// openPTY opens a pseudo-terminal: the master side, which the test types
// into, and the terminal the command reads from.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pseudo-terminal's tty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// readAll reads what the terminal wrote back, until its other side is closed.
func readAll(master *os.File) string {
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got)
		}
	}
}
