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

// CheckSecret refuses to run with a secret other than the data's, and says
// whether the secret is now pinned to the database. The first start stores the
// secret's fingerprint. A database from before fingerprints gets it once its
// sealed API keys show that the secret opens them; one that holds credentials
// but no such key cannot tell, and is left unpinned (pinned false) rather
// than pinned to a secret that may be wrong, which would lock out the right one.
func CheckSecret(ctx context.Context, st *store.Store, kr *secrets.Keyring) (pinned bool, err error) {
	stored, err := st.Setting(ctx, secretSetting)
	switch {
	case err == nil:
		if !secrets.Equal(stored, kr.Fingerprint()) {
			return false, ErrWrongSecret
		}
		return true, nil
	case !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("check the server secret: %w", err)
	}
	sealed, err := st.SealedAPIKeys(ctx, 20)
	if err != nil {
		return false, fmt.Errorf("check the server secret: %w", err)
	}
	if len(sealed) > 0 && !opensAny(kr, sealed) {
		return false, ErrWrongSecret
	}
	if len(sealed) == 0 {
		has, err := st.HasCredentials(ctx)
		if err != nil {
			return false, fmt.Errorf("check the server secret: %w", err)
		}
		if has {
			return false, nil // nothing to check it with
		}
	}
	if stored, err = st.SetSettingOnce(ctx, secretSetting, kr.Fingerprint()); err != nil {
		return false, fmt.Errorf("check the server secret: %w", err)
	}
	if !secrets.Equal(stored, kr.Fingerprint()) { // another instance pinned another
		return false, ErrWrongSecret
	}
	return true, nil
}

// SecretMismatch tells, reading only, whether the database is pinned to
// another secret: for a standby, which must not wait for hours to learn it
// at takeover. It cannot tell (false) on a database that is not pinned.
func SecretMismatch(ctx context.Context, st *store.Store, kr *secrets.Keyring) bool {
	stored, err := st.Setting(ctx, secretSetting)
	return err == nil && !secrets.Equal(stored, kr.Fingerprint())
}

// opensAny tells whether the secret opens any of the sealed values (keys
// sealed under a wrong secret meanwhile do not make the right one fail).
func opensAny(kr *secrets.Keyring, sealed []string) bool {
	for _, s := range sealed {
		if _, err := kr.Open(s); err == nil {
			return true
		}
	}
	return false
}
