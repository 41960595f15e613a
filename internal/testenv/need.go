package testenv

import (
	"os"
	"strconv"
	"testing"
)

// InCI reports whether the environment variable CI is set to a true value
// ("true", "1", ... as accepted by strconv.ParseBool).
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// Need fails the test under CI=true, or skips it otherwise, explaining what
// is missing (what) and why (err).
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("testenv: %s is required but not available: %v (CI=true, so this is a failure)", what, err)
		return
	}
	t.Skipf("testenv: skipping: %s is not available: %v (with CI=true this would fail)", what, err)
}
