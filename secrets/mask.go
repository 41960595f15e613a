package secrets

import (
	"net/url"
	"strings"
)

// ellipsis marks where Mask cut a secret.
const ellipsis = "…"

// apiKeyParam is the query parameter whose value Mask always hides.
const apiKeyParam = "api_key"

// sigParam is a signed link's signature parameter: a bearer credential for
// that link until it expires, which Mask hides whole.
const sigParam = "sig"

// payloadParam is a GET link's payload: base64 JSON with the action's event
// id, which is half of what fires it (security.md), and the caller's sensor
// data and idempotency key. The request log records the event id where admins
// see it; the access log keeps none of it.
const payloadParam = "payload"

// Mask returns s with secrets hidden, for log lines. Every token-looking
// substring (a kind prefix followed by base62 characters) becomes its
// DisplayPrefix + "…", and the value of an api_key query parameter, plain
// (api_key=v) or URL-escaped (api_key%3Dv), becomes its DisplayPrefix + "…";
// the value of a sig parameter (a signed link's signature) becomes "…". A
// value ends at '&', whitespace, a quote, '#' or, escaped, at %26.
//
// Mask never reproduces a whole value: a token body or value of at most 6
// characters is replaced by "…" alone (a token keeps its kind prefix).
// It is idempotent, case-insensitive for "api_key", and a hand-written
// scanner that does not allocate for lines without secrets.
func Mask(s string) string {
	return maskSignatures(maskTokensAndKeys(s))
}

// MaskQuery returns a URL's raw query with secrets hidden, for log lines: the
// value of every api_key and sig parameter is hidden as Mask hides it, and a
// link's payload whole, however
// its name is escaped ("%73ig" is the "sig" a server reads), and Mask hides
// tokens in the rest.
func MaskQuery(raw string) string {
	var out []byte // nil until the first replacement
	last := 0
	for start := 0; start < len(raw); {
		end := strings.IndexByte(raw[start:], '&')
		if end < 0 {
			end = len(raw)
		} else {
			end += start
		}
		if eq := strings.IndexByte(raw[start:end], '='); eq > 0 {
			name, vstart := raw[start:start+eq], start+eq+1
			if start > 0 {
				// A link copied out of HTML, "…&amp;sig=…", which the
				// webhook reads as "…&sig=…" (linkQuery).
				name = strings.TrimPrefix(name, "amp;")
			}
			if kept, ok := hiddenParam(name, raw[vstart:end]); ok {
				out = appendMasked(out, raw, last, vstart, kept)
				last = end
			}
		}
		start = end + 1
	}
	return Mask(finish(out, raw, last))
}

// hiddenParam tells whether a query parameter is a secret, by its escaped
// name, and what MaskQuery keeps of its value. An empty or already masked
// value is left as it is.
func hiddenParam(escapedName, value string) (kept string, ok bool) {
	if value == "" || strings.HasSuffix(value, ellipsis) {
		return "", false
	}
	name, err := url.QueryUnescape(escapedName)
	if err != nil {
		return "", false
	}
	switch {
	case asciiEqualFold(name, sigParam), asciiEqualFold(name, payloadParam):
		return "", true
	case asciiEqualFold(name, apiKeyParam):
		return shownPart(value), true
	}
	return "", false
}

// maskTokensAndKeys hides tokens and api_key values.
func maskTokensAndKeys(s string) string {
	var out []byte // nil until the first replacement
	last := 0      // s[last:] has not been copied to out yet
	// Both the kind prefixes ("dhk_") and "api_key" have '_' as their 4th
	// byte, so the scan jumps from one '_' to the next (IndexByte is fast)
	// and looks at the 3 bytes before it.
	for i := 0; ; {
		j := strings.IndexByte(s[i:], '_')
		if j < 0 {
			break
		}
		at := i + j - 3 // where a prefix or "api_key" would start
		i += j + 1
		if at < last {
			continue // would overlap what was already masked (or before s)
		}
		if s[at] == 'd' {
			end, repl, ok := maskTokenAt(s, at)
			if !ok {
				continue
			}
			if repl != "" {
				out = appendMasked(out, s, last, at, repl)
				last = end
			}
			i = end
			continue
		}
		vstart, escaped := apiKeyAt(s, at)
		if vstart < 0 {
			continue
		}
		vend := valueEnd(s, vstart, escaped)
		if vend > vstart {
			out = appendMasked(out, s, last, vstart, shownPart(s[vstart:vend]))
			last = vend
		}
		i = vend
	}
	return finish(out, s, last)
}

// finish returns s if nothing was masked, else out followed by s[last:].
func finish(out []byte, s string, last int) string {
	if out == nil {
		return s
	}
	return string(append(out, s[last:]...))
}

// appendMasked appends s[last:at], then kept and the ellipsis, to out,
// allocating out on first use.
func appendMasked(out []byte, s string, last, at int, kept string) []byte {
	if out == nil {
		out = make([]byte, 0, len(s)+8)
	}
	out = append(out, s[last:at]...)
	out = append(out, kept...)
	return append(out, ellipsis...)
}

