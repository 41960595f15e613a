package secrets

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"strconv"
)

// Mosquitto 2.x password-file parameters ("$7$" = PBKDF2-HMAC-SHA512).
const (
	mosquittoIterations = 101
	mosquittoSaltLen    = 12
	mosquittoKeyLen     = 64
)

// MosquittoHash returns password hashed in Mosquitto 2.x password-file format,
// "$7$101$<base64 salt>$<base64 hash>" (PBKDF2-HMAC-SHA512, 101 iterations,
// random 12-byte salt), so a password file can be exported without keeping
// the device tokens. It panics if crypto/rand fails (it never does) or under
// GODEBUG=fips140=only, whose PBKDF2 refuses Mosquitto's 12-byte salt.
func MosquittoHash(password string) string {
	salt := make([]byte, mosquittoSaltLen)
	if _, err := rand.Read(salt); err != nil {
		panic(fmt.Sprintf("secrets: crypto/rand failed: %v", err))
	}
	return mosquittoHashWithSalt(password, salt)
}

// mosquittoHashWithSalt is MosquittoHash with a given salt.
func mosquittoHashWithSalt(password string, salt []byte) string {
	key, err := pbkdf2.Key(sha512.New, password, salt, mosquittoIterations, mosquittoKeyLen)
	if err != nil {
		// Only under GODEBUG=fips140=only, which rejects salts shorter
		// than 16 bytes; Mosquitto's format fixes the salt at 12.
		panic(fmt.Sprintf("secrets: pbkdf2: %v", err))
	}
	return "$7$" + strconv.Itoa(mosquittoIterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" +
		base64.StdEncoding.EncodeToString(key)
}
