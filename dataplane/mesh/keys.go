package mesh

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// loadOrCreateKey reads the node's private key, generating it on first use.
// The key is written 0600 and never leaves the node; only the public key is
// published.
func loadOrCreateKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		fi, serr := os.Stat(path)
		if serr == nil && fi.Mode().Perm()&0o077 != 0 {
			return wgtypes.Key{}, fmt.Errorf("mesh: key file %s is readable by others (mode %v)", path, fi.Mode().Perm())
		}
		k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			return wgtypes.Key{}, fmt.Errorf("mesh: key file %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return wgtypes.Key{}, fmt.Errorf("mesh: read key: %w", err)
	}
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh: generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh: key dir: %w", err)
	}
	// O_EXCL: two agents racing on first start must not overwrite each
	// other's key after one has published its public half.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path)
	}
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh: write key: %w", err)
	}
	if _, err := f.WriteString(k.String() + "\n"); err != nil {
		f.Close()
		return wgtypes.Key{}, fmt.Errorf("mesh: write key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return wgtypes.Key{}, fmt.Errorf("mesh: write key: %w", err)
	}
	return k, f.Close()
}
