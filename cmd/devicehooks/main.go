// Command devicehooks turns webhook calls into commands for digital-signage
// players over MQTT. `devicehooks serve` runs the service; `devicehooks simulate`
// runs simulated players against it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=..." (make build).
var version = "dev"

// buildVersion is version; for a plain go build, "dev" and the commit it was
// built from (with "+dirty" for uncommitted changes), so that an operator can
// tell which code runs.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if version != "dev" || !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return version
	}
	return version + "-" + rev + dirty
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		withRuntimeSettings()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `devicehooks %s: webhooks in, MQTT commands out to signage players.

Usage:
  devicehooks serve [flags]      run the service (devicehooks serve -h for flags)
  devicehooks simulate [flags]   run simulated players against a server
  devicehooks mosquitto-passwd   print a Mosquitto password file of the devices (external broker)
  devicehooks reset-password     set a new password for a web UI account (a forgotten one)
  devicehooks copy-db            copy the database into a new one (SQLite to PostgreSQL)
  devicehooks version            print the version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, buildVersion())
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(ctx, args[1:], stdout, stderr)
	case "mosquitto-passwd":
		return runMosquittoPasswd(ctx, args[1:], stdout, stderr)
	case "reset-password":
		return runResetPassword(ctx, args[1:], os.Stdin, stdout, stderr)
	case "copy-db":
		return runCopyDB(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, buildVersion())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprintf(stdout, usage, buildVersion())
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n"+usage, args[0], buildVersion())
	return 2
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServeFlags(args, stderr, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "devicehooks serve:", err)
		return 2
	}
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "devicehooks serve:", err)
		return 2
	}
	app := &App{Config: *cfg, Log: log, Stdout: stdout}
	if err := app.Open(ctx); err != nil {
		if ctx.Err() != nil { // stopped while starting (a standby, say)
			log.Info("stopped")
			return 0
		}
		log.Error("start failed", "err", err)
		return 1
	}
	// Start-up read every device into memory, leaving garbage several times
	// the size of what it kept: give it back to the system now, rather than
	// whenever the runtime gets round to it.
	debug.FreeOSMemory()
	code := 0
	select {
	case <-ctx.Done():
	case err := <-app.Failed():
		log.Error("stopping", "err", err)
		code = 1
	}
	signal.Reset(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP) // a second signal ends the process at once
	log.Info("shutting down")
	app.Close()
	log.Info("stopped")
	return code
}
