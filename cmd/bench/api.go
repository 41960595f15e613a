package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// admin calls the management API with the bootstrap admin token.
type admin struct {
	base   string
	client *http.Client
}

func newAdmin(base string) *admin {
	return &admin{base: base, client: &http.Client{Timeout: 30 * time.Second}}
}

// call sends a JSON request and decodes a JSON answer into out (if not nil); a
// status other than want is an error.
func (a *admin) call(ctx context.Context, method, path string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// createKey creates a webhook API key and returns it.
func (a *admin) createKey(ctx context.Context, name string) (string, error) {
	var out struct {
		Key string `json:"key"`
	}
	err := a.call(ctx, http.MethodPost, "/api/v1/api-keys", map[string]any{"name": name}, &out, http.StatusCreated)
	return out.Key, err
}

// createAction creates a load_url action for target and returns its event id.
func (a *admin) createAction(ctx context.Context, name string, target map[string]string) (string, error) {
	var out struct {
		EventID string `json:"event_id"`
	}
	err := a.call(ctx, http.MethodPost, "/api/v1/actions", map[string]any{
		"name": name, "function": "load_url", "target": target,
		"params": map[string]any{"url": "https://example.com/bench"},
	}, &out, http.StatusCreated)
	return out.EventID, err
}

// onlineCount counts the devices the server believes online, page by page.
func (a *admin) onlineCount(ctx context.Context) (online, total int, err error) {
	for offset := 0; ; offset += 500 {
		var page struct {
			Items []struct {
				Online bool `json:"online"`
			} `json:"items"`
			Total int `json:"total"`
		}
		path := fmt.Sprintf("/api/v1/devices?limit=500&offset=%d", offset)
		if err := a.call(ctx, http.MethodGet, path, nil, &page, http.StatusOK); err != nil {
			return 0, 0, err
		}
		for _, d := range page.Items {
			if d.Online {
				online++
			}
		}
		total = page.Total
		if len(page.Items) == 0 || offset+len(page.Items) >= page.Total {
			return online, total, nil
		}
	}
}

// waitOnline waits until at least want devices are online on the server.
func (a *admin) waitOnline(ctx context.Context, want int, timeout time.Duration) error {
	return a.waitPresence(ctx, timeout, fmt.Sprintf("%d devices online", want), func(n int) bool { return n >= want })
}

// waitNoneOnline waits until the server has every device offline.
func (a *admin) waitNoneOnline(ctx context.Context, timeout time.Duration) error {
	return a.waitPresence(ctx, timeout, "no device online", func(n int) bool { return n == 0 })
}

func (a *admin) waitPresence(ctx context.Context, timeout time.Duration, what string, done func(online int) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		n, _, err := a.onlineCount(ctx)
		if err != nil {
			return err
		}
		if done(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s: %d devices online", timeout, what, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dispatchCounts returns the command counts by state of one dispatch, read from
// the dispatch list (newest first), which is much cheaper than the dispatch with
// all its commands.
func (a *admin) dispatchCounts(ctx context.Context, id string) (map[string]int, error) {
	var page struct {
		Items []struct {
			ID     string         `json:"id"`
			Counts map[string]int `json:"counts"`
		} `json:"items"`
	}
	if err := a.call(ctx, http.MethodGet, "/api/v1/dispatches?limit=5", nil, &page, http.StatusOK); err != nil {
		return nil, err
	}
	for _, d := range page.Items {
		if d.ID == id {
			return d.Counts, nil
		}
	}
	var d struct {
		Counts map[string]int `json:"counts"`
	}
	err := a.call(ctx, http.MethodGet, "/api/v1/dispatches/"+id, nil, &d, http.StatusOK)
	return d.Counts, err
}
