// Package signingtest provides environment signing keys for tests that start
// many short-lived servers. Generating and decrypting a cosign key runs
// scrypt, which under the race detector costs seconds per key; the keys here
// are made once per test binary and shared.
package signingtest

import (
	"sync"
	"testing"

	"github.com/stagegate/stagegate/internal/signing"
)

var (
	once    sync.Once
	signers map[string]*signing.Signer
	err     error
)

// Signers returns one signer for each of the default environments (dev,
// staging, prod), the same ones on every call in this process. Callers must
// not rely on them being distinct from another test's.
func Signers(t testing.TB) map[string]*signing.Signer {
	t.Helper()
	once.Do(func() {
		signers = map[string]*signing.Signer{}
		for _, env := range []string{"dev", "staging", "prod"} {
			var priv []byte
			if priv, _, err = signing.GenerateKeyPair([]byte("test")); err != nil {
				return
			}
			if signers[env], err = signing.LoadSigner(priv, []byte("test")); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("signingtest: %v", err)
	}
	return signers
}
