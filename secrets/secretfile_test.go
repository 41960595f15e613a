package secrets

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateSecretCreatesThenReads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	path := filepath.Join(dir, "secret")

	s1, created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	if !created {
		t.Error("first call: created = false, want true")
	}
	if len(s1) != 32 {
		t.Errorf("created secret has %d bytes, want 32", len(s1))
	}
	if bytes.Equal(s1, make([]byte, 32)) {
		t.Error("created secret is all zeros")
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode = %04o, want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory mode = %04o, want 0700", perm)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(content)); got != hex.EncodeToString(s1) {
		t.Errorf("file content %q is not the hex of the returned secret", got)
	}

	s2, created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	if created {
		t.Error("second call: created = true, want false")
	}
	if !bytes.Equal(s1, s2) {
		t.Error("second call returned a different secret")
	}
	if _, err := NewKeyring(s2); err != nil {
		t.Errorf("loaded secret does not make a keyring: %v", err)
	}
}

func writeSecretFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's perm is subject to the umask; set it exactly.
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	// Files under test were written before the process started, so an
	// empty one is a leftover, not a racing creator's (see emptyFileWait).
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadOrCreateSecretReadsExisting(t *testing.T) {
	want := bytes.Repeat([]byte{0xab}, 48)
	for name, content := range map[string]string{
		"plain":               hex.EncodeToString(want),
		"trailing newline":    hex.EncodeToString(want) + "\n",
		"trailing whitespace": hex.EncodeToString(want) + " \t\r\n\n",
		"upper case hex":      strings.ToUpper(hex.EncodeToString(want)),
	} {
		t.Run(name, func(t *testing.T) {
			path := writeSecretFile(t, content, 0o600)
			got, created, err := LoadOrCreateSecret(path)
			if err != nil {
				t.Fatal(err)
			}
			if created || !bytes.Equal(got, want) {
				t.Errorf("got %x, created=%v; want %x, false", got, created, want)
			}
		})
	}
}

func TestLoadOrCreateSecretRefusesLoosePermissions(t *testing.T) {
	content := hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
		path := writeSecretFile(t, content, perm)
		_, _, err := LoadOrCreateSecret(path)
		if err == nil {
			t.Errorf("mode %04o accepted, want error", perm)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "chmod 600") || !strings.Contains(msg, path) {
			t.Errorf("mode %04o: error %q should tell the operator to chmod 600 the file", perm, msg)
		}
		if strings.Contains(err.Error(), content) {
			t.Error("error contains the secret")
		}
	}
	// 0400 is fine: owner read-only.
	if _, _, err := LoadOrCreateSecret(writeSecretFile(t, content, 0o400)); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
}

func TestLoadOrCreateSecretRefusesBadContent(t *testing.T) {
	for name, content := range map[string]string{
		"empty":          "",
		"only newline":   "\n",
		"garbage":        "this is not hex but it is long enough to be a secret otherwise!!",
		"odd hex length": strings.Repeat("a", 65),
		"too short":      hex.EncodeToString(bytes.Repeat([]byte{1}, 31)),
		"inner space":    strings.Repeat("ab", 16) + " " + strings.Repeat("ab", 16),
	} {
		t.Run(name, func(t *testing.T) {
			path := writeSecretFile(t, content, 0o600)
			start := time.Now()
			_, created, err := LoadOrCreateSecret(path)
			if err == nil {
				t.Fatal("accepted, want error")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusing took %v; a stale file must be refused at once", d)
			}
			if created {
				t.Error("created = true for an existing file")
			}
			if !strings.HasPrefix(err.Error(), "secrets: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if len(content) > 8 && strings.Contains(err.Error(), strings.TrimSpace(content)) {
				t.Errorf("error %q echoes the file content", err)
			}
			// The refused file must be left alone, not replaced.
			if got, _ := os.ReadFile(path); string(got) != content {
				t.Error("refused file was modified")
			}
		})
	}
}

func TestLoadOrCreateSecretRefusesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secret")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSecret(dir); err == nil {
		t.Error("a directory was accepted as secret file")
	}
}

