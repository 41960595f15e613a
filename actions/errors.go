// Package actions is devicehooks' domain: the function catalogue with typed
// parameters, targets, the MQTT topics and messages of the player contract, and the
// path from an accepted trigger to a command on every target device (dispatch,
// delivery, acks, presence and desired state).
package actions

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Code is a stable, machine-readable error code; handlers map each one to an HTTP
// status in one table.
type Code string

// The error codes of the public contract.
const (
	CodeBadRequest    Code = "bad_request"
	CodeUnauthorized  Code = "unauthorized"
	CodeForbidden     Code = "forbidden"
	CodeNotFound      Code = "not_found"
	CodeMethod        Code = "method_not_allowed"
	CodeUnknownEvent  Code = "unknown_event"
	CodeInvalidParams Code = "invalid_params"
	CodeConflict      Code = "conflict"
	CodeTooLarge      Code = "too_large"
	CodeRateLimited   Code = "rate_limited"
	CodeUnavailable   Code = "unavailable"
	CodeInternal      Code = "internal"
)

// Error is a failure the caller can act on: a code, a human detail and, for invalid
// input, the offending field.
type Error struct {
	Code   Code
	Detail string
	Field  string
	// Final marks a refusal that trying again soon does not change (an
	// unavailable that is a configured limit, not a passing state).
	Final bool
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

// Errorf builds an Error with a formatted detail.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Invalid reports an invalid field (422 invalid_params).
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidParams, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or CodeInternal if it carries none. It
// does not read the store's sentinel errors, as the handlers' mapping to HTTP
// statuses does (handlers.asError).
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// CheckText refuses text a database cannot hold or a person cannot read: invalid
// UTF-8, NUL and other control characters (tab and newlines aside; C1's too,
// U+009B starts a terminal's escape sequence), the bidirectional controls that
// reorder the text shown around them (isBidiControl), or more than max
// characters (as people, the UI's fields and PostgreSQL's varchar count them,
// not bytes). PostgreSQL rejects NUL and invalid UTF-8, so this runs before any write.
func CheckText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return Invalid(field, "must be valid UTF-8")
	}
	if utf8.RuneCountInString(s) > max {
		return Invalid(field, "must be at most %d characters", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return Invalid(field, "must not contain control characters")
		}
		if isBidiControl(r) {
			return Invalid(field, "must not contain bidirectional controls (U+202A to U+202E, U+2066 to U+2069), which reorder the text around them")
		}
	}
	return nil
}

// isBidiControl tells the bidirectional embeddings, overrides and isolates
// (U+202A to U+202E, U+2066 to U+2069): shown, they reorder the text around
// them, so that "\u202egnp.exe" reads "exe.png".
func isBidiControl(r rune) bool { return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 }

// Readable is text from outside, kept as it came (a player's ack detail, a
// caller's user agent and event id), with what would read as something else
// turned into spaces: control characters (C0, DEL and C1; U+0085 is a line
// break) and the bidirectional controls.
func Readable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || isBidiControl(r) {
			return ' '
		}
		return r
	}, s)
}

// MaxName is how long a name (of an action, device, group, key or token) may be.
const MaxName = 200

// RequiredName trims a name that must be given and checks it as CheckName does;
// it returns the trimmed name.
func RequiredName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", Invalid(field, "is required (at most %d characters)", MaxName)
	}
	return s, CheckName(field, s)
}

// KeptName is RequiredName for a name that was had before an edit: kept as
// it is, it is not checked again, so that a name an older build let in (a
// tab, a line break) does not refuse every other change (disabling a leaked
// key by the API).
func KeptName(field, s, had string) (string, error) {
	if had != "" && s == had {
		return had, nil
	}
	return RequiredName(field, s)
}

// CheckName is CheckLine for a name: at most MaxName characters.
func CheckName(field, s string) error { return CheckLine(field, s, MaxName) }

// CheckLine is CheckText for one line of text: no tab or line break either.
func CheckLine(field, s string, max int) error {
	if err := CheckText(field, s, max); err != nil {
		return err
	}
	if strings.ContainsAny(s, "\t\n\r") {
		return Invalid(field, "must be one line, without tabs")
	}
	return nil
}

// Truncate cuts s to at most n bytes on a character boundary, replacing invalid
// UTF-8 first, so what is stored is always valid text.
func Truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Enumerate names things in a message, the first five of them: "A", "A and
// B", "A, B and C", or "A, B, C, D, E and 2 more".
func Enumerate(names []string) string {
	const named = 5
	if more := len(names) - named; more > 0 {
		return strings.Join(names[:named], ", ") + " and " + strconv.Itoa(more) + " more"
	}
	if len(names) > 1 {
		return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
	return strings.Join(names, "")
}
