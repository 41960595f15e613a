package simulator

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
// error naming it. On any error it deletes the devices it created, whose tokens
// nobody would have, and says which it could not.
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

	creds := make([]Credentials, n)
	indexes := make(chan int)
	failed := make(chan struct{}) // closed at the first error: no more devices are started
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
					errOnce.Do(func() { firstErr = err; close(failed) })
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
		case <-failed:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(indexes)
	wg.Wait() // the requests under way finish: every device created is in creds

	err := firstErr
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("simulator: provision: %w", ctx.Err())
	}
	if err != nil {
		return nil, errors.Join(err, deleteDevices(context.WithoutCancel(ctx), client, endpoint, adminToken, creds))
	}
	return creds, nil
}

// deleteDevices deletes the devices of creds (those with an id), one at a time,
// 30 s at most, and names those it could not delete.
func deleteDevices(ctx context.Context, client *http.Client, endpoint, adminToken string, creds []Credentials) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var left []string
	var firstErr error
	for _, c := range creds {
		if c.DeviceID == "" {
			continue
		}
		err := deleteDevice(ctx, client, endpoint+"/"+url.PathEscape(c.DeviceID), adminToken)
		if err != nil {
			left = append(left, c.DeviceID)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	if len(left) == 0 {
		return nil
	}
	return fmt.Errorf("simulator: provision: could not delete again the devices it created (%s), whose tokens are lost: %w",
		strings.Join(left, ", "), firstErr)
}

func deleteDevice(ctx context.Context, client *http.Client, deviceURL, adminToken string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, deviceURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("%s%s", resp.Status, apiErrorSuffix(data))
	}
	return nil
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
