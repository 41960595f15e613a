package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"devicehooks/store"
)

// runMosquittoPasswd prints a Mosquitto password file with every device's
// credentials (Mosquitto's own PBKDF2 hash of the device token; the token itself
// is never stored), so an external Mosquitto admits exactly the registered
// devices. Lines of --include (the server's own account, say) come first.
func runMosquittoPasswd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mosquitto-passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Not the environment's value as the flag's default: -h would print a
	// PostgreSQL URL's password.
	db := fs.String("db", "", "SQLite file path or postgres:// URL (default: DEVICEHOOKS_DB, as serve's, or devicehooks.db)")
	include := fs.String("include", "", "password file whose lines are copied first (e.g. the account devicehooks itself uses); - reads them from the standard input (a file the command's user may not read, redirected by root's shell)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: devicehooks mosquitto-passwd [flags] > mosquitto.passwd.new

Prints a Mosquitto password file admitting every registered device (Mosquitto's
own hash of its token), after the lines of --include. Run it again, and reload
Mosquitto, whenever devices are added, rotated or deleted (docs/operations.md,
"External broker: Mosquitto"). Give a PostgreSQL URL with a password in
DEVICEHOOKS_DB rather than --db: a command line is visible to every user (ps).

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *db == "" {
		*db = envOr("DEVICEHOOKS_DB", "devicehooks.db")
	}
	var lines io.Reader
	switch *include {
	case "":
	case "-":
		lines = os.Stdin
	default:
		f, err := os.Open(*include)
		if err != nil {
			fmt.Fprintln(stderr, "devicehooks mosquitto-passwd:", err)
			return 1
		}
		defer f.Close()
		lines = f
	}
	if err := writeMosquittoPasswd(ctx, *db, lines, *include, stdout); err != nil {
		fmt.Fprintln(stderr, "devicehooks mosquitto-passwd:", err)
		return 1
	}
	return 0
}

// writeMosquittoPasswd writes the lines of include, if not nil (named so in
// errors), then the devices' lines.
func writeMosquittoPasswd(ctx context.Context, dsn string, include io.Reader, includeName string, w io.Writer) error {
	// Before the first serve there are no tables: say so, and fail, since a
	// file without the devices must never replace the live one by mistake (a
	// wrong database, a role that cannot see the tables).
	st, err := openExisting(ctx, dsn)
	if errors.Is(err, store.ErrNoSchema) {
		return fmt.Errorf("%w; before devicehooks' first start, use the --include file alone as the password file", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	devs, err := st.MosquittoCredentials(ctx)
	if err != nil {
		return err
	}
	// Made whole before any of it is written: a refusal leaves nothing
	// behind, even where the output goes straight to the live file.
	var out bytes.Buffer
	taken := map[string]bool{}
	if include != nil {
		b, err := io.ReadAll(include)
		if err != nil {
			return fmt.Errorf("read %s: %w", includeName, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if user, _, ok := strings.Cut(line, ":"); ok {
				taken[user] = true
				fmt.Fprintln(&out, line)
			}
		}
	}
	for _, d := range devs {
		if taken[d.ID] {
			return fmt.Errorf("device id %q is also a user in %s", d.ID, includeName)
		}
		fmt.Fprintf(&out, "%s:%s\n", d.ID, d.MosquittoHash)
	}
	_, err = out.WriteTo(w)
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
