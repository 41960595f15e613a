package main

import (
	"context"
	"os"
	"strings"
	"time"
)

// jsonNumber returns the integer after prefix in a flat JSON body, or 0.
func jsonNumber(body []byte, prefix string) int64 {
	s := string(body)
	i := strings.Index(s, prefix)
	if i < 0 {
		return 0
	}
	var n int64
	for _, c := range s[i+len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// loadAverage is /proc/loadavg's first three fields: how busy the machine was.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
