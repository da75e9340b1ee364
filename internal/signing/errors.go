package signing

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadPassword is wrapped by the *KeyError returned when a private key
// cannot be decrypted because its password is wrong or was not given, so
// start-up can tell the operator to fix the password variable rather than the
// key file.
var ErrBadPassword = errors.New("wrong or missing key password")

// ErrMalformedKey is wrapped by the *KeyError returned when key bytes are not
// a key in the expected format, so callers can tell a broken or mistyped key
// file from a wrong password.
var ErrMalformedKey = errors.New("malformed key")

// KeyError reports that a key could not be generated, stored, read or
// decrypted. It is a technical failure (a gate Errored), never a verdict on a
// signature.
type KeyError struct {
	// Source names the key: a file path, or a short description such as
	// "private key" when the key came from memory.
	Source string
	// Err is the cause; it wraps ErrBadPassword or ErrMalformedKey when one
	// of them applies.
	Err error
}

// Error describes the key and the cause.
func (e *KeyError) Error() string {
	return fmt.Sprintf("signing: key %s: %v", e.Source, e.Err)
}

// Unwrap returns the cause so errors.Is(err, ErrBadPassword) works.
func (e *KeyError) Unwrap() error { return e.Err }

// VerificationError reports that a signature or attestation does not verify
// with any of the keys tried: the payload was tampered with, another key
// signed it, or the signature is truncated or garbled. It is the verdict "bad
// signature" (a gate Failed), as opposed to *KeyError.
type VerificationError struct {
	// KeyIDs lists the ids (see KeyID) of the keys that were tried, in order.
	// It is empty when a keyring had no keys.
	KeyIDs []string
	// Err is the reason reported for the last key tried.
	Err error
}

// Error names the keys tried and the reason.
func (e *VerificationError) Error() string {
	switch len(e.KeyIDs) {
	case 0:
		return fmt.Sprintf("signing: signature not verified: no trusted keys: %v", e.Err)
	case 1:
		return fmt.Sprintf("signing: signature not valid for key %s: %v", e.KeyIDs[0], e.Err)
	default:
		return fmt.Sprintf("signing: signature not valid for any of keys %s: %v", strings.Join(e.KeyIDs, ", "), e.Err)
	}
}

// Unwrap returns the reason.
func (e *VerificationError) Unwrap() error { return e.Err }