// A fresh empty file is what a reader sees between a racing creator's
// exclusive create and its write: the reader waits for the content.
func TestLoadOrCreateSecretWaitsForFreshEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0x42}, 32)
	done := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		done <- os.WriteFile(path, []byte(hex.EncodeToString(want)+"\n"), 0o600)
	}()
	got, created, err := LoadOrCreateSecret(path)
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("LoadOrCreateSecret: %v", err)
	}
	if created || !bytes.Equal(got, want) {
		t.Errorf("got %x, created=%v; want the content written meanwhile, false", got, created)
	}
}

// Racing creators (processes starting together) must all end up with the
// one secret that was written, and exactly one must report created.
func TestLoadOrCreateSecretRace(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "secret")
		const n = 8
		var (
			wg       sync.WaitGroup
			secrets  [n][]byte
			created  [n]bool
			errs     [n]error
			start    = make(chan struct{})
			nCreated int
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				secrets[i], created[i], errs[i] = LoadOrCreateSecret(path)
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: caller %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(secrets[i], secrets[0]) {
				t.Fatalf("round %d: callers got different secrets", round)
			}
			if created[i] {
				nCreated++
			}
		}
		if nCreated != 1 {
			t.Fatalf("round %d: %d callers report created, want 1", round, nCreated)
		}
	}
}

func TestParseSecret(t *testing.T) {
	raw32 := bytes.Repeat([]byte{0x5a}, 32)
	hex64 := hex.EncodeToString(raw32)
	cases := []struct {
		name    string
		in      string
		want    []byte
		wantErr bool
	}{
		{"hex 64 chars", hex64, raw32, false},
		{"hex upper case", strings.ToUpper(hex64), raw32, false},
		{"hex with newline", hex64 + "\n", raw32, false},
		{"long hex", strings.Repeat("0f", 40), bytes.Repeat([]byte{0x0f}, 40), false},
		{"raw 32 chars", strings.Repeat("x", 32), []byte(strings.Repeat("x", 32)), false},
		{"passphrase", "correct horse battery staple, v2!", []byte("correct horse battery staple, v2!"), false},
		{"odd-length hex is raw", strings.Repeat("a", 65), []byte(strings.Repeat("a", 65)), false},
		{"62 hex chars is raw", strings.Repeat("ab", 31), []byte(strings.Repeat("ab", 31)), false},
		{"empty", "", nil, true},
		{"31 chars", strings.Repeat("x", 31), nil, true},
		{"short hex", hex.EncodeToString(raw32[:16]), []byte(hex.EncodeToString(raw32[:16])), false},
		{"whitespace only", strings.Repeat(" ", 40), nil, true},
		{"31 multibyte chars", strings.Repeat("é", 31), nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSecret(c.in)
			if c.wantErr {
				if err == nil {
					t.Fatalf("ParseSecret accepted %q", c.in)
				}
				if strings.Contains(err.Error(), c.in) && c.in != "" && strings.TrimSpace(c.in) != "" {
					t.Errorf("error %q echoes the input", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) {
				t.Errorf("ParseSecret(%q) = %x, want %x", c.in, got, c.want)
			}
			if len(got) < 32 {
				t.Errorf("ParseSecret returned %d bytes, less than a keyring needs", len(got))
			}
		})
	}
}

// RemoveSecretFile removes only a file that still holds the secret it was
// given: one replaced meanwhile stays, and a missing one is not made.
func TestRemoveSecretFileOnlyRemovesItsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devicehooks.secret")
	mine, created, err := LoadOrCreateSecret(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	other := filepath.Join(t.TempDir(), "other.secret")
	theirs, _, err := LoadOrCreateSecret(other)
	if err != nil {
		t.Fatal(err)
	}
	if RemoveSecretFile(path, theirs) {
		t.Fatal("removed a file that holds another secret")
	}
	if !RemoveSecretFile(path, mine) {
		t.Fatal("did not remove its own")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file is still there: %v", err)
	}
	if RemoveSecretFile(path, mine) {
		t.Fatal("removed a missing file")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file was made: %v", err)
	}
}
