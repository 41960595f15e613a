package secrets

import (
	"strings"
	"testing"
)

func isAllBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(base62, rune(s[i])) {
			return false
		}
	}
	return true
}

func TestBase62Alphabet(t *testing.T) {
	if len(base62) != 62 {
		t.Fatalf("alphabet has %d characters", len(base62))
	}
	seen := map[rune]bool{}
	for _, r := range base62 {
		if seen[r] || !isBase62(byte(r)) {
			t.Fatalf("alphabet character %q duplicated or not base62", r)
		}
		seen[r] = true
	}
}

func TestNewTokenShape(t *testing.T) {
	for _, p := range []string{APIKeyPrefix, AdminTokenPrefix, DeviceTokenPrefix, SessionPrefix, ""} {
		tok := NewToken(p)
		if !strings.HasPrefix(tok, p) {
			t.Errorf("NewToken(%q) = %q lacks the prefix", p, tok)
		}
		body := tok[len(p):]
		if len(body) != 43 {
			t.Errorf("NewToken(%q) body has %d chars, want 43", p, len(body))
		}
		if !isAllBase62(body) {
			t.Errorf("NewToken(%q) body %q has non-base62 characters", p, body)
		}
	}
}

// TestNewTokenUniqueAndUniform draws 10k tokens (430k characters): none may
// repeat, every one of the 62 characters must appear, and the counts must
// pass a chi-square test at a threshold no unbiased generator will reach
// (the expected statistic is 61 with sd ~11; the cut is 200). A modulo
// bias such as b%62 on raw bytes gives ~2x over-representation of the
// first 8 characters and a statistic in the thousands.
func TestNewTokenUniqueAndUniform(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	var counts [256]int
	total := 0
	for range n {
		tok := NewToken(APIKeyPrefix)
		if seen[tok] {
			t.Fatalf("duplicate token after %d draws", len(seen))
		}
		seen[tok] = true
		for i := len(APIKeyPrefix); i < len(tok); i++ {
			counts[tok[i]]++
			total++
		}
	}
	expected := float64(total) / 62
	chi2 := 0.0
	for i := 0; i < len(base62); i++ {
		c := counts[base62[i]]
		if c == 0 {
			t.Errorf("character %q never appeared in %d tokens", base62[i], n)
		}
		d := float64(c) - expected
		chi2 += d * d / expected
	}
	if chi2 > 200 {
		t.Errorf("chi-square over 62 characters = %.1f (df 61), want < 200: not uniform", chi2)
	}
	t.Logf("chi-square = %.1f (df 61)", chi2)
}

func TestRandomString(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 7, 64, 1000} {
		s := RandomString(n)
		want := max(n, 0)
		if len(s) != want {
			t.Errorf("len(RandomString(%d)) = %d, want %d", n, len(s), want)
		}
		if !isAllBase62(s) {
			t.Errorf("RandomString(%d) has non-base62 characters", n)
		}
	}
	if a, b := RandomString(20), RandomString(20); a == b {
		t.Error("two RandomString(20) draws are equal")
	}
}

func TestDisplayPrefix(t *testing.T) {
	tok := NewToken(APIKeyPrefix)
	cases := []struct{ in, want string }{
		{tok, tok[:10]},
		{"dhk_a1B2c3d4e5", "dhk_a1B2c3"},
		{"dha_XYZ123abc", "dha_XYZ123"},
		{"dhd_000000000", "dhd_000000"},
		{"dhs_abcdefg", "dhs_abcdef"},
		{"dhk_abc", "dhk_abc"},
		{"dhk_", "dhk_"},
		{"somethingelse", "someth"},
		{"short", "short"},
		{"", ""},
		{"dhx_abcdefgh", "dhx_ab"},
		{"ünïcödé-long", "ünïcöd"},
	}
	for _, c := range cases {
		got := DisplayPrefix(c.in)
		if got != c.want {
			t.Errorf("DisplayPrefix(%q) = %q, want %q", c.in, got, c.want)
		}
		if n := len([]rune(got)); n > 10 {
			t.Errorf("DisplayPrefix(%q) has %d characters, want <= 10", c.in, n)
		}
	}
}
