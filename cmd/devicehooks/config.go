package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"devicehooks/auth"
	"devicehooks/store"
)

// Config is every setting of `devicehooks serve`. Each flag has an environment
// variable of the same name in upper case with a DEVICEHOOKS_ prefix.
type Config struct {
	HTTPAddr           string
	DB                 string
	MQTTURL            string
	MQTTListen         string
	MQTTWSListen       string
	MQTTTopicPrefix    string
	MQTTUsername       string
	MQTTPassword       string
	MQTTAllowAnonymous bool
	AdminToken         string
	AdminUser          string
	AdminPassword      string
	PublicURL          string
	SecureCookies      bool
	// SecureCookiesFromURL: SecureCookies was turned on by an https --public-url
	// (start-up says so: the UI then works only over https).
	SecureCookiesFromURL bool
	Secret               string
	SecretFile           string
	MaxBodyBytes         int64
	MaxTargets           int
	TrustedProxies       string
	LogLevel             string
	LogFormat            string
	PprofAddr            string
	MetricsAddr          string
	MaxHeaderBytes       int
	MaxConcurrent        int
	RequestLogDays       int
	DispatchDays         int
	ReadHeaderTimeout    time.Duration
	ReadTimeout          time.Duration
	WriteTimeout         time.Duration
	IdleTimeout          time.Duration
}

// DefaultConfig is the configuration with every flag at its default.
func DefaultConfig() Config {
	var c Config
	serveFlags(&c, io.Discard)
	return c
}

// valueHint says what a flag's value must look like, for an error about one
// given in the environment ("parse error" alone, from the flag package).
func valueHint(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return " (a duration with its unit, such as 30s, 5m or 1h30m)"
	case int, int64, uint, uint64:
		return " (a whole number)"
	case bool:
		return " (true or false)"
	}
	return ""
}

// parseServeFlags reads flags, then fills unset ones from the environment
// (os.LookupEnv). A variable that is set but empty turns off what emptyTurnsOff
// names (DEVICEHOOKS_MQTT_WS_LISTEN= closes that listener) and otherwise means
// the default: a template that passes an unset value through must not move a
// listener to a random port. Without a --secure-cookies of either kind, cookies
// are Secure when --public-url is https.
func parseServeFlags(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (*Config, error) {
	c := &Config{}
	fs := serveFlags(c, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		v, ok := lookupEnv(env)
		if !ok || set[f.Name] || err != nil {
			return
		}
		if v == "" && !emptyTurnsOff[f.Name] {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %w%s", env, v, e, valueHint(f))
		}
		set[f.Name] = true
	})
	if err != nil {
		return nil, err
	}
	if !set["secure-cookies"] && strings.HasPrefix(strings.ToLower(c.PublicURL), "https://") {
		c.SecureCookies, c.SecureCookiesFromURL = true, true
	}
	return c, c.validate()
}

