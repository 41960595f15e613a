package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// provisionConcurrency bounds the requests Provision has in flight.
const provisionConcurrency = 8

// Provision creates n devices named namePrefix-00001... through the management API
// (POST {apiURL}/api/v1/devices with {"id","name"}, Authorization: Bearer adminToken)
// and returns their credentials, in index order. The tokens come from the 201
// answers: the server shows them only once. A device that already exists (409) is an
// error naming it; devices created before an error are left in place.
func Provision(ctx context.Context, apiURL, adminToken string, n int, namePrefix string) ([]Credentials, error) {
	if n <= 0 {
		return nil, fmt.Errorf("simulator: provision: need at least one device, got %d", n)
	}
	if namePrefix == "" {
		return nil, errors.New("simulator: provision: empty name prefix")
	}
	endpoint := strings.TrimRight(apiURL, "/") + "/api/v1/devices"

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = provisionConcurrency
	client := &http.Client{Transport: transport, Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	creds := make([]Credentials, n)
	indexes := make(chan int)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(provisionConcurrency, n) {
		wg.Go(func() {
			for i := range indexes {
				id := fmt.Sprintf("%s-%05d", namePrefix, i+1)
				token, err := createDevice(ctx, client, endpoint, adminToken, id)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				creds[i] = Credentials{DeviceID: id, Token: token}
			}
		})
	}
feed:
	for i := range n {
		select {
		case indexes <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(indexes)
	wg.Wait()

	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("simulator: provision: %w", err)
	}
	return creds, nil
}

// createDevice makes one POST /api/v1/devices and returns the device's token.
func createDevice(ctx context.Context, client *http.Client, endpoint, adminToken, id string) (string, error) {
	body, _ := json.Marshal(map[string]string{"id": id, "name": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("simulator: provision %s: %w", id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)

	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("simulator: provision %s: %w", id, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("simulator: provision %s: reading answer: %w", id, err)
	}

	switch resp.StatusCode {
	case http.StatusCreated:
		var created struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(data, &created); err != nil || created.Token == "" {
			return "", fmt.Errorf("simulator: provision %s: 201 answer without a token", id)
		}
		return created.Token, nil
	case http.StatusConflict:
		return "", fmt.Errorf("simulator: provision %s: device already exists (409); its token cannot be read again, so choose another name prefix or pass its credentials", id)
	default:
		return "", fmt.Errorf("simulator: provision %s: %s%s", id, resp.Status, apiErrorSuffix(data))
	}
}

// apiErrorSuffix renders the contract's {"error":{"code","detail"}} body, if any.
func apiErrorSuffix(data []byte) string {
	var e struct {
		Error struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
		return ""
	}
	if e.Error.Detail == "" {
		return ": " + e.Error.Code
	}
	return ": " + e.Error.Code + ": " + e.Error.Detail
}
