package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func testSecret(fill byte) []byte {
	return bytes.Repeat([]byte{fill}, 32)
}

func newTestKeyring(t testing.TB, fill byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(testSecret(fill))
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func TestNewKeyringRejectsShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, 16, 31} {
		if _, err := NewKeyring(make([]byte, n)); err == nil {
			t.Errorf("NewKeyring(%d bytes) succeeded, want error", n)
		} else if !strings.HasPrefix(err.Error(), "secrets: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
	if _, err := NewKeyring(make([]byte, 64)); err != nil {
		t.Errorf("NewKeyring(64 bytes): %v", err)
	}
}

// The derivation is part of the storage format: changing it would orphan
// every stored lookup hash and sealed key. Pin it against an independent
// computation.
func TestKeyDerivationIsPinned(t *testing.T) {
	secret := testSecret(7)
	k := newTestKeyring(t, 7)

	lookupKey := hmacSHA256(secret, []byte("devicehooks lookup v1"))
	if got, want := k.LookupHash("dhk_abc"), hex.EncodeToString(hmacSHA256(lookupKey, []byte("dhk_abc"))); got != want {
		t.Errorf("LookupHash = %s, want %s", got, want)
	}

	signKey := hmacSHA256(secret, []byte("devicehooks sign v1"))
	if got, want := k.Sign([]byte("link")), base64.RawURLEncoding.EncodeToString(hmacSHA256(signKey, []byte("link"))); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}

	block, err := aes.NewCipher(hmacSHA256(secret, []byte("devicehooks seal v1")))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("0123456789ab")
	sealed := base64.StdEncoding.EncodeToString(gcm.Seal(bytes.Clone(nonce), nonce, []byte("dhk_sealed"), nil))
	if got, err := k.Open(sealed); err != nil || got != "dhk_sealed" {
		t.Errorf("Open(independently sealed) = %q, %v; want dhk_sealed", got, err)
	}
}

func TestLookupHash(t *testing.T) {
	k1 := newTestKeyring(t, 1)
	k1again := newTestKeyring(t, 1)
	k2 := newTestKeyring(t, 2)
	tok := NewToken(APIKeyPrefix)

	h := k1.LookupHash(tok)
	if len(h) != 64 {
		t.Fatalf("LookupHash length = %d, want 64 hex chars", len(h))
	}
	if _, err := hex.DecodeString(h); err != nil {
		t.Fatalf("LookupHash not hex: %v", err)
	}
	if h != k1.LookupHash(tok) || h != k1again.LookupHash(tok) {
		t.Error("LookupHash is not deterministic for the same secret")
	}
	if h == k2.LookupHash(tok) {
		t.Error("LookupHash is the same under two different secrets")
	}
	if h == k1.LookupHash(tok+"x") {
		t.Error("LookupHash is the same for two different tokens")
	}
	if strings.Contains(h, tok[len(APIKeyPrefix):]) {
		t.Error("LookupHash contains the token")
	}
	// Key separation: neither the raw secret nor the sign key is used.
	if h == hex.EncodeToString(hmacSHA256(testSecret(1), []byte(tok))) {
		t.Error("LookupHash uses the raw secret as key")
	}
	if sig, _ := base64.RawURLEncoding.DecodeString(k1.Sign([]byte(tok))); hex.EncodeToString(sig) == h {
		t.Error("lookup and sign keys are the same")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := newTestKeyring(t, 1)
	for _, pt := range []string{
		"",
		"x",
		NewToken(APIKeyPrefix),
		"ünïcödé ✓ and\x00nul bytes",
		strings.Repeat("long ", 10000),
	} {
		sealed, err := k.Seal(pt)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(pt) >= 8 && strings.Contains(sealed, pt) {
			t.Errorf("sealed value contains the plaintext")
		}
		raw, err := base64.StdEncoding.DecodeString(sealed)
		if err != nil {
			t.Fatalf("sealed value is not standard base64: %v", err)
		}
		if want := 12 + len(pt) + 16; len(raw) != want {
			t.Errorf("sealed length = %d, want nonce+plaintext+tag = %d", len(raw), want)
		}
		got, err := k.Open(sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if got != pt {
			t.Errorf("round trip of %.20q gave %.20q", pt, got)
		}
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	k := newTestKeyring(t, 1)
	seen := map[string]bool{}
	for range 100 {
		s, err := k.Seal("same plaintext")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(s)
		nonce := string(raw[:12])
		if seen[nonce] {
			t.Fatal("nonce repeated")
		}
		seen[nonce] = true
	}
}

func assertBroken(t *testing.T, k *Keyring, sealed, what string) {
	t.Helper()
	got, err := k.Open(sealed)
	if err == nil {
		t.Errorf("Open(%s) succeeded with %q, want error", what, got)
		return
	}
	if !errors.Is(err, ErrSealBroken) {
		t.Errorf("Open(%s) error %v does not wrap ErrSealBroken", what, err)
	}
	if !strings.HasPrefix(err.Error(), "secrets: open: ") {
		t.Errorf("Open(%s) error %q lacks the secrets: open: prefix", what, err)
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	k := newTestKeyring(t, 1)
	const pt = "dhk_secretsecretsecret"
	sealed, err := k.Seal(pt)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed)

	// Every single flipped bit, in nonce, ciphertext or tag, must be caught.
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(raw)
			bad[i] ^= bit
			assertBroken(t, k, base64.StdEncoding.EncodeToString(bad), "flipped byte")
		}
	}
	for _, n := range []int{0, 1, 11, 12, 27, len(raw) - 1} {
		assertBroken(t, k, base64.StdEncoding.EncodeToString(raw[:n]), "truncated")
	}
	assertBroken(t, k, base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0)), "extended")
	assertBroken(t, k, sealed[:len(sealed)-4], "truncated base64")
	assertBroken(t, k, "", "empty")
	assertBroken(t, k, "not base64 at all!", "garbage")
	assertBroken(t, k, base64.URLEncoding.EncodeToString(raw)+"-_", "wrong alphabet")

	other := newTestKeyring(t, 2)
	assertBroken(t, other, sealed, "sealed under another secret")

	// The error must not echo the plaintext.
	if _, err := other.Open(sealed); err != nil && strings.Contains(err.Error(), pt) {
		t.Error("Open error contains the plaintext")
	}
}

