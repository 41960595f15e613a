package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"devicehooks/actions"
	"devicehooks/store"
)

// SignLink returns the signature of a signed GET link: HMAC-SHA256 under the API
// key of "devicehooks-link-v1\n<key id>\n<expires unix>\n<payload>", base64url
// without padding; for a confirm link the first line is
// "devicehooks-confirm-link-v1" (so that taking confirm=1 out of the link
// breaks it, and no payload can stand for the flag). payload is the base64
// text exactly as it stands in the link.
func SignLink(apiKey, keyID string, expires int64, payload string, confirm bool) string {
	return base64.RawURLEncoding.EncodeToString(linkMAC(apiKey, keyID, expires, payload, confirm))
}

func linkMAC(apiKey, keyID string, expires int64, payload string, confirm bool) []byte {
	kind := "devicehooks-link-v1"
	if confirm {
		kind = "devicehooks-confirm-link-v1"
	}
	m := hmac.New(sha256.New, []byte(apiKey))
	fmt.Fprintf(m, "%s\n%s\n%d\n%s", kind, keyID, expires, payload)
	return m.Sum(nil)
}

// AuthenticateLink checks a signed link: the key must be live and the signature
// made with it over these fields, and the link not expired. Every failure is the
// same 401 (ErrBadLink: its holder never had a key, so "unknown API key" would
// mislead), but for the expiry of a link that is otherwise good: its holder
// then hears that a new link would work.
//
// A link passes through mail clients, chat apps and scripts, which wrap it,
// leave a '+' unescaped or add a full stop: the payload and the signature are
// read as PayloadReadings and SigBytes read them, and the payload returned is
// the reading the signature covers. The payload as it came is tried last: it
// is what the contract signs, and a script may have signed what the readings
// drop (base64's line breaks, without -w0). Only the signer's text can match,
// so reading leniently lets no other link in.
//
// confirm is whether the link has confirm=1. A confirm link signed before the
// flag was signed (its signature over the fields alone) is still taken as
// one; a link without the flag must be signed without it.
func (k *Keys) AuthenticateLink(ctx context.Context, keyID string, expires int64, payload, sig string, confirm bool) (*Caller, string, error) {
	want, ok := SigBytes(sig)
	if !ok {
		return nil, "", ErrBadLink
	}
	key, err := k.st.APIKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", ErrBadLink
	}
	if err != nil {
		return nil, "", unavailable(err)
	}
	plain, err := k.kr.Open(key.Sealed)
	if err != nil {
		return nil, "", ErrBadLink
	}
	signed, ok := "", false
	for _, p := range append(PayloadReadings(payload), payload) {
		if hmac.Equal(linkMAC(plain, keyID, expires, p, confirm), want) ||
			confirm && hmac.Equal(linkMAC(plain, keyID, expires, p, false), want) { // made before confirm was signed
			signed, ok = p, true
			break
		}
	}
	if !ok {
		return nil, "", ErrBadLink
	}
	c := newCaller(key)
	if c.badRead != nil {
		k.logUnreadable(key, c.badRead)
	}
	if !c.usable(time.Now()) {
		return nil, "", ErrBadLink
	}
	if time.Now().Unix() >= expires {
		return nil, "", actions.Errorf(actions.CodeUnauthorized, "the link expired at %s; ask for a new one",
			time.Unix(expires, 0).UTC().Format(time.RFC3339))
	}
	return c, signed, nil
}

// PayloadReadings are the texts a link's payload may have been, most likely
// first: line breaks and tabs (a wrapped link) are dropped, and so is what
// ends it that no base64 has (a full stop, a '>' after a link in mail). A
// space is a '+' that was not escaped, or where a wrapped link was joined:
// both are readings, the second first in URL-safe text, which has no '+'.
func PayloadReadings(p string) []string {
	p = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return -1
		}
		return r
	}, p)
	p = strings.TrimRightFunc(p, func(r rune) bool { return r != ' ' && !isBase64(r) })
	if !strings.Contains(p, " ") {
		return []string{p}
	}
	plus, joined := strings.ReplaceAll(p, " ", "+"), strings.ReplaceAll(p, " ", "")
	if strings.ContainsAny(p, "-_") {
		return []string{joined, plus}
	}
	return []string{plus, joined}
}

// SigBytes reads a link's signature: base64url without padding as SignLink
// writes it, or what a script or a mail client made of it (standard base64,
// padding, an unescaped '+' read as a space, a wrapped line, a full stop after
// it). ok is false unless it is the 32 bytes of an HMAC-SHA256.
func SigBytes(sig string) (b []byte, ok bool) {
	if len(sig) > 100 {
		return nil, false
	}
	sig = strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', '\t':
			return -1
		case ' ', '+':
			return '-'
		case '/':
			return '_'
		}
		return r
	}, sig)
	sig = strings.TrimRightFunc(sig, func(r rune) bool { return !isBase64(r) || r == '=' })
	// Strict: a last character that differs in the bits past the 32 bytes
	// is another text, not the signature.
	b, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	return b, err == nil && len(b) == sha256.Size
}

// isBase64 tells the characters of base64 in either alphabet, with padding.
func isBase64(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' ||
		r == '+' || r == '/' || r == '-' || r == '_' || r == '='
}
