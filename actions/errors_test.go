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
	} {
		if err := CheckName("name", name); (err == nil) != ok {
			t.Errorf("CheckName(%.20q) = %v, want ok %v", name, err, ok)
		}
	}
}
