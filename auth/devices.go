package auth

import (
	"context"
	"strings"
	"sync"
	"time"

	"devicehooks/actions"
	"devicehooks/secrets"
	"devicehooks/store"
)

// Devices manages players' MQTT credentials and admits them to the embedded
// broker. It keeps every device's token hash in memory, so a reconnect storm of
// thousands of players does not become thousands of queries.
type Devices struct {
	st *store.Store
	kr *secrets.Keyring

	mu     sync.RWMutex
	hashes map[string]string

	// OnRevoke, if set, is called when a device's credentials stop working
	// (rotation or deletion), to close its live connections.
	OnRevoke func(deviceID string)
	// OnDelete, if set, is called after a device is deleted (to forget its
	// presence), with the ids of its open commands, now expired.
	OnDelete func(deviceID string, expired []string)
	// Reserved, if set, is an id no device may have: the server's own
	// username on an external broker, which shares the broker's accounts.
	Reserved string
}

// NewDevices returns the device credential service; call Load before use.
func NewDevices(st *store.Store, kr *secrets.Keyring) *Devices {
	return &Devices{st: st, kr: kr, hashes: map[string]string{}}
}

// Load reads every device's token hash.
func (d *Devices) Load(ctx context.Context) error {
	creds, err := d.st.DeviceCredentials(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range creds {
		d.hashes[c.ID] = c.TokenHash
	}
	return nil
}

// Create registers a device and returns it with its token, shown once.
func (d *Devices) Create(ctx context.Context, id, name string) (*store.Device, string, error) {
	id = strings.TrimSpace(id)
	if !actions.DeviceIDPattern.MatchString(id) {
		return nil, "", actions.Invalid("id", "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if d.Reserved != "" && id == d.Reserved {
		return nil, "", actions.Invalid("id", "is devicehooks' own username on the MQTT broker (--mqtt-username): choose another id")
	}
	name, err := deviceName(id, name)
	if err != nil {
		return nil, "", err
	}
	token, hash, mosq := d.newCredentials()
	now := time.Now().UTC()
	dev := &store.Device{ID: id, Name: name, TokenHash: hash, MosquittoHash: mosq, CreatedAt: now, UpdatedAt: now}
	if err := d.st.CreateDevice(ctx, dev); err != nil {
		return nil, "", err
	}
	d.mu.Lock()
	d.hashes[id] = hash
	d.mu.Unlock()
	return dev, token, nil
}

// Rotate gives a device a new token; the old one stops working at once.
func (d *Devices) Rotate(ctx context.Context, id string) (string, error) {
	token, hash, mosq := d.newCredentials()
	if err := d.st.SetDeviceToken(ctx, id, hash, mosq); err != nil {
		return "", err
	}
	d.mu.Lock()
	d.hashes[id] = hash
	d.mu.Unlock()
	if d.OnRevoke != nil {
		d.OnRevoke(id)
	}
	return token, nil
}

// Rename changes a device's name, and returns it: an empty one is the id, as
// on Create.
func (d *Devices) Rename(ctx context.Context, id, name string) (string, error) {
	name, err := deviceName(id, name)
	if err != nil {
		return "", err
	}
	return name, d.st.RenameDevice(ctx, id, name)
}

// deviceName is the name a device is shown by: as given, or its id.
func deviceName(id, name string) (string, error) {
	if name = strings.TrimSpace(name); name == "" {
		return id, nil
	}
	return name, actions.CheckName("name", name)
}

// Delete removes a device and closes its connections.
func (d *Devices) Delete(ctx context.Context, id string) error {
	expired, err := d.st.DeleteDevice(ctx, id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.hashes, id)
	d.mu.Unlock()
	if d.OnRevoke != nil {
		d.OnRevoke(id)
	}
	if d.OnDelete != nil {
		d.OnDelete(id, expired)
	}
	return nil
}

// Count is how many devices are registered (as this instance knows them).
func (d *Devices) Count() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.hashes)
}

// Authenticate reports whether token is the device's current token.
func (d *Devices) Authenticate(id, token string) bool {
	if id == "" || token == "" || len(token) > 200 {
		return false
	}
	got := d.kr.LookupHash(token)
	d.mu.RLock()
	want, ok := d.hashes[id]
	d.mu.RUnlock()
	if !ok {
		// Compare anyway so an unknown device costs the same as a wrong token.
		want = strings.Repeat("0", len(got))
	}
	return secrets.Equal(got, want) && ok
}

func (d *Devices) newCredentials() (token, hash, mosquitto string) {
	token = secrets.NewToken(secrets.DeviceTokenPrefix)
	return token, d.kr.LookupHash(token), secrets.MosquittoHash(token)
}
