package signing

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// File suffixes EnsureKeyPair uses; they are the ones `cosign
// generate-key-pair --output-key-prefix <basename>` writes.
const (
	privateKeySuffix = ".key"
	publicKeySuffix  = ".pub"
)

// GenerateKeyPair makes a new ECDSA P-256 key pair in cosign's format: the
// private key PEM is encrypted with password exactly as `cosign
// generate-key-pair` does, so the cosign CLI can use it with
// COSIGN_PASSWORD=password. An empty password is refused with ErrBadPassword:
// an environment key must never sit unencrypted on disk.
func GenerateKeyPair(password []byte) (privatePEM, publicPEM []byte, err error) {
	if len(password) == 0 {
		return nil, nil, &KeyError{Source: "new key pair", Err: fmt.Errorf("%w: refusing to encrypt a private key with an empty password", ErrBadPassword)}
	}
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, nil, &KeyError{Source: "new key pair", Err: err}
	}
	return kb.PrivateBytes, kb.PublicBytes, nil
}

// EnsureKeyPair makes sure <dir>/<basename>.key (mode 0600) and
// <dir>/<basename>.pub exist, generating a pair with GenerateKeyPair on first
// start; it reports created=true only when it generated one. dir is created
// with mode 0700.
//
// Files are written to a temporary name and then hard-linked into place, so a
// reader never sees a partial key and, unlike rename, an existing key is
// never replaced: when two processes race, the first key wins and the loser
// adopts it. If only the private key exists (a crash between the two links),
// the public key is derived from it, which needs the right password. If only
// the public key exists, it refuses with a *KeyError instead of generating a
// new pair that would silently invalidate every signature consumers trust.
func EnsureKeyPair(dir, basename string, password []byte) (privPath, pubPath string, created bool, err error) {
	if basename == "" || basename == "." || basename == ".." || strings.ContainsAny(basename, `/\`) {
		return "", "", false, &KeyError{Source: fmt.Sprintf("%q", basename), Err: errors.New("key basename must be a plain file name")}
	}
	privPath = filepath.Join(dir, basename+privateKeySuffix)
	pubPath = filepath.Join(dir, basename+publicKeySuffix)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, &KeyError{Source: dir, Err: err}
	}

	privExists, err := exists(privPath)
	if err != nil {
		return "", "", false, &KeyError{Source: privPath, Err: err}
	}
	if !privExists {
		pubExists, err := exists(pubPath)
		if err != nil {
			return "", "", false, &KeyError{Source: pubPath, Err: err}
		}
		if pubExists {
			return "", "", false, &KeyError{Source: privPath, Err: fmt.Errorf("private key missing but public key %s exists; restore the private key or remove both to generate a new pair", pubPath)}
		}
		privPEM, pubPEM, err := GenerateKeyPair(password)
		if err != nil {
			return "", "", false, err
		}
		switch err := writeExclusive(privPath, privPEM, 0o600); {
		case err == nil:
			if err := writeExclusive(pubPath, pubPEM, 0o644); err != nil {
				return "", "", false, &KeyError{Source: pubPath, Err: err}
			}
			return privPath, pubPath, true, nil
		case errors.Is(err, fs.ErrExist):
			// Another process created the key first; fall through and use it.
		default:
			return "", "", false, &KeyError{Source: privPath, Err: err}
		}
	}

	pubExists, err := exists(pubPath)
	if err != nil {
		return "", "", false, &KeyError{Source: pubPath, Err: err}
	}
	if !pubExists {
		s, err := LoadSignerFile(privPath, password)
		if err != nil {
			return "", "", false, err
		}
		if err := writeExclusive(pubPath, s.PublicKeyPEM(), 0o644); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", "", false, &KeyError{Source: pubPath, Err: err}
		}
	}
	return privPath, pubPath, false, nil
}

// exists reports whether path exists, treating only "not found" as false.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// writeExclusive writes data to path with mode perm, failing with an error
// that wraps fs.ErrExist when path already exists. The data is written and
// synced under a temporary name first, so path appears complete or not at
// all.
func writeExclusive(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = rmErr
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// KeyID returns the stable id stagegate shows for a public key:
// "sha256:" followed by the lowercase hex SHA-256 of the key's DER-encoded
// SubjectPublicKeyInfo (the bytes inside the .pub PEM). It does not depend on
// PEM whitespace or comments, so the same key always has the same id, and
// anyone can recompute it with
//
//	openssl pkey -pubin -in env.pub -outform DER | sha256sum
//
// It fails with a *KeyError wrapping ErrMalformedKey when publicPEM is not a
// PEM public key.
func KeyID(publicPEM []byte) (string, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(publicPEM)
	if err != nil {
		return "", &KeyError{Source: "public key", Err: fmt.Errorf("%w: %v", ErrMalformedKey, err)}
	}
	return keyIDOf(pub)
}

// keyIDOf computes KeyID for a parsed public key.
func keyIDOf(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", &KeyError{Source: "public key", Err: fmt.Errorf("%w: %v", ErrMalformedKey, err)}
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
