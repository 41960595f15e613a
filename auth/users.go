package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"devicehooks/actions"
	"devicehooks/internal/wallclock"
	"devicehooks/secrets"
	"devicehooks/store"
)

// Session lifetimes: a session ends after SessionIdle without use, and in any
// case SessionMaxAge after sign-in.
const (
	SessionIdle   = 12 * time.Hour
	SessionMaxAge = 7 * 24 * time.Hour
	// sessionExtendEvery limits how often use writes a new expiry.
	sessionExtendEvery = 5 * time.Minute
)

// Password length bounds, in characters.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// usernamePattern is what an admin username may look like.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$`)

// ErrBadCredentials is the one answer to a wrong username or a wrong password, so
// a caller cannot tell which was wrong.
var ErrBadCredentials = &actions.Error{Code: actions.CodeUnauthorized, Detail: "wrong username or password"}

var errNoSession = &actions.Error{Code: actions.CodeUnauthorized, Detail: "not signed in, or the session has ended"}

// errPasswordBusy refuses a password change when no hashing slot frees up in
// time (503: the server is overloaded, not the user wrong).
var errPasswordBusy = &actions.Error{Code: actions.CodeUnavailable, Detail: "too many password checks at once; try again in a few seconds"}

// retryBusy is the Until of a Busy refusal: by then the attempts that caused it
// have finished (they wait at most hashWait for a slot, then FailDelay).
const retryBusy = 5 * time.Second

// LockedOutError refuses a sign-in until Until: after too many failures, or,
// when Busy, because too many sign-ins for the username or address are being
// checked at once or the server has no free password-hashing slot.
type LockedOutError struct {
	Until time.Time
	Busy  bool
}

func (e *LockedOutError) Error() string {
	why := "too many failed sign-ins"
	if e.Busy {
		why = "too many sign-ins at once"
	}
	return fmt.Sprintf("%s; try again after %s", why, e.Until.UTC().Format(time.RFC3339))
}

// Users manages the web UI's admin accounts and sessions. Failed sign-ins are
// counted in memory (per instance), see loginLimiter.
type Users struct {
	st      *store.Store
	kr      *secrets.Keyring
	limiter *loginLimiter
	clock   func() time.Time // what is recorded: sessions, a known browser's cookie
	// elapsed times the lockout, on the monotonic clock: through a step
	// back of the wall's, a lockout lasted as much longer as it stepped.
	elapsed func() time.Time
	// FailDelay is added to every failed sign-in, to slow down guessing.
	FailDelay time.Duration
}

// NewUsers returns the account service.
func NewUsers(st *store.Store, kr *secrets.Keyring) *Users {
	return &Users{
		st: st, kr: kr, limiter: newLoginLimiter(),
		clock:     wallclock.Now,
		elapsed:   time.Now,
		FailDelay: 300 * time.Millisecond,
	}
}

// Account is who a session belongs to.
type Account struct {
	User      *store.AdminUser
	SessionID string // the session's lookup hash, not its token
}

