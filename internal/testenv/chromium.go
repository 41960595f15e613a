package testenv

import (
	"errors"
	"github.com/chromedp/chromedp"
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

// ChromiumOptions are the allocator options every browser test uses: Debian's
// Chromium found by Chromium, headless, no sandbox (tests run as root), none of
// the background networking this machine's closed network refuses, a fresh
// profile, and the given window size.
func ChromiumOptions(t testing.TB, width, height int) []chromedp.ExecAllocatorOption {
	t.Helper()
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		// The pages show times in the browser's time zone: UTC, as tests
		// expect, wherever they run (one that wants another sets it).
		chromedp.Env("TZ=UTC"),
	)
}
