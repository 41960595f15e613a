package actions

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		strings.Repeat("é", 200):    true, // 400 bytes: characters count, not bytes
		strings.Repeat("界", 200):    true,
		strings.Repeat("a", 201):    false,
		strings.Repeat("é", 201):    false,
		"Lobby screens":             true,
		"new\nline":                 false,
		"tab\there":                 false,
		"nul\x00":                   false,
		string([]byte{0xff, 'a'}):   false,
		"Emergency: north stairs ✓": true,
		"מסך כניסה":                 true, // right to left, without controls
		"c1 \u009b31m":              false,
		"next line \u0085":          false,
		"\u202egnp.exe":             false, // shows as "exe.png"
		"isolate \u2066x\u2069":     false,
		"a mark \u200f":             true, // a right-to-left mark reorders nothing around it
	} {
		if err := CheckName("name", name); (err == nil) != ok {
			t.Errorf("CheckName(%.20q) = %v, want ok %v", name, err, ok)
		}
	}
}

// Text from outside keeps what it says, and what would read as something
// else becomes a space.
func TestReadable(t *testing.T) {
	if got := Readable("curl/8 \u009b31m\u202eexe.png\ttab ✓"); got != "curl/8  31m exe.png tab ✓" {
		t.Fatalf("Readable: %q", got)
	}
}

func TestEnumerate(t *testing.T) {
	for n, want := range map[int]string{
		0: "", 1: "a", 2: "a and b", 3: "a, b and c", 5: "a, b, c, d and e", 6: "a, b, c, d, e and 1 more", 8: "a, b, c, d, e and 3 more",
	} {
		names := strings.Split("abcdefgh"[:n], "")
		if got := Enumerate(names); got != want {
			t.Errorf("Enumerate of %d: %q, want %q", n, got, want)
		}
	}
}
