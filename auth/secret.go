package auth

import (
	"context"
	"errors"
	"fmt"

	"devicehooks/secrets"
	"devicehooks/store"
)

// secretSetting keeps the fingerprint of the server secret the data was made with.
const secretSetting = "secret_fingerprint"

// ErrWrongSecret means the server was started with another secret than the
// one its database was made with: every API key, token and password hash,
// and every signed link, would fail.
var ErrWrongSecret = errors.New("the server secret is not the one this database was made with: " +
	"start with the same --secret, --secret-file or DEVICEHOOKS_SECRET as before " +
	"(every instance sharing a database needs the same one; a restored database needs its own secret)")

// CheckSecret refuses to run with a secret other than the data's. The first
// start stores the secret's fingerprint; a database from before fingerprints
// gets it once its sealed API keys are shown to open with the secret.
func CheckSecret(ctx context.Context, st *store.Store, kr *secrets.Keyring) error {
	stored, err := st.Setting(ctx, secretSetting)
	if errors.Is(err, store.ErrNotFound) {
		var sealed string
		if sealed, err = st.AnySealedAPIKey(ctx); err != nil {
			return fmt.Errorf("check the server secret: %w", err)
		}
		if sealed != "" {
			if _, err := kr.Open(sealed); err != nil {
				return ErrWrongSecret
			}
		}
		stored, err = st.SetSettingOnce(ctx, secretSetting, kr.Fingerprint())
	}
	if err != nil {
		return fmt.Errorf("check the server secret: %w", err)
	}
	if !secrets.Equal(stored, kr.Fingerprint()) {
		return ErrWrongSecret
	}
	return nil
}
