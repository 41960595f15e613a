package secrets

import (
	"crypto/rand"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Token kind prefixes; the prefix tells what a token is for and lets Mask
// find tokens in log lines.
const (
	APIKeyPrefix      = "dhk_" // API key sent by webhook callers
	AdminTokenPrefix  = "dha_" // admin API token
	DeviceTokenPrefix = "dhd_" // device MQTT password
	SessionPrefix     = "dhs_" // admin web session id
)

// tokenLen is the number of random base62 characters after a token's prefix:
// 62^43 > 2^256.
const tokenLen = 43

// displayLen is how many characters after the prefix DisplayPrefix keeps.
const displayLen = 6

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// knownPrefixes lists the token kinds, in no particular order.
var knownPrefixes = [...]string{APIKeyPrefix, AdminTokenPrefix, DeviceTokenPrefix, SessionPrefix}

// NewToken returns prefix followed by 43 uniform base62 characters
// from crypto/rand (~256 bits). It panics only if crypto/rand fails, which
// on Go 1.24+ and Linux it never does (it crashes the program instead).
func NewToken(prefix string) string {
	return prefix + RandomString(tokenLen)
}

// RandomString returns n uniform base62 characters from crypto/rand, e.g.
// for event ids; n <= 0 gives "". It panics only if crypto/rand fails.
func RandomString(n int) string {
	if n <= 0 {
		return ""
	}
	out := make([]byte, 0, n)
	// 248 = 4*62: bytes >= 248 are rejected so that b%62 is uniform.
	// About 3% are rejected, so n+n/16+8 bytes usually suffice in one read.
	buf := make([]byte, n+n/16+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("secrets: crypto/rand failed: %v", err))
		}
		for _, b := range buf {
			if b >= 248 {
				continue
			}
			out = append(out, base62[b%62])
			if len(out) == n {
				break
			}
		}
	}
	return string(out)
}

// tokenPrefix returns the known kind prefix s starts with, or "".
func tokenPrefix(s string) string {
	for _, p := range knownPrefixes {
		if strings.HasPrefix(s, p) {
			return p
		}
	}
	return ""
}

// DisplayPrefix returns what UIs and logs show to identify a token: its
// kind prefix plus the next 6 characters ("dhk_a1B2c3"), or for a string
// without a known prefix its first 6 characters; never more than 10.
func DisplayPrefix(token string) string {
	p := tokenPrefix(token)
	return p + firstRunes(token[len(p):], displayLen)
}

// firstRunes returns the first n characters (runes) of s, or s if shorter.
func firstRunes(s string, n int) string {
	i := 0
	for k := 0; k < n; k++ {
		if i >= len(s) {
			return s
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return s[:i]
}
