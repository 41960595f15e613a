package secrets

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// parseMosquittoHash splits "$7$<iter>$<salt>$<hash>" and decodes it.
func parseMosquittoHash(t *testing.T, h string) (iter int, salt, key []byte) {
	t.Helper()
	parts := strings.Split(h, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "7" {
		t.Fatalf("hash %q is not of the form $7$iter$salt$hash", h)
	}
	iter, err := strconv.Atoi(parts[2])
	if err != nil {
		t.Fatalf("iterations %q: %v", parts[2], err)
	}
	if salt, err = base64.StdEncoding.DecodeString(parts[3]); err != nil {
		t.Fatalf("salt %q is not padded standard base64: %v", parts[3], err)
	}
	if key, err = base64.StdEncoding.DecodeString(parts[4]); err != nil {
		t.Fatalf("hash %q is not padded standard base64: %v", parts[4], err)
	}
	return iter, salt, key
}

func TestMosquittoHashFormat(t *testing.T) {
	for _, pw := range []string{"pw", "", NewToken(DeviceTokenPrefix), "ünïcödé pässwörd"} {
		h := MosquittoHash(pw)
		if !strings.HasPrefix(h, "$7$101$") {
			t.Errorf("MosquittoHash(%q) = %q, want $7$101$ prefix", pw, h)
		}
		iter, salt, key := parseMosquittoHash(t, h)
		if iter != 101 || len(salt) != 12 || len(key) != 64 {
			t.Errorf("iter=%d salt=%d bytes key=%d bytes, want 101, 12, 64", iter, len(salt), len(key))
		}
		want, err := pbkdf2.Key(sha512.New, pw, salt, iter, 64)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(key, want) {
			t.Errorf("hash of %q is not PBKDF2-HMAC-SHA512 of it under its salt", pw)
		}
		// A short password turns up in the random base64 by chance ("pw" in
		// about one hash in forty); one of 8 characters or more does not.
		if len(pw) >= 8 && strings.Contains(h, pw) {
			t.Errorf("hash contains the password")
		}
	}
	if a, b := MosquittoHash("pw"), MosquittoHash("pw"); a == b {
		t.Error("two hashes of the same password are equal: salt is not random")
	}
}

// The hash must have the same shape as what mosquitto_passwd itself writes.
func TestMosquittoHashMatchesMosquittoPasswdShape(t *testing.T) {
	bin := findMosquittoBinary(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	out, err := exec.Command(bin, "-c", "-b", file, "user", "pw").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	theirs := strings.TrimPrefix(strings.TrimSpace(string(content)), "user:")
	ours := MosquittoHash("pw")
	ti, ts, tk := parseMosquittoHash(t, theirs)
	oi, oursSalt, oursKey := parseMosquittoHash(t, ours)
	if ti != oi || len(ts) != len(oursSalt) || len(tk) != len(oursKey) || len(theirs) != len(ours) {
		t.Errorf("mosquitto_passwd wrote %q, we produce %q: shapes differ", theirs, ours)
	}
	// And their hash verifies under our derivation, with their salt.
	if got := mosquittoHashWithSalt("pw", ts); got != theirs {
		t.Errorf("our derivation with their salt = %q, mosquitto_passwd wrote %q", got, theirs)
	}
}

// findMosquittoBinary looks name up on PATH and in the sbin directories that
// a non-root PATH often lacks. Without it the test fails in CI and is
// skipped elsewhere.
func findMosquittoBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	testenv.Need(t, name+" (Debian package mosquitto, which also ships it)", errors.New("not on PATH nor in an sbin directory"))
	return ""
}

// startMosquitto runs a real broker on 127.0.0.1 that authenticates against
// passwd (a password-file body), and returns its address once it accepts.
func startMosquitto(t *testing.T, passwd string) string {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(pwFile, []byte(passwd), 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.StartMosquitto(t, testenv.MosquittoConfig{PasswordFile: pwFile}).Addr()
}

// mqttString encodes s as an MQTT UTF-8 string: 2-byte length, bytes.
func mqttString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// mqttConnect sends an MQTT 3.1.1 CONNECT with username and password to
// addr and returns the CONNACK return code.
func mqttConnect(t *testing.T, addr, clientID, user, password string) byte {
	t.Helper()
	var body []byte
	body = append(body, mqttString("MQTT")...)
	body = append(body, 4)          // protocol level 3.1.1
	body = append(body, 0xC2)       // flags: username, password, clean session
	body = append(body, 0x00, 0x0A) // keep alive 10s
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(user)...)
	body = append(body, mqttString(password)...)

	pkt := []byte{0x10} // CONNECT
	for n := len(body); ; {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if n == 0 {
			break
		}
	}
	pkt = append(pkt, body...)

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(pkt); err != nil {
		t.Fatalf("writing CONNECT: %v", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		if errors.Is(err, io.EOF) {
			t.Fatalf("broker closed the connection without a CONNACK")
		}
		t.Fatalf("reading CONNACK: %v", err)
	}
	if ack[0] != 0x20 || ack[1] != 0x02 {
		t.Fatalf("got % x, want a CONNACK (20 02 ...)", ack)
	}
	return ack[3]
}

// TestMosquittoHashWithRealBroker proves the format by having Mosquitto
// itself check passwords against a file of our hashes.
func TestMosquittoHashWithRealBroker(t *testing.T) {
	devToken := NewToken(DeviceTokenPrefix)
	passwd := "user:" + MosquittoHash("pw") + "\n" +
		"player-42:" + MosquittoHash(devToken) + "\n" +
		"odd:" + MosquittoHash("pä$$:wörd with spaces") + "\n"
	addr := startMosquitto(t, passwd)

	const accepted, notAuthorized = 0, 5
	cases := []struct {
		user, password string
		want           byte
	}{
		{"user", "pw", accepted},
		{"player-42", devToken, accepted},
		{"odd", "pä$$:wörd with spaces", accepted},
		{"user", "wrong", notAuthorized},
		{"user", "pw ", notAuthorized},
		{"user", "", notAuthorized},
		{"player-42", NewToken(DeviceTokenPrefix), notAuthorized},
		{"player-42", "pw", notAuthorized},
		{"nobody", "pw", notAuthorized},
	}
	for i, c := range cases {
		got := mqttConnect(t, addr, fmt.Sprintf("secrets-test-%d", i), c.user, c.password)
		if got != c.want {
			t.Errorf("CONNECT as %q with password %q: return code %d, want %d", c.user, DisplayPrefix(c.password), got, c.want)
		}
	}
}
