package testenv

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

// chromiumNames are the executable names looked up on PATH, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Chromium returns the path of a Chromium/Chrome binary for chromedp (looks
// for chromium, chromium-browser, google-chrome on PATH and /usr/bin/chromium),
// or Need()s it.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const fallback = "/usr/bin/chromium"
	if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return fallback
	}
	Need(t, "Chromium (headless browser, Debian package chromium)",
		errors.New("none of chromium, chromium-browser, google-chrome on PATH, and no /usr/bin/chromium"))
	return ""
}
