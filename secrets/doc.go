// Package secrets holds everything devicehooks does with secret material:
// deriving keys from the server secret, hashing and sealing API keys,
// generating and masking tokens, and hashing device passwords for Mosquitto.
//
// Nothing in this package logs, and no function returns a secret inside an
// error message, so callers may log errors from here as they are.
package secrets
