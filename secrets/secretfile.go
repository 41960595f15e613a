package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// maxSecretFileSize bounds what LoadOrCreateSecret reads from a secret file.
const maxSecretFileSize = 64 << 10

// LoadOrCreateSecret reads the hex-encoded server secret (at least 32 bytes
// decoded) from path, or, if path does not exist, creates it (mode 0600, with
// O_EXCL so racing processes do not clobber each other; the parent directory
// with 0700 if missing) holding 32 random bytes, and reports created=true.
// It refuses a file readable by group or others, and content that is not
// hex or too short. Surrounding whitespace (a trailing newline) is ignored.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	secret, mtime, err := readSecretFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret, err = createSecretFile(path)
		if err == nil {
			return secret, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		// Another process created the file between our read and create.
		secret, mtime, err = readSecretFile(path)
	}
	// A racing creator writes right after its exclusive create, so a reader
	// may briefly see a fresh file empty: wait a bounded time for content.
	// An empty file that is not fresh is left over and refused at once.
	deadline := time.Now().Add(emptyFileWait)
	for errors.Is(err, errEmptySecretFile) && time.Since(mtime) < emptyFileWait && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		secret, mtime, err = readSecretFile(path)
	}
	if err != nil {
		return nil, false, err
	}
	return secret, false, nil
}

// emptyFileWait is how long LoadOrCreateSecret waits for a freshly created,
// still empty secret file to be written by the process that created it.
const emptyFileWait = 2 * time.Second

var errEmptySecretFile = errors.New("file is empty")

// readSecretFile reads and checks an existing secret file.
// It also returns the file's modification time, when it could stat it.
func readSecretFile(path string) ([]byte, time.Time, error) {
	var mtime time.Time
	f, err := os.Open(path)
	if err != nil {
		return nil, mtime, fmt.Errorf("secrets: reading secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, mtime, fmt.Errorf("secrets: reading secret file: %w", err)
	}
	mtime = fi.ModTime()
	if !fi.Mode().IsRegular() {
		return nil, mtime, fmt.Errorf("secrets: secret file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, mtime, fmt.Errorf("secrets: secret file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, mtime, fmt.Errorf("secrets: reading secret file %s: %w", path, err)
	}
	if len(data) > maxSecretFileSize {
		return nil, mtime, fmt.Errorf("secrets: secret file %s is larger than %d bytes", path, maxSecretFileSize)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, mtime, fmt.Errorf("secrets: secret file %s: %w", path, errEmptySecretFile)
	}
	// The content is secret: never echo it (nor hex's offending byte).
	secret := make([]byte, hex.DecodedLen(len(data)))
	if _, err := hex.Decode(secret, data); err != nil {
		return nil, mtime, fmt.Errorf("secrets: secret file %s is not hex-encoded", path)
	}
	if len(secret) < minSecretLen {
		return nil, mtime, fmt.Errorf("secrets: secret file %s holds %d bytes, need at least %d", path, len(secret), minSecretLen)
	}
	return secret, mtime, nil
}

// createSecretFile creates path exclusively with a fresh random secret. An
// error wrapping fs.ErrExist means some other process created it first.
func createSecretFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets: creating secret file directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("secrets: creating secret file: %w", err)
	}
	secret := make([]byte, minSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, cleanupFailedCreate(f, path, err)
	}
	if _, err := f.WriteString(hex.EncodeToString(secret) + "\n"); err != nil {
		return nil, cleanupFailedCreate(f, path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, cleanupFailedCreate(f, path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("secrets: writing secret file %s: %w", path, err)
	}
	return secret, nil
}

// cleanupFailedCreate removes a secret file we created but could not fill,
// so that the next start does not find it empty.
func cleanupFailedCreate(f *os.File, path string, err error) error {
	f.Close()
	os.Remove(path)
	return fmt.Errorf("secrets: writing secret file %s: %w", path, err)
}

// ParseSecret parses a server secret given on the command line or in the
// environment: hex of at least 64 characters is decoded; otherwise any string
// of at least 32 characters is used as raw bytes. Surrounding whitespace is
// ignored in both cases.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2*minSecretLen {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	if n := utf8.RuneCountInString(s); n < minSecretLen {
		return nil, fmt.Errorf("secrets: parse secret: %d characters is too short, need %d hex bytes (%d hex characters) or %d characters", n, minSecretLen, 2*minSecretLen, minSecretLen)
	}
	return []byte(s), nil
}

// RemoveSecretFile removes the secret file at path if it holds secret: a file
// LoadOrCreateSecret made that turned out not to be wanted, and not one put
// there since (which it leaves, as it does a missing file). It tells whether
// it removed it.
func RemoveSecretFile(path string, secret []byte) bool {
	now, _, err := readSecretFile(path)
	return err == nil && bytes.Equal(now, secret) && os.Remove(path) == nil
}
