package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"devicehooks/auth"
	"devicehooks/secrets"
	"devicehooks/store"
)

// runResetPassword sets a new password for a web UI account: the way back in
// when the password is forgotten, or the first start's generated one was lost.
// It works on the database directly (beside a running server too) and needs no
// server secret.
func runResetPassword(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reset-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "SQLite file path or postgres:// URL (default: DEVICEHOOKS_DB, as serve's, or devicehooks.db)")
	user := fs.String("user", "", "the account (default: the only one there is)")
	generate := fs.Bool("generate", false, "generate a password and print it once, instead of reading one")
	fs.Usage = func() {
		io.WriteString(stderr, `Usage: devicehooks reset-password [flags]

Sets a new password for a web UI account, for when it is forgotten. The new
password is read from the terminal (twice, not echoed), or as one line from
standard input (printf '%s\n' "$PASSWORD" | devicehooks reset-password), or
generated with --generate. Every browser signed in as the account is signed
out. It can run beside a running devicehooks; a lockout after failed sign-ins
there still holds until it ends (15 minutes) or devicehooks restarts. Give a
PostgreSQL URL with a password in DEVICEHOOKS_DB rather than --db.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		// Not shown: it may well be the password.
		fmt.Fprintln(stderr, "devicehooks reset-password: unexpected argument (the password is read from standard input, not the command line)")
		return 2
	}
	if *db == "" {
		*db = envOr("DEVICEHOOKS_DB", "devicehooks.db")
	}
	if err := resetPassword(ctx, *db, *user, *generate, stdin, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "devicehooks reset-password:", err)
		return 1
	}
	return 0
}

func resetPassword(ctx context.Context, dsn, username string, generate bool, stdin io.Reader, stdout, stderr io.Writer) error {
	st, err := openExisting(ctx, dsn)
	if errors.Is(err, store.ErrNoSchema) {
		return fmt.Errorf("%w; devicehooks serve creates the admin account at its first start", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if username == "" {
		if username, err = onlyAccount(ctx, st); err != nil {
			return err
		}
	}
	password := auth.GeneratePassword()
	if !generate {
		if password, err = readNewPassword(ctx, stdin, stderr); err != nil {
			return err
		}
	}
	err = auth.ResetPassword(ctx, st, username, password)
	if errors.Is(err, store.ErrNotFound) {
		names, _ := st.AdminUsernames(ctx)
		return fmt.Errorf("no account %q (accounts: %s)", username, strings.Join(names, ", "))
	}
	if err != nil {
		return err
	}
	if generate {
		fmt.Fprintf(stdout, "New password of %q (shown only now):\n\n    %s\n\n", username, password)
	}
	// Named, so that a reset of the wrong file (run from another folder) shows.
	fmt.Fprintf(stdout, "The password of %q is reset in %s; every browser signed in as it is signed out.\n",
		username, secrets.RedactURL(dsn))
	return nil
}

// onlyAccount returns the username of the one web UI account.
func onlyAccount(ctx context.Context, st *store.Store) (string, error) {
	names, err := st.AdminUsernames(ctx)
	switch {
	case err != nil:
		return "", err
	case len(names) == 0:
		return "", errors.New("there is no web UI account yet: devicehooks serve creates it at its first start")
	case len(names) > 1:
		return "", fmt.Errorf("there are %d accounts (%s): name one with --user", len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}

// readNewPassword reads the new password: from a terminal twice without echo,
// otherwise as the first line of stdin.
func readNewPassword(ctx context.Context, stdin io.Reader, stderr io.Writer) (string, error) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return "", errors.New("no password on standard input (one line), and no --generate")
		}
		return line, nil
	}
	first, err := promptPassword(ctx, f, stderr, "New password: ")
	if err != nil {
		return "", err
	}
	again, err := promptPassword(ctx, f, stderr, "Repeat it: ")
	if err != nil {
		return "", err
	}
	if first != again {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return first, nil
}

// promptPassword asks for a password on a terminal, without echo. Ctrl-C
// (which ends ctx: main catches SIGINT) gives up and puts the echo back.
func promptPassword(ctx context.Context, tty *os.File, stderr io.Writer, prompt string) (string, error) {
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	fmt.Fprint(stderr, prompt)
	type result struct {
		pw  []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		pw, err := term.ReadPassword(fd)
		read <- result{pw, err}
	}()
	select {
	case r := <-read:
		fmt.Fprintln(stderr)
		if r.err != nil {
			return "", fmt.Errorf("read the password: %w", r.err)
		}
		return string(r.pw), nil
	case <-ctx.Done():
		term.Restore(fd, state) // the read is left behind; the process ends
		fmt.Fprintln(stderr)
		return "", errors.New("interrupted; nothing was changed")
	}
}
