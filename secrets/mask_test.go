package secrets

import (
	"net/url"
	"strings"
	"testing"
)

func TestMaskTokens(t *testing.T) {
	key := NewToken(APIKeyPrefix)
	adm := NewToken(AdminTokenPrefix)
	dev := NewToken(DeviceTokenPrefix)
	ses := NewToken(SessionPrefix)

	cases := []struct {
		name, in, want string
		secrets        []string
	}{
		{
			name:    "api key in a header log",
			in:      `level=info msg="auth" header="Authorization: Bearer ` + key + `" ok=true`,
			want:    `level=info msg="auth" header="Authorization: Bearer ` + key[:10] + `…" ok=true`,
			secrets: []string{key},
		},
		{
			name:    "several tokens on one line",
			in:      "admin " + adm + " rotated device " + dev + ",session=" + ses + "; key:" + key,
			want:    "admin " + adm[:10] + "… rotated device " + dev[:10] + "…,session=" + ses[:10] + "…; key:" + key[:10] + "…",
			secrets: []string{adm, dev, ses, key},
		},
		{
			name:    "token at start and end, glued to other text",
			in:      key + "/" + dev,
			want:    key[:10] + "…/" + dev[:10] + "…",
			secrets: []string{key, dev},
		},
		{
			name:    "token in JSON",
			in:      `{"token":"` + dev + `"}`,
			want:    `{"token":"` + dev[:10] + `…"}`,
			secrets: []string{dev},
		},
		{
			name:    "short token body is hidden whole",
			in:      "tried dhk_abc and dha_x1",
			want:    "tried dhk_… and dha_…",
			secrets: []string{"dhk_abc", "dha_x1"},
		},
		{
			name: "seven character body keeps six",
			in:   "dhk_abcdefg",
			want: "dhk_abcdef…",
		},
		{
			name: "no secrets",
			in:   `127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /healthz?x=1&dh=2 HTTP/1.1" 200 2 "-" "curl/8.0" d dh dhk dhk_ dhx_abcdefgh api_key apikey=x`,
			want: `127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /healthz?x=1&dh=2 HTTP/1.1" 200 2 "-" "curl/8.0" d dh dhk dhk_ dhx_abcdefgh api_key apikey=x`,
		},
		{name: "empty", in: "", want: ""},
		{
			name: "unicode untouched",
			in:   "größe … ✓ dhk_",
			want: "größe … ✓ dhk_",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Mask(c.in)
			if got != c.want {
				t.Errorf("Mask(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			for _, s := range c.secrets {
				if strings.Contains(got, s) {
					t.Errorf("output %q still contains secret %q", got, s)
				}
			}
			if again := Mask(got); again != got {
				t.Errorf("Mask is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestMaskAPIKeyParam(t *testing.T) {
	key := NewToken(APIKeyPrefix)
	const other = "hunter2-not-a-token"

	cases := []struct {
		name, in, want string
		secrets        []string
	}{
		{
			name:    "access log with api_key token",
			in:      `10.0.0.1 "POST /hooks/player?api_key=` + key + `&event=boot HTTP/1.1" 204`,
			want:    `10.0.0.1 "POST /hooks/player?api_key=` + key[:10] + `…&event=boot HTTP/1.1" 204`,
			secrets: []string{key},
		},
		{
			name:    "api_key with arbitrary value at end of line",
			in:      "GET /hook?event=boot&api_key=" + other,
			want:    "GET /hook?event=boot&api_key=hunter…",
			secrets: []string{other},
		},
		{
			name:    "api_key value ends at space",
			in:      "GET /hook?api_key=" + other + " HTTP/1.1",
			want:    "GET /hook?api_key=hunter… HTTP/1.1",
			secrets: []string{other},
		},
		{
			name:    "upper case parameter name",
			in:      "/hook?API_KEY=" + other,
			want:    "/hook?API_KEY=hunter…",
			secrets: []string{other},
		},
		{
			name:    "escaped api_key%3D with token",
			in:      "redirect=%2Fhook%3Fapi_key%3D" + key + "%26event%3Dboot",
			want:    "redirect=%2Fhook%3Fapi_key%3D" + key[:10] + "…%26event%3Dboot",
			secrets: []string{key},
		},
		{
			name:    "escaped lower-case api_key%3d with arbitrary value",
			in:      "next=/x%3fapi_key%3d" + other,
			want:    "next=/x%3fapi_key%3dhunter…",
			secrets: []string{other},
		},
		{
			name:    "short value is hidden whole",
			in:      "/hook?api_key=abc&x=1",
			want:    "/hook?api_key=…&x=1",
			secrets: []string{"abc"},
		},
		{
			name: "empty value untouched",
			in:   "/hook?api_key=&x=1",
			want: "/hook?api_key=&x=1",
		},
		{
			name:    "two api_key params and a bare token",
			in:      "/h?api_key=" + other + "&api_key=" + key + " via " + key,
			want:    "/h?api_key=hunter…&api_key=" + key[:10] + "… via " + key[:10] + "…",
			secrets: []string{other, key},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Mask(c.in)
			if got != c.want {
				t.Errorf("Mask(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			for _, s := range c.secrets {
				if strings.Contains(got, s) {
					t.Errorf("output %q still contains secret %q", got, s)
				}
			}
			if again := Mask(got); again != got {
				t.Errorf("Mask is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

// A signed link's signature is a bearer credential until the link expires:
// its value is hidden whole, wherever the link is logged.
func TestMaskSignature(t *testing.T) {
	const sig = "vDp5-ZR9N4P0xq_7Yt2s"
	cases := []struct{ name, in, want string }{
		{"signed link", "/public-api/integration/webhooks?key_id=k1&expires=1790000000&sig=" + sig + "&payload=e30",
			"/public-api/integration/webhooks?key_id=k1&expires=1790000000&sig=…&payload=e30"},
		{"first parameter, end of line", "/hook?sig=" + sig, "/hook?sig=…"},
		{"escaped in another URL", "next=%2Fhook%3Fsig%3D" + sig + "%26payload%3De30", "next=%2Fhook%3Fsig%3D…%26payload%3De30"},
		{"other parameters ending in sig are kept", "/x?mysig=abc&designs=2", "/x?mysig=abc&designs=2"},
		{"empty value untouched", "/hook?sig=&x=1", "/hook?sig=&x=1"},
		{"with an api_key", "/h?api_key=hunter2-not-a-token&sig=" + sig, "/h?api_key=hunter…&sig=…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Mask(c.in)
			if got != c.want {
				t.Errorf("Mask(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if again := Mask(got); again != got {
				t.Errorf("Mask is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

// A URL built by net/url (as a client would) must come out masked, escaped
// or not.
func TestMaskURLBuiltByNetURL(t *testing.T) {
	key := NewToken(APIKeyPrefix)
	v := url.Values{"api_key": {key}, "event": {"boot"}}
	u := "https://example.invalid/hook?" + v.Encode()
	for _, line := range []string{u, "next=" + url.QueryEscape(u)} {
		got := Mask(line)
		if strings.Contains(got, key) || strings.Contains(got, key[10:]) {
			t.Errorf("Mask(%q) = %q leaks the key", line, got)
		}
		if !strings.Contains(got, key[:10]+"…") {
			t.Errorf("Mask(%q) = %q lacks the display prefix", line, got)
		}
	}
}

func TestMaskDoesNotAllocateWithoutSecrets(t *testing.T) {
	line := `127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /devices/abc/status?verbose=1 HTTP/1.1" 200 512 "-" "Mozilla/5.0"`
	allocs := testing.AllocsPerRun(100, func() { _ = Mask(line) })
	if allocs != 0 {
		t.Errorf("Mask of a clean line allocates %.0f times, want 0", allocs)
	}
}

func BenchmarkMask(b *testing.B) {
	key := NewToken(APIKeyPrefix)
	lines := map[string]string{
		"clean":  `127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /devices/abc/status?verbose=1 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"`,
		"secret": `127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "POST /hooks/player?api_key=` + key + `&event=boot HTTP/1.1" 204 0 "-" "player/2.1 ` + key + `"`,
	}
	for _, name := range []string{"clean", "secret"} {
		line := lines[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_ = Mask(line)
			}
		})
	}
}

// fuzzToken is a fixed token so that fuzzing is reproducible.
const fuzzToken = "dhk_Q3vX9kLm2PzR7tYw4bNc8dFg1hJs6aUe0iKo5qWe3rT"

// FuzzMask checks, for any text around a token, that Mask never lets the
// token's hidden part through and that masking twice changes nothing.
func FuzzMask(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""},
		{"GET /hook?api_key=", "&x=1"},
		{"next=%2Fh%3Fapi_key%3D", "%26a%3Db"},
		{"dhk_", ""},
		{"dhk_ab", "…"},
		{"dhk_abapi_key=", " x"},
		{"api_key=x", "dhs_abc…"},
		{"dh", "_"},
		{"Bearer ", "\nX-Admin: dha_Zz9"},
		{"API_KEY=dha_", "dha_abcdefgh…"},
		{"/h?sig=", "&payload=e30"},
	} {
		f.Add(seed[0], seed[1])
	}
	hidden := fuzzToken[10:]
	f.Fuzz(func(t *testing.T, before, after string) {
		if strings.Contains(before+after, hidden[:8]) {
			t.Skip("not a missing tool (CI-safe): the input contains the hidden part itself")
		}
		line := before + fuzzToken + after
		got := Mask(line)
		if strings.Contains(got, hidden[:8]) {
			t.Errorf("Mask(%q) = %q leaks the token", line, got)
		}
		if again := Mask(got); again != got {
			t.Errorf("Mask not idempotent on %q: %q -> %q", line, got, again)
		}
		// Text without '_' or "sig" has nothing to mask.
		if !strings.Contains(before, "_") && !strings.Contains(before, sigParam) && Mask(before) != before {
			t.Errorf("Mask changed %q, which has no '_' nor %q", before, sigParam)
		}
	})
}

// The server decodes a query's names, so a link's sig or api_key written with
// escapes in its name ("%73ig") is still a credential: MaskQuery hides it.
func TestMaskQuery(t *testing.T) {
	const sig = "vDp5-ZR9N4P0xq_7Yt2s"
	key := NewToken(APIKeyPrefix)
	cases := []struct{ name, in, want string }{
		{"plain", "key_id=k1&sig=" + sig + "&payload=e30", "key_id=k1&sig=…&payload=…"},
		{"escaped name", "key_id=k1&%73ig=" + sig + "&payload=e30", "key_id=k1&%73ig=…&payload=…"},
		{"a link with the key", "api_key=" + key + "&%70ayload=eyJldmVudF9pZCI6ImV2dCJ9", "api_key=" + key[:10] + "…&%70ayload=…"},
		{"escaped upper case", "%53%49%47=" + sig, "%53%49%47=…"},
		{"api_key with an escaped underscore", "api%5Fkey=" + key + "&x=1", "api%5Fkey=" + key[:10] + "…&x=1"},
		{"api_key with plus-free escapes", "%61pi_key=hunter2-not-a-token", "%61pi_key=hunter…"},
		{"a token in another parameter", "note=" + key, "note=" + key[:10] + "…"},
		{"nothing secret", "wait=5&event=boot", "wait=5&event=boot"},
		{"empty and name-only parameters", "sig=&sig&=x&&", "sig=&sig&=x&&"},
		{"a name that does not decode", "%zzsig=abc&sig=" + sig, "%zzsig=abc&sig=…"},
		{"another name ending in sig", "mysig=abc", "mysig=abc"},
		{"a link copied out of HTML", "key_id=k1&amp;expires=1&amp;payload=e30&amp;sig=" + sig, "key_id=k1&amp;expires=1&amp;payload=…&amp;sig=…"},
		{"an escaped key copied out of HTML", "payload=e30&amp;api%5Fkey=%64%68%6B%5F%63%64%65%66%67%68%69", "payload=…&amp;api%5Fkey=%64%68…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := MaskQuery(c.in)
			if got != c.want {
				t.Errorf("MaskQuery(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if again := MaskQuery(got); again != got {
				t.Errorf("MaskQuery is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

// FuzzMaskQuery checks, for any query around a signed link's sig, written
// with any escapes in its name, that the signature never comes through.
func FuzzMaskQuery(f *testing.F) {
	f.Add("key_id=k1", "sig", "&payload=e30")
	f.Add("", "%73ig", "")
	f.Add("a=b&", "%53iG", "#frag")
	f.Add("x=%", "s%69g", "&sig=")
	f.Add("key_id=k1&amp;", "sig", "&amp;payload=e30")
	const secret = "Zq8vDp5ZR9N4P0xq7Yt2sWm3"
	f.Fuzz(func(t *testing.T, before, name, after string) {
		if strings.Contains(before+name+after, secret[:8]) {
			t.Skip("not a missing tool (CI-safe): the input contains the secret itself")
		}
		// The server reads "sig" only as it is; MaskQuery also hides its ASCII
		// case variants, the stronger promise checked here. Unicode folding
		// goes further ("ſIG" folds to "sig"): no reader of ours does that.
		if n, err := url.QueryUnescape(name); err != nil || !isASCII(n) || !strings.EqualFold(n, "sig") {
			t.Skip("not a missing tool (CI-safe): not a name the server reads as sig")
		}
		q := before
		if q != "" && !strings.HasSuffix(q, "&") && !strings.HasSuffix(q, "&amp;") { // as HTML writes it, too
			q += "&"
		}
		q += name + "=" + secret
		if after != "" && after[0] != '&' && after[0] != '#' {
			q += "&"
		}
		q += after
		got := MaskQuery(q)
		if strings.Contains(got, secret[:8]) {
			t.Errorf("MaskQuery(%q) = %q leaks the signature", q, got)
		}
		if again := MaskQuery(got); again != got {
			t.Errorf("MaskQuery not idempotent on %q: %q -> %q", q, got, again)
		}
	})
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://devicehooks:S3cret@broker:1883":    "tcp://devicehooks:xxxxx@broker:1883",
		"ssl://broker:8883":                       "ssl://broker:8883",
		"postgres://u:p%40ss@db/x?sslmode=verify": "postgres://u:xxxxx@db/x?sslmode=verify",
		"data/devicehooks.db":                     "data/devicehooks.db",
		"tcp://u:pa/ss@h:1883":                    "tcp://xxxxx@h:1883",
		"tcp://u:p%zz@h":                          "tcp://xxxxx@h",
		"postgres://u@db/x?sslmode=disable&password=S3cret&application_name=dh": "postgres://u@db/x?sslmode=disable&password=xxxxx&application_name=dh",
		"postgres://u@db/x?PassWord=S3cret&sslpassword=k3y":                     "postgres://u@db/x?PassWord=xxxxx&sslpassword=xxxxx",
		"postgres://u@db/x?pass%77ord=S3cret":                                   "postgres://u@db/x?pass%77ord=xxxxx",
		// What pgx reads as a password, as libpq does, and net/url as a port
		// and a fragment or a query.
		"postgres://app:2024#Secret@db/app": "postgres://xxxxx@db/app",
		"postgres://app:5432?x@db/app":      "postgres://xxxxx@db/app",
		"postgres://app:se@cr#et@db/app":    "postgres://xxxxx@db/app",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
