package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestReadmeListsEveryFlag keeps the README's configuration table in step with
// the flags: each flag and its environment variable must be there.
func TestReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	serveFlags(&c, io.Discard).VisitAll(func(f *flag.Flag) {
		env := "DEVICEHOOKS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if !strings.Contains(string(readme), "| `--"+f.Name+"` | `"+env+"` |") {
			t.Errorf("README.md's configuration table lacks --%s (%s)", f.Name, env)
		}
	})
}