// maskTokenAt looks for a token starting at s[i]. ok reports whether one is
// there; end is where it stops; repl is what replaces s[i:end] before the
// ellipsis, or "" to leave it (it is already masked).
func maskTokenAt(s string, i int) (end int, repl string, ok bool) {
	p := tokenPrefix(s[i:])
	if p == "" {
		return 0, "", false
	}
	bodyStart := i + len(p)
	end = bodyStart
	for end < len(s) && isBase62(s[end]) {
		end++
	}
	// "dhk_abdhk_x" or "dhk_abapi_key=x": the run's last 3 characters start
	// another token or api_key, which Mask must still see, so stop before.
	if at := end - 3; at >= bodyStart && end < len(s) && s[end] == '_' {
		if tokenPrefix(s[at:]) != "" {
			end = at
		} else if v, _ := apiKeyAt(s, at); v >= 0 {
			end = at
		}
	}
	body := end - bodyStart
	switch {
	case body == 0:
		return 0, "", false
	case body > displayLen:
		return end, s[i : bodyStart+displayLen], true
	case strings.HasPrefix(s[end:], ellipsis):
		return end, "", true // already masked: "dhk_a1B2c3…"
	default:
		return end, p, true // too short to show any of it
	}
}

// maskSignatures replaces the value of every sig parameter with "…". The
// name must start the query or follow '&' (plain or escaped), so that other
// parameters ending in "sig" are left alone.
func maskSignatures(s string) string {
	var out []byte // nil until the first replacement
	last := 0
	for i := 0; ; {
		j := strings.Index(s[i:], sigParam)
		if j < 0 {
			break
		}
		at := i + j
		i = at + len(sigParam)
		if !startsParam(s, at) {
			continue
		}
		vstart, escaped := valueAfter(s, i)
		if vstart < 0 {
			continue
		}
		vend := valueEnd(s, vstart, escaped)
		if vend > vstart && s[vstart:vend] != ellipsis {
			out = appendMasked(out, s, last, vstart, "")
			last = vend
		}
		i = vend
	}
	return finish(out, s, last)
}

// startsParam tells whether a query parameter's name can start at s[i]: at
// the start of s, or after '?' or '&', plain or URL-escaped.
func startsParam(s string, i int) bool {
	if i == 0 || s[i-1] == '?' || s[i-1] == '&' {
		return true
	}
	if i < 3 || s[i-3] != '%' {
		return false
	}
	esc := s[i-2 : i]
	return asciiEqualFold(esc, "26") || asciiEqualFold(esc, "3f")
}

// apiKeyAt reports where the value of an api_key parameter named at s[i]
// starts (-1 if there is none) and whether the '=' was URL-escaped as %3D.
func apiKeyAt(s string, i int) (vstart int, escaped bool) {
	j := i + len(apiKeyParam)
	if j > len(s) || !asciiEqualFold(s[i:j], apiKeyParam) {
		return -1, false
	}
	return valueAfter(s, j)
}

// valueAfter reports where the value of a parameter whose name ends at s[j]
// starts (-1 if no '=' follows) and whether the '=' was URL-escaped as %3D.
func valueAfter(s string, j int) (vstart int, escaped bool) {
	switch {
	case j < len(s) && s[j] == '=':
		return j + 1, false
	case j+3 <= len(s) && s[j] == '%' && s[j+1] == '3' && (s[j+2] == 'D' || s[j+2] == 'd'):
		return j + 3, true
	}
	return -1, false
}

// valueEnd returns where a query value starting at s[start] ends: at '&',
// whitespace, a quote, '#', a control character, the end of s, and, when the
// query is URL-escaped, at an escaped '&' (%26).
func valueEnd(s string, start int, escaped bool) int {
	for j := start; j < len(s); j++ {
		switch c := s[j]; {
		case c == '&' || c == '#' || c == '"' || c == '\'' || c == ' ' || c < 0x20 || c == 0x7f:
			return j
		case escaped && c == '%' && j+2 < len(s) && s[j+1] == '2' && s[j+2] == '6':
			return j
		}
	}
	return len(s)
}

// shownPart returns what Mask keeps of a value: its DisplayPrefix, or ""
// when that would be the whole value.
func shownPart(v string) string {
	d := DisplayPrefix(v)
	if len(d) >= len(v) {
		return ""
	}
	return d
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// asciiEqualFold reports whether s equals the lower-case ASCII word lower,
// ignoring ASCII case.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for k := 0; k < len(s); k++ {
		c := s[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[k] {
			return false
		}
	}
	return true
}

// RedactURL returns a URL for a log line, with the password of its user info
// (tcp://user:pass@host) replaced by "xxxxx", and so the value of a password
// in its query (PostgreSQL's ?password=, ?sslpassword=). If s does not parse
// (a password with a bare '/' or '%'), or parses with an '@' past its host
// (a bare '#' or '?' in a password, which net/url takes for the fragment's or
// the query's start, and pgx, as libpq, for the password's), everything
// between "://" and the last '@' is replaced.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err == nil && !strings.Contains(u.Opaque+u.Path+u.RawQuery+u.Fragment, "@") {
		if u.RawQuery != "" {
			params := strings.Split(u.RawQuery, "&")
			for i, p := range params {
				k, _, _ := strings.Cut(p, "=")
				if name, err := url.QueryUnescape(k); err != nil || strings.Contains(strings.ToLower(name), "password") {
					params[i] = k + "=xxxxx"
				}
			}
			u.RawQuery = strings.Join(params, "&")
		}
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(s, "://")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 {
		return s
	}
	return scheme + "://xxxxx" + rest[at:]
}
