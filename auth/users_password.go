package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"devicehooks/secrets"
)

// argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1 lane),
// about 30 ms a hash here. They are stored in each hash, so raising them later
// rehashes a password at its next sign-in.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

var b64 = base64.RawStdEncoding

// argonIDKey is argon2.IDKey; a test replaces it to watch how many run at once.
var argonIDKey = argon2.IDKey

// hashSlots bounds the argon2id hashes running at once in the process. Each one
// takes argonMemory (19 MiB) and a CPU for ~30 ms, so a burst of sign-ins must
// queue here rather than all allocate at once: a few hundred concurrent requests
// would otherwise exhaust memory. More hashes than CPUs would not finish sooner.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// hashWait is how long a request waits for a hashing slot before it is refused
// (a variable only so that tests, which hash slowly under -race, can lengthen it).
var hashWait = 2 * time.Second

// errHashBusy means no hashing slot freed up in time; callers turn it into an
// answer that asks to retry in a few seconds.
var errHashBusy = errors.New("auth: too many password checks at once")

// withHashSlot runs f, which hashes, once one of hashSlots is free. It returns
// errHashBusy without running f if none frees up within hashWait or before ctx
// ends. Every argon2id run on a request path goes through here.
func withHashSlot(ctx context.Context, f func()) error {
	timer := time.NewTimer(hashWait)
	defer timer.Stop()
	select {
	case hashSlots <- struct{}{}:
	case <-timer.C:
		return errHashBusy
	case <-ctx.Done():
		return errHashBusy
	}
	defer func() { <-hashSlots }()
	f()
	return nil
}

// hashPassword returns the argon2id hash of pw in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	key := argonIDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// argonParams are the parameters read back from a stored hash.
type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func parseHash(hash string) (*argonParams, bool) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, false
	}
	p := &argonParams{}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return nil, false
	}
	// Refuse parameters no hash of ours has, so a tampered row cannot make a
	// sign-in allocate gigabytes.
	if p.memory < 1024 || p.memory > 1<<20 || p.time < 1 || p.time > 16 || p.threads < 1 || p.threads > 16 {
		return nil, false
	}
	var err1, err2 error
	p.salt, err1 = b64.DecodeString(parts[4])
	p.key, err2 = b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(p.salt) < 8 || len(p.key) < 16 || len(p.key) > 64 {
		return nil, false
	}
	return p, true
}

// verifyPassword reports whether pw matches hash, comparing in constant time.
func verifyPassword(hash, pw string) bool {
	p, ok := parseHash(hash)
	if !ok {
		return false
	}
	key := argonIDKey([]byte(pw), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1
}

// needsRehash reports whether hash was made with other parameters than today's.
func needsRehash(hash string) bool {
	p, ok := parseHash(hash)
	return !ok || p.memory != argonMemory || p.time != argonTime || p.threads != argonThreads || len(p.key) != argonKeyLen
}

// dummyHash is checked against for an unknown username, so that answering costs
// the same as for a known one.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashPassword(secrets.RandomString(20))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return h
})
