package main

import (
	"io"
	"testing"
)

func TestServeFlagsFromTheEnvironment(t *testing.T) {
	parse := func(t *testing.T, env map[string]string, args ...string) *Config {
		t.Helper()
		c, err := parseServeFlags(args, io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("a set but empty variable turns a text setting off", func(t *testing.T) {
		if c := parse(t, map[string]string{"DEVICEHOOKS_MQTT_WS_LISTEN": ""}); c.MQTTWSListen != "" {
			t.Fatalf("--mqtt-ws-listen = %q", c.MQTTWSListen)
		}
		if c := parse(t, nil); c.MQTTWSListen == "" {
			t.Fatal("unset, the websocket listener has no default")
		}
	})
	t.Run("an empty variable leaves a number or a switch at its default", func(t *testing.T) {
		c := parse(t, map[string]string{"DEVICEHOOKS_MAX_TARGETS": "", "DEVICEHOOKS_SECURE_COOKIES": ""})
		if c.MaxTargets != 0 || c.SecureCookies {
			t.Fatalf("max targets %d, secure cookies %v", c.MaxTargets, c.SecureCookies)
		}
	})
	t.Run("a flag wins over the environment", func(t *testing.T) {
		if c := parse(t, map[string]string{"DEVICEHOOKS_MAX_TARGETS": "5"}, "--max-targets", "7"); c.MaxTargets != 7 {
			t.Fatalf("--max-targets = %d", c.MaxTargets)
		}
	})
	t.Run("cookies are Secure when the public URL is https", func(t *testing.T) {
		if c := parse(t, nil, "--public-url", "https://signage.example.com"); !c.SecureCookies {
			t.Fatal("https public URL without --secure-cookies: cookies not Secure")
		}
		if c := parse(t, nil, "--public-url", "http://10.0.0.5:8080"); c.SecureCookies {
			t.Fatal("http public URL: cookies Secure")
		}
		if c := parse(t, map[string]string{"DEVICEHOOKS_SECURE_COOKIES": "false"}, "--public-url", "https://x.example"); c.SecureCookies {
			t.Fatal("DEVICEHOOKS_SECURE_COOKIES=false did not win")
		}
		if c := parse(t, nil, "--public-url", "https://x.example", "--secure-cookies=false"); c.SecureCookies {
			t.Fatal("--secure-cookies=false did not win")
		}
	})
}
