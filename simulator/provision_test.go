package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

const testAdminToken = "dha_test-admin-token-0123456789abcdef"

// fakeDevicesAPI is just enough of our management API (CONTRACT §4) for Provision:
// POST /api/v1/devices, 201 with a token, 409 for an id it already has.
type fakeDevicesAPI struct {
	mu       sync.Mutex
	devices  map[string]string // id -> name
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func (f *fakeDevicesAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxSeen.Load(); n > m && !f.maxSeen.CompareAndSwap(m, n); m = f.maxSeen.Load() {
	}

	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, code, detail string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"message": "Error", "error": map[string]string{"code": code, "detail": detail}})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/devices" {
		fail(http.StatusNotFound, "not_found", "no such route")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testAdminToken {
		fail(http.StatusUnauthorized, "unauthorized", "a valid admin token is required")
		return
	}
	var in struct{ ID, Name string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.ID == "" {
		fail(http.StatusUnprocessableEntity, "invalid_params", "id")
		return
	}
	f.mu.Lock()
	_, exists := f.devices[in.ID]
	if !exists {
		f.devices[in.ID] = in.Name
	}
	f.mu.Unlock()
	if exists {
		fail(http.StatusConflict, "conflict", "device "+in.ID+" already exists")
		return
	}
	w.Header().Set("Location", "/api/v1/devices/"+in.ID)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": in.ID, "name": in.Name, "online": false, "token": "tok-" + in.ID})
}

func startFakeAPI(t *testing.T, existing ...string) (*fakeDevicesAPI, string) {
	t.Helper()
	f := &fakeDevicesAPI{devices: map[string]string{}}
	for _, id := range existing {
		f.devices[id] = id
	}
	srv := httptest.NewServer(f) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestProvisionCreatesDevicesInOrder(t *testing.T) {
	f, url := startFakeAPI(t)

	creds, err := Provision(context.Background(), url+"/", testAdminToken, 30, "sim")
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 30 {
		t.Fatalf("got %d credentials, want 30", len(creds))
	}
	for i, c := range creds {
		id := fmt.Sprintf("sim-%05d", i+1)
		if c.DeviceID != id || c.Token != "tok-"+id {
			t.Errorf("creds[%d] = %+v, want %s with its token", i, c, id)
		}
		if f.devices[id] != id {
			t.Errorf("device %s created with name %q", id, f.devices[id])
		}
	}
	if m := f.maxSeen.Load(); m > provisionConcurrency {
		t.Errorf("%d requests in flight, want at most %d", m, provisionConcurrency)
	}
}

func TestProvisionConflictNamesTheDevice(t *testing.T) {
	_, url := startFakeAPI(t, "dup-00003")

	_, err := Provision(context.Background(), url, testAdminToken, 5, "dup")
	if err == nil || !containsAll(err, "dup-00003", "already exists") {
		t.Errorf("error = %v, want one naming dup-00003 as already existing", err)
	}
}

func TestProvisionReportsAPIError(t *testing.T) {
	_, url := startFakeAPI(t)

	_, err := Provision(context.Background(), url, "wrong-token", 2, "sim")
	if err == nil || !containsAll(err, "401", "unauthorized") {
		t.Errorf("error = %v, want the 401 and its code", err)
	}
}

func TestProvisionRejectsBadArguments(t *testing.T) {
	if _, err := Provision(context.Background(), "http://127.0.0.1:1", testAdminToken, 0, "sim"); err == nil {
		t.Error("Provision accepted n = 0")
	}
	if _, err := Provision(context.Background(), "http://127.0.0.1:1", testAdminToken, 1, ""); err == nil {
		t.Error("Provision accepted an empty prefix")
	}
}