// envName is the environment variable of a flag: --mqtt-url is
// DEVICEHOOKS_MQTT_URL.
func envName(flag string) string {
	return "DEVICEHOOKS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// emptyTurnsOff names the settings that an empty value turns off, rather than
// leaving at their default.
var emptyTurnsOff = map[string]bool{"mqtt-ws-listen": true}

// serveFlags defines every serve flag on c, with its default.
func serveFlags(c *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "HTTP listen address")
	fs.StringVar(&c.DB, "db", "devicehooks.db", "SQLite file path, or a postgres:// URL")
	fs.StringVar(&c.MQTTURL, "mqtt-url", "", "external MQTT broker, e.g. tcp://127.0.0.1:1883 (empty: embedded broker)")
	fs.StringVar(&c.MQTTListen, "mqtt-listen", ":1883", "embedded broker's MQTT TCP listen address")
	fs.StringVar(&c.MQTTWSListen, "mqtt-ws-listen", ":8083", "embedded broker's MQTT-over-WebSocket listen address (empty: off)")
	fs.StringVar(&c.MQTTTopicPrefix, "mqtt-topic-prefix", "devicehooks", "MQTT topic prefix")
	fs.StringVar(&c.MQTTUsername, "mqtt-username", "", "username for the external broker")
	fs.StringVar(&c.MQTTPassword, "mqtt-password", "", "password for the external broker")
	fs.BoolVar(&c.MQTTAllowAnonymous, "mqtt-allow-anonymous", false, "DEVELOPMENT ONLY: let MQTT clients without credentials into the embedded broker")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bootstrap admin token for the management API (at least 32 characters)")
	fs.StringVar(&c.AdminUser, "admin-user", "admin", "web UI admin account created at first start")
	fs.StringVar(&c.AdminPassword, "admin-password", "", "password of that account at first start (default: generated and printed once)")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL of this server as callers see it, for generated links (default: from each request)")
	fs.BoolVar(&c.SecureCookies, "secure-cookies", false, "mark session cookies Secure (set when serving behind TLS; default: true when --public-url is https)")
	fs.StringVar(&c.Secret, "secret", "", "server secret (64+ hex characters or 32+ characters); default: read or create --secret-file")
	fs.StringVar(&c.SecretFile, "secret-file", "", "file holding the server secret, created with mode 0600 at first start (default: beside the SQLite file, or ./devicehooks.secret)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 64<<10, "largest webhook body accepted")
	fs.IntVar(&c.MaxTargets, "max-targets", 0, "refuse a trigger that would reach more devices than this (0: no limit)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 16<<10, "largest request header accepted on the webhook")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent-webhooks", 512, "webhook calls in progress at once; more get 503")
	fs.IntVar(&c.RequestLogDays, "request-log-days", 30, "days to keep the webhook request log")
	fs.IntVar(&c.DispatchDays, "dispatch-days", 90, "days to keep dispatches and their commands once settled (0: keep them all)")
	fs.DurationVar(&c.ReadHeaderTimeout, "http-read-header-timeout", 10*time.Second, "time a client has to send its request headers")
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", 30*time.Second, "time a client has to send its whole request")
	fs.DurationVar(&c.WriteTimeout, "http-write-timeout", 60*time.Second, "time to write an answer (webhook calls may wait up to 30 s for acks)")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated proxy addresses/CIDRs whose X-Forwarded-For is believed")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "also serve /metrics without a token on this (private) address, e.g. 127.0.0.1:9090")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's /debug/pprof on this address, e.g. 127.0.0.1:6060 (empty: off; never expose it)")
	return fs
}

func (c *Config) validate() error {
	if err := store.CheckDSN(c.DB); err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	if c.AdminToken != "" && len(c.AdminToken) < auth.MinBootstrapTokenLen {
		return fmt.Errorf("--admin-token must be at least %d characters", auth.MinBootstrapTokenLen)
	}
	if c.MQTTTopicPrefix == "" || strings.ContainsAny(c.MQTTTopicPrefix, "+#") || strings.HasSuffix(c.MQTTTopicPrefix, "/") {
		return errors.New("--mqtt-topic-prefix must be non-empty, without '+', '#' or a trailing '/'")
	}
	if c.MaxBodyBytes < 1024 {
		return errors.New("--max-body-bytes must be at least 1024")
	}
	if c.MaxTargets < 0 || c.DispatchDays < 0 {
		return errors.New("--max-targets and --dispatch-days must not be negative")
	}
	if c.MaxHeaderBytes < 1024 || c.MaxConcurrent < 1 || c.RequestLogDays < 1 {
		return errors.New("--max-header-bytes must be at least 1024, --max-concurrent-webhooks and --request-log-days at least 1")
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 {
		return errors.New("the --http-*-timeout flags must be positive")
	}
	if c.DB == "" {
		return errors.New("--db is required")
	}
	if c.HTTPAddr == "" || c.AdminUser == "" || c.MQTTURL == "" && c.MQTTListen == "" {
		return errors.New("--http-addr, --admin-user and (with the embedded broker) --mqtt-listen must not be empty")
	}
	for _, p := range c.trustedProxies() {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				return fmt.Errorf("--trusted-proxies: %q is not an address or CIDR range", p)
			}
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("--public-url: %q is not a base URL such as https://hooks.example.com", c.PublicURL)
		}
	}
	return nil
}

// secretPath is where the server secret lives when no --secret is given.
func (c *Config) secretPath() string {
	if c.SecretFile != "" {
		return c.SecretFile
	}
	if store.IsPostgres(c.DB) {
		return "devicehooks.secret"
	}
	return filepath.Join(filepath.Dir(c.DB), "devicehooks.secret")
}

func (c *Config) trustedProxies() []string {
	var out []string
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newLogger builds the process's one logger.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		// Durations as the text format and the docs write them ("390ms"),
		// not as slog's JSON nanoseconds (390000000).
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}