func TestSignVerify(t *testing.T) {
	k := newTestKeyring(t, 1)
	msg := []byte("GET /export?until=1700000000")
	sig := k.Sign(msg)
	if strings.ContainsAny(sig, "+/=") {
		t.Errorf("Sign = %q, want unpadded base64url", sig)
	}
	if len(sig) != 43 {
		t.Errorf("len(Sign) = %d, want 43", len(sig))
	}
	if sig != k.Sign(msg) {
		t.Error("Sign is not deterministic")
	}
	if !k.Verify(msg, sig) {
		t.Fatal("Verify rejects a good signature")
	}
	if !newTestKeyring(t, 1).Verify(msg, sig) {
		t.Error("Verify rejects a good signature from a keyring with the same secret")
	}

	flipped := []byte(sig)
	flipped[5] ^= 1
	for name, bad := range map[string]string{
		"empty":         "",
		"flipped":       string(flipped),
		"truncated":     sig[:42],
		"padded":        sig + "=",
		"std alphabet":  base64.StdEncoding.EncodeToString(must(base64.RawURLEncoding.DecodeString(sig))),
		"lookup hash":   k.LookupHash(string(msg)),
		"other message": k.Sign([]byte("GET /export?until=1800000000")),
	} {
		if bad != sig && k.Verify(msg, bad) {
			t.Errorf("Verify accepted %s signature %q", name, bad)
		}
	}
	if k.Verify([]byte("other"), sig) {
		t.Error("Verify accepted the signature for another message")
	}
	if newTestKeyring(t, 2).Verify(msg, sig) {
		t.Error("Verify accepted a signature made under another secret")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestKeyringConcurrentUse(t *testing.T) {
	k := newTestKeyring(t, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				pt := RandomString(g + i%17)
				s, err := k.Seal(pt)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.Open(s)
				if err != nil || got != pt {
					errs <- errors.New("concurrent round trip failed")
					return
				}
				if h1, h2 := k.LookupHash(pt), k.LookupHash(pt); !k.Verify([]byte(pt), k.Sign([]byte(pt))) || h1 != h2 {
					errs <- errors.New("concurrent sign/lookup failed")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestEqual(t *testing.T) {
	tok := NewToken(AdminTokenPrefix)
	cases := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{tok, strings.Clone(tok), true},
		{tok, tok[:len(tok)-1], false},
		{tok, tok + "x", false},
		{tok, NewToken(AdminTokenPrefix), false},
		{"abc", "abd", false},
		{"a", "", false},
		{"", "a", false},
		{"\x00", "", false},
	}
	for _, c := range cases {
		if got := Equal(c.a, c.b); got != c.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func BenchmarkLookupHash(b *testing.B) {
	k := newTestKeyring(b, 1)
	tok := NewToken(APIKeyPrefix)
	b.ReportAllocs()
	for b.Loop() {
		k.LookupHash(tok)
	}
}

// LookupHash reuses its hashes: calls from many goroutines at once each get the
// hash of their own token.
func TestLookupHashConcurrent(t *testing.T) {
	k := newTestKeyring(t, 1)
	lookupKey := derive(testSecret(1), labelLookup)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				tok := fmt.Sprintf("dhk_%d_%d", g, i)
				if got, want := k.LookupHash(tok), hex.EncodeToString(hmacSHA256(lookupKey, []byte(tok))); got != want {
					t.Errorf("LookupHash(%s) = %s, want %s", tok, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
