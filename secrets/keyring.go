package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// minSecretLen is the least number of bytes a server secret must have, so
// that every key derived from it carries a full 256 bits.
const minSecretLen = 32

// Labels for the purpose-specific keys; changing one changes every value
// derived with it, so they carry a version.
const (
	labelLookup = "devicehooks lookup v1"
	labelSeal   = "devicehooks seal v1"
	labelSign   = "devicehooks sign v1"
	labelCheck  = "devicehooks check v1"
)

const nonceSize = 12 // AES-GCM standard nonce

// ErrSealBroken is wrapped by every error from Keyring.Open: the sealed value
// was tampered with, truncated, is not base64, or was sealed under another secret.
var ErrSealBroken = errors.New("sealed value is broken (tampered, truncated, or sealed under a different secret)")

// Keyring derives purpose-specific keys from the server secret
// (HMAC-SHA256(secret, label) per purpose), so one secret serves hashing,
// sealing and signing without key reuse. It is safe for concurrent use.
type Keyring struct {
	lookupKey []byte
	signKey   []byte
	check     string // Fingerprint
	aead      cipher.AEAD
	lookups   sync.Pool // of HMAC-SHA256 hashes keyed with lookupKey: every webhook call hashes its key
}

// NewKeyring derives the keys from secret, which must have at least 32
// bytes. The secret itself is not retained.
func NewKeyring(secret []byte) (*Keyring, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("secrets: new keyring: secret has %d bytes, need at least %d", len(secret), minSecretLen)
	}
	block, err := aes.NewCipher(derive(secret, labelSeal))
	if err != nil {
		return nil, fmt.Errorf("secrets: new keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: new keyring: %w", err)
	}
	return &Keyring{
		lookupKey: derive(secret, labelLookup),
		signKey:   derive(secret, labelSign),
		check:     hex.EncodeToString(derive(secret, labelCheck)),
		aead:      aead,
	}, nil
}

// Fingerprint identifies the secret without revealing it (an HMAC of a
// label under it): kept with the data, it tells whether a server was started
// with the secret its data was made with.
func (k *Keyring) Fingerprint() string { return k.check }

// derive returns HMAC-SHA256(secret, label): a 32-byte key bound to label.
func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func mac(key []byte, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// LookupHash returns the hex HMAC-SHA256 of token under the lookup key. It is
// deterministic, so it can index a database column without storing the token.
func (k *Keyring) LookupHash(token string) string {
	m, _ := k.lookups.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, k.lookupKey)
	}
	m.Reset()
	m.Write([]byte(token))
	var sum [sha256.Size]byte
	out := hex.EncodeToString(m.Sum(sum[:0]))
	k.lookups.Put(m)
	return out
}

// Seal encrypts plaintext with AES-256-GCM under the seal key and a random
// 12-byte nonce, returning standard base64 of nonce|ciphertext.
func (k *Keyring) Seal(plaintext string) (string, error) {
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("secrets: seal: reading nonce: %w", err)
	}
	buf = k.aead.Seal(buf, buf[:nonceSize], []byte(plaintext), nil)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// Open reverses Seal. Any failure (garbage, truncation, tampering, another
// secret) returns an error wrapping ErrSealBroken.
func (k *Keyring) Open(sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("secrets: open: not base64: %w", ErrSealBroken)
	}
	if len(raw) < nonceSize+k.aead.Overhead() {
		return "", fmt.Errorf("secrets: open: %d bytes is too short: %w", len(raw), ErrSealBroken)
	}
	plain, err := k.aead.Open(nil, raw[:nonceSize], raw[nonceSize:], nil)
	if err != nil {
		return "", fmt.Errorf("secrets: open: authentication failed: %w", ErrSealBroken)
	}
	return string(plain), nil
}

// Sign returns the unpadded base64url HMAC-SHA256 of msg under the sign key,
// which is separate from the lookup key, for signed links and the like.
func (k *Keyring) Sign(msg []byte) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.signKey, msg))
}

// Verify reports whether sig is Sign(msg), comparing in constant time. Only
// the exact encoding Sign produces is accepted.
func (k *Keyring) Verify(msg []byte, sig string) bool {
	want := k.Sign(msg)
	return subtle.ConstantTimeCompare([]byte(want), []byte(sig)) == 1
}

// Equal reports whether a and b are equal in time that does not depend on
// their contents nor on where they differ, even when their lengths differ:
// it compares SHA-256 digests (and lengths) rather than the strings.
func Equal(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	sameHash := subtle.ConstantTimeCompare(ha[:], hb[:])
	sameLen := subtle.ConstantTimeEq(int32(len(a)), int32(len(b)))
	return sameHash&sameLen == 1
}
