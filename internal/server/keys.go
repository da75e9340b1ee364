package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/signing"
)

// envKeys are one environment's loaded keys.
type envKeys struct {
	signer *signing.Signer
	// verifier holds the signing key and the verification keys it rotated
	// away from.
	verifier *signing.Keyring
	// trustedCI is nil when no CI key is trusted.
	trustedCI *signing.Keyring
}

// loadKeys loads (for the embedded default: creates) an environment's keys.
// Every problem stops start-up with a message naming the environment, the
// file and the variable to set, so a bad password never surfaces mid-request.
func loadKeys(cfg config.Config, e config.Environment, logger *slog.Logger, loaded *signing.Signer) (*envKeys, error) {
	sg := e.Signing
	if loaded != nil {
		return withVerification(e, loaded)
	}
	passwordVar := sg.PasswordEnv
	if passwordVar == "" {
		passwordVar = config.DefaultPasswordEnv
	}
	password := sg.Password
	keyPath := sg.Key
	if keyPath == "" {
		if password == "" {
			var err error
			if password, err = embeddedPassword(cfg.KeyDir(), logger); err != nil {
				return nil, err
			}
		}
		priv, pub, created, err := signing.EnsureKeyPair(cfg.KeyDir(), e.Name, []byte(password))
		if err != nil {
			return nil, keyLoadError(e.Name, cfg.KeyDir(), passwordVar, err)
		}
		if created {
			logger.Info("generated environment signing key", "environment", e.Name, "private_key", priv, "public_key", pub)
		} else {
			logger.Info("environment signing key", "environment", e.Name, "public_key", pub)
		}
		keyPath = priv
	} else if password == "" {
		return nil, fmt.Errorf("environment %s: the password of signing key %s is missing: set $%s", e.Name, keyPath, passwordVar)
	}
	signer, err := signing.LoadSignerFile(keyPath, []byte(password))
	if err != nil {
		return nil, keyLoadError(e.Name, keyPath, passwordVar, err)
	}
	return withVerification(e, signer)
}

// withVerification completes an environment's keys around its signer: the
// verification keyring (the signer and the keys it rotated from) and the
// trusted CI keys.
func withVerification(e config.Environment, signer *signing.Signer) (*envKeys, error) {
	sg := e.Signing
	pems := [][]byte{signer.PublicKeyPEM()}
	for _, p := range sg.VerificationKeys {
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("environment %s: verification key: %w", e.Name, err)
		}
		pems = append(pems, pem)
	}
	verifier, err := signing.NewKeyring(pems...)
	if err != nil {
		return nil, fmt.Errorf("environment %s: verification keys: %w", e.Name, err)
	}
	keys := &envKeys{signer: signer, verifier: verifier}
	if len(sg.TrustedCIKeys) > 0 {
		var ci [][]byte
		for _, p := range sg.TrustedCIKeys {
			pem, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("environment %s: trusted CI key: %w", e.Name, err)
			}
			ci = append(ci, pem)
		}
		if keys.trustedCI, err = signing.NewKeyring(ci...); err != nil {
			return nil, fmt.Errorf("environment %s: trusted CI keys: %w", e.Name, err)
		}
	}
	return keys, nil
}

func keyLoadError(env, path, passwordVar string, err error) error {
	if errors.Is(err, signing.ErrBadPassword) {
		return fmt.Errorf("environment %s: cannot decrypt signing key %s: wrong or missing password (set $%s): %w", env, path, passwordVar, err)
	}
	return fmt.Errorf("environment %s: signing key %s: %w", env, path, err)
}

// embeddedPassword returns the password of the embedded default's generated
// keys when no variable provides one: a random password kept beside the
// keys (0600), so `stagegate serve` works with no set-up. Production
// configures key files and a password variable instead.
func embeddedPassword(dir string, logger *slog.Logger) (string, error) {
	path := filepath.Join(dir, "password")
	data, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(data)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*.key")); len(entries) > 0 {
		return "", fmt.Errorf("signing keys exist in %s but neither $%s nor %s gives their password", dir, config.DefaultPasswordEnv, path)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return embeddedPassword(dir, logger)
	}
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(password + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	logger.Warn("no key password set: generated one for the embedded default's signing keys; production should set keys and a password variable",
		"password_file", path, "variable", config.DefaultPasswordEnv)
	return password, nil
}