// EnsureFirstAdmin creates the first admin account at first start, with the given
// password or a generated one, and returns the generated password to print once
// ("" when none was generated or an account already exists).
func (u *Users) EnsureFirstAdmin(ctx context.Context, username, password string) (string, error) {
	n, err := u.st.CountAdminUsers(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	username = strings.TrimSpace(username)
	if username == "" {
		username = "admin"
	}
	if !usernamePattern.MatchString(username) {
		return "", fmt.Errorf("auth: admin username %q: use 1-100 letters, digits, '.', '_', '@' or '-'", username)
	}
	generated := ""
	if password == "" {
		generated = GeneratePassword()
		password = generated
	} else if err := checkPassword(password, "admin password"); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	hash, err := hashPassword(password)
	if err != nil {
		return "", err
	}
	now := u.clock()
	err = u.st.CreateAdminUser(ctx, &store.AdminUser{
		ID: actions.NewID(), Username: username, PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	})
	if errors.Is(err, store.ErrConflict) { // another instance won the first start
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return generated, nil
}

// SignIn checks a username and password and starts a session, returning the
// session token for the cookie. It refuses with *LockedOutError while the
// username from this address, the address, or the username from all addresses
// is locked out (see loginLimiter), and with a Busy one when the password cannot
// be checked now; it answers every wrong username or password with
// ErrBadCredentials after FailDelay.
//
// known is the browser's KnownBrowser cookie, or "": a browser that signed in
// as this username before is not held by the username's lockout from all
// addresses together.
func (u *Users) SignIn(ctx context.Context, username, password, ip, known string) (string, *store.AdminUser, error) {
	username = strings.TrimSpace(username)
	now, elapsed := u.clock(), u.elapsed()
	// Reserve the attempt before the costly check, so concurrent requests cannot
	// all pass the lockout check before the first failure is counted. The
	// reservation is held until SignIn returns, FailDelay included.
	attempt, err := u.limiter.begin(username, ip, u.knownBrowserSig(known, username, now), elapsed)
	if err != nil {
		return "", nil, err
	}
	result := unchecked
	defer func() { u.limiter.finish(attempt, result, elapsed) }()
	user, err := u.st.AdminUserByName(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", nil, err
	}
	found, ok := err == nil, false
	if len(password) <= MaxPasswordLen*4 { // never hash megabytes
		busy := withHashSlot(ctx, func() {
			if found {
				ok = verifyPassword(user.PasswordHash, password)
			} else {
				verifyPassword(dummyHash(), password) // same cost for an unknown user
			}
		})
		if busy != nil {
			return "", nil, &LockedOutError{Until: elapsed.Add(retryBusy), Busy: true}
		}
	}
	if !ok {
		result = failed
		select {
		case <-time.After(u.FailDelay):
		case <-ctx.Done():
		}
		return "", nil, ErrBadCredentials
	}
	result = succeeded
	checked := user.PasswordHash
	if needsRehash(checked) { // best effort; the old hash still works
		var hash string
		if withHashSlot(ctx, func() { hash, err = hashPassword(password) }) == nil && err == nil &&
			u.st.RehashAdminPassword(ctx, user.ID, checked, hash) == nil {
			checked = hash
		}
	}
	if _, err := u.st.PurgeSessions(ctx, now); err != nil {
		return "", nil, err
	}
	token := secrets.NewToken(secrets.SessionPrefix)
	err = u.st.StartSession(ctx, &store.Session{
		ID: u.kr.LookupHash(token), UserID: user.ID, CreatedAt: now, ExpiresAt: now.Add(SessionIdle),
	}, checked)
	if errors.Is(err, store.ErrNotFound) { // the password changed while it was checked
		return "", nil, ErrBadCredentials
	}
	if err != nil {
		return "", nil, err
	}
	return token, user, nil
}

// endSession ends a session whose guesses of its password ran out, whoever
// holds it, and returns ErrSessionEnded, or why it could not.
func (u *Users) endSession(ctx context.Context, acc *Account) error {
	if err := u.st.DeleteSession(context.WithoutCancel(ctx), acc.SessionID); err != nil {
		return err
	}
	return ErrSessionEnded
}

// ErrSessionEnded is ChangePassword's answer to a session's last wrong guess
// of the current password: the session was ended.
var ErrSessionEnded = errors.New("auth: too many wrong current passwords: the session was ended")

// KnownBrowserFor is how long a browser stays known after a sign-in.
const KnownBrowserFor = 180 * 24 * time.Hour

// KnownBrowser returns the value of the cookie that marks a browser as one
// that signed in as username: the time and a nonce, and a MAC of them and the
// username with the server secret (OWASP's "device cookie"). It holds no secret; a stolen
// one only spares its thief the username's lockout from all addresses, not
// the per-address ones.
func (u *Users) KnownBrowser(username string) string {
	// The nonce gives each browser its own failure count, also two that
	// signed in within the same second.
	id := strconv.FormatInt(u.clock().Unix(), 10) + "." + secrets.RandomString(12)
	return id + "." + u.kr.Sign(knownBrowserMessage(username, id))
}

// knownBrowserSig returns the signature of a valid KnownBrowser cookie for
// username (the key of its own failure count), or "".
func (u *Users) knownBrowserSig(cookie, username string, now time.Time) string {
	at, rest, ok := strings.Cut(cookie, ".")
	nonce, sig, ok2 := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || !ok2 || err != nil || strconv.FormatInt(n, 10) != at || len(nonce) != 12 {
		return ""
	}
	if age := now.Sub(time.Unix(n, 0)); age > KnownBrowserFor || age < -time.Minute {
		return ""
	}
	if !u.kr.Verify(knownBrowserMessage(username, at+"."+nonce), sig) {
		return ""
	}
	return sig
}

func knownBrowserMessage(username, id string) []byte {
	return []byte("devicehooks-known-browser-v1\n" + strings.ToLower(strings.TrimSpace(username)) + "\n" + id)
}

// Authenticate returns the account of a live session token, extending the
// session's idle expiry (never past its maximum age).
func (u *Users) Authenticate(ctx context.Context, token string) (*Account, error) {
	if !strings.HasPrefix(token, secrets.SessionPrefix) || len(token) > 100 {
		return nil, errNoSession
	}
	now := u.clock()
	id := u.kr.LookupHash(token)
	sess, err := u.st.SessionByID(ctx, id, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	hardEnd := sess.CreatedAt.Add(SessionMaxAge)
	if !now.Before(hardEnd) {
		return nil, errors.Join(errNoSession, u.st.DeleteSession(ctx, id))
	}
	user, err := u.st.AdminUser(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	if want := minTime(now.Add(SessionIdle), hardEnd); want.Sub(sess.ExpiresAt) > sessionExtendEvery {
		if err := u.st.ExtendSession(ctx, id, want); err != nil {
			return nil, err
		}
	}
	return &Account{User: user, SessionID: id}, nil
}

// SignOut ends the session of a token; an unknown token is not an error.
func (u *Users) SignOut(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	return u.st.DeleteSession(ctx, u.kr.LookupHash(token))
}

// ChangePassword replaces a user's password after checking the current one and
// that confirm repeats next, and signs out every other session of the user. A
// refusal names every field at fault (errors.Join).
//
// A wrong current password waits FailDelay, as a failed sign-in does, and
// counts against the session: at its maxSessionFailures-th the session is
// ended, so that someone who took over a session cannot guess the password
// through this form, from however many addresses.
func (u *Users) ChangePassword(ctx context.Context, acc *Account, current, next, confirm string) (err error) {
	user, err := u.st.AdminUser(ctx, acc.User.ID)
	if err != nil {
		return err
	}
	nextErr := checkPassword(next, "new_password")
	if nextErr == nil && next == current {
		nextErr = actions.Invalid("new_password", "must differ from the current password")
	}
	var confirmErr error
	if confirm != next {
		confirmErr = actions.Invalid("confirm_password", "does not match the new password")
	}
	if current == "" { // not a guess: no wait, and not counted
		return errors.Join(actions.Invalid("current_password", "is required: the password you sign in with"), nextErr, confirmErr)
	}
	now := u.elapsed()
	// The session's own count, over the session's whole life: others'
	// failures behind the same address must not end it, and neither changing
	// address nor waiting may start it again.
	attempt, err := u.limiter.reserve([]counter{{"s:" + acc.SessionID, maxSessionFailures, SessionMaxAge}}, 1, now)
	if locked := (*LockedOutError)(nil); errors.As(err, &locked) && !locked.Busy {
		return u.endSession(ctx, acc) // its last guess failed, and so did ending it then
	} else if err != nil {
		return errPasswordBusy // a double submit: the count is full until one finishes
	}
	result := unchecked
	defer func() {
		if u.limiter.finish(attempt, result, now) {
			err = u.endSession(ctx, acc) // that was its last guess
		}
	}()
	ok, hash := false, ""
	busy := withHashSlot(ctx, func() {
		if ok = verifyPassword(user.PasswordHash, current); ok && nextErr == nil && confirmErr == nil {
			hash, err = hashPassword(next)
		}
	})
	if busy != nil {
		return errPasswordBusy
	}
	var currentErr error
	if ok {
		result = succeeded // the session's count starts again
		if err != nil {
			return err // hashing the new password
		}
	} else {
		result = failed
		select {
		case <-time.After(u.FailDelay):
		case <-ctx.Done():
		}
		currentErr = actions.Invalid("current_password", "is not your current password (%d wrong ones in a row sign you out)", maxSessionFailures)
	}
	// Every problem at once, in the form's order.
	if err := errors.Join(currentErr, nextErr, confirmErr); err != nil {
		return err
	}
	return u.st.SetAdminPassword(ctx, user.ID, hash, acc.SessionID)
}

// ResetPassword sets the password of the account with that username from
// outside the web UI (the reset-password command, for a forgotten password)
// and ends every session of the account. It needs no server secret. A
// running server's lockout of the username, kept in its memory, still holds
// until it ends.
func ResetPassword(ctx context.Context, st *store.Store, username, password string) error {
	if err := checkPassword(password, "password"); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	user, err := st.AdminUserByName(ctx, strings.TrimSpace(username))
	if err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return st.SetAdminPassword(ctx, user.ID, hash, "")
}

// GeneratePassword returns a new random password, as the first start makes.
func GeneratePassword() string { return secrets.RandomString(20) }

// CSRFToken returns the form token of a session: an HMAC of the session token,
// so it needs no storage and is useless without the session.
func (u *Users) CSRFToken(sessionToken string) string {
	return u.kr.Sign([]byte("csrf\x00" + sessionToken))
}

// ValidCSRF reports whether got is the form token of the session.
func (u *Users) ValidCSRF(sessionToken, got string) bool {
	return sessionToken != "" && got != "" && u.kr.Verify([]byte("csrf\x00"+sessionToken), got)
}

// Sign returns a signature of value for purpose, for small values the UI keeps in
// cookies (flash messages).
func (u *Users) Sign(purpose, value string) string {
	return u.kr.Sign([]byte(purpose + "\x00" + value))
}

// Verify reports whether sig is Sign(purpose, value).
func (u *Users) Verify(purpose, value, sig string) bool {
	return u.kr.Verify([]byte(purpose+"\x00"+value), sig)
}

// checkPassword enforces the length bounds; field names the form field.
func checkPassword(pw, field string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen || n > MaxPasswordLen {
		return actions.Invalid(field, "must be %d to %d characters long", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
