package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// saveProfile fetches a pprof profile from the server into the profile directory
// and returns the file's path ("" on failure, which is logged).
func (v *variant) saveProfile(ctx context.Context, kind, name string, seconds int) string {
	if v.srv.pprofAddr == "" {
		return ""
	}
	url := "http://" + v.srv.pprofAddr + "/debug/pprof/" + kind
	if seconds > 0 {
		url += fmt.Sprintf("?seconds=%d", seconds)
	}
	ext := ".pprof"
	switch {
	case strings.Contains(kind, "debug="):
		ext = ".txt"
	case kind == "trace":
		ext = ".trace" // go tool trace
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Timeout: time.Duration(seconds+30) * time.Second}).Do(req)
	if err != nil {
		v.logf("profile %s: %v", kind, err)
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		v.logf("profile %s: %s", kind, resp.Status)
		return ""
	}
	if err := os.MkdirAll(v.o.profileDir, 0o755); err != nil {
		v.logf("profile %s: %v", kind, err)
		return ""
	}
	path := filepath.Join(v.o.profileDir, name+ext)
	f, err := os.Create(path)
	if err != nil {
		v.logf("profile %s: %v", kind, err)
		return ""
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		v.logf("profile %s: %v", kind, err)
		return ""
	}
	v.logf("saved %s", path)
	return path
}

// saveSamples writes every accepted call of a load phase as CSV (offset from the
// first call, HTTP and end-to-end latency in ms), to see when latency spikes.
func (v *variant) saveSamples(name string, samples []sample) {
	if len(samples) == 0 || os.MkdirAll(v.o.profileDir, 0o755) != nil {
		return
	}
	var b strings.Builder
	b.WriteString("offset_ms,http_ms,e2e_ms\n")
	t0 := samples[0].start
	for _, s := range samples {
		if s.start.Before(t0) {
			t0 = s.start
		}
	}
	for _, s := range samples {
		e2e := -1.0
		if got, ok := v.rc.get(s.dispatchID); ok && got.n > 0 {
			e2e = ms(got.first.Sub(s.start))
		}
		fmt.Fprintf(&b, "%.1f,%.3f,%.3f\n", ms(s.start.Sub(t0)), ms(s.end.Sub(s.start)), e2e)
	}
	path := filepath.Join(v.o.profileDir, name+"-samples.csv")
	if os.WriteFile(path, []byte(b.String()), 0o644) == nil {
		v.res.Profiles = append(v.res.Profiles, path)
	}
}

// profileSelf starts a CPU profile of this process (the load generator and the
// players) if on, and returns what stops it.
func (v *variant) profileSelf(name string, on bool) (stop func()) {
	if !on {
		return func() {}
	}
	if err := os.MkdirAll(v.o.profileDir, 0o755); err != nil {
		return func() {}
	}
	path := filepath.Join(v.o.profileDir, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		v.res.Profiles = append(v.res.Profiles, path)
	}
}
