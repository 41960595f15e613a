package main

import (
	"os"
	"strings"
	"syscall"
)

// runtimeGODEBUG is what serve asks of the Go runtime.
//
// The embedded broker keeps two goroutines per connected player. At every
// collection the runtime halves the stacks of goroutines that use little of
// theirs, and the next message a player sends grows its stack back by copying:
// in a fan-out to 10,000 players, shrinking and regrowing stacks was 30% of the
// server's CPU. gcshrinkstackoff=1 (a documented runtime setting) leaves stacks
// at the size they reached: the fan-out's server CPU fell by 40%, for about
// 40 MB more RSS with 10,000 players connected.
const runtimeGODEBUG = "gcshrinkstackoff=1"

// withRuntimeSettings re-executes the program with runtimeGODEBUG added to
// GODEBUG, since the runtime reads it only at start. It does nothing if GODEBUG
// already says gcshrinkstackoff (the operator's choice, or the re-executed
// process), and goes on as it is if the program cannot be executed again.
func withRuntimeSettings() {
	cur := os.Getenv("GODEBUG")
	if strings.Contains(cur, "gcshrinkstackoff=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	godebug := runtimeGODEBUG
	if cur != "" {
		godebug = cur + "," + runtimeGODEBUG
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	_ = syscall.Exec(exe, os.Args, append(env, "GODEBUG="+godebug)) // returns only if it failed
}
