package signing

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Verifier checks signatures against one public key. It is safe for
// concurrent use.
type Verifier struct {
	v         signature.Verifier
	publicPEM []byte
	keyID     string
}

// LoadVerifier parses a PEM public key (a cosign .pub file) the way `cosign
// verify-blob --key` does: SHA-256 for ECDSA and RSA keys, plain Ed25519 for
// Ed25519 keys. It fails with a *KeyError wrapping ErrMalformedKey when the
// key cannot be used, which callers report as an error rather than as a bad
// signature.
func LoadVerifier(publicPEM []byte) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(publicPEM)
	if err != nil {
		return nil, &KeyError{Source: "public key", Err: fmt.Errorf("%w: %v", ErrMalformedKey, err)}
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, &KeyError{Source: "public key", Err: fmt.Errorf("%w: %v", ErrMalformedKey, err)}
	}
	id, err := keyIDOf(pub)
	if err != nil {
		return nil, err
	}
	canonical, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, &KeyError{Source: "public key", Err: err}
	}
	return &Verifier{v: v, publicPEM: canonical, keyID: id}, nil
}

// KeyID returns the id of the verifier's key (see KeyID).
func (v *Verifier) KeyID() string { return v.keyID }

// PublicKeyPEM returns the verifier's key as a PEM public key.
func (v *Verifier) PublicKeyPEM() []byte { return bytes.Clone(v.publicPEM) }

// VerifyBlob checks a signature in the form `cosign sign-blob` writes (the
// base64 of the raw signature; surrounding white space, such as the newline
// cosign prints to stdout, is ignored) over the exact payload bytes.
//
// It returns nil when the signature is valid, and a *VerificationError when
// it is not: empty, not base64, truncated, made by another key, or over
// other bytes.
func (v *Verifier) VerifyBlob(payload []byte, sigBase64 string) error {
	if err := v.verifyBlob(payload, sigBase64); err != nil {
		return &VerificationError{KeyIDs: []string{v.keyID}, Err: err}
	}
	return nil
}

func (v *Verifier) verifyBlob(payload []byte, sigBase64 string) error {
	raw, err := decodeSignature(sigBase64)
	if err != nil {
		return err
	}
	return v.v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(payload))
}

// decodeSignature turns cosign's base64 signature text into raw bytes.
func decodeSignature(sigBase64 string) ([]byte, error) {
	s := strings.TrimSpace(sigBase64)
	if s == "" {
		return nil, errors.New("signature is empty")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature is not valid base64: %w", err)
	}
	return raw, nil
}

// VerifyAttestation checks a DSSE envelope as written by AttestBlob or
// `cosign attest-blob`, with the same checks as `cosign
// verify-blob-attestation --type predicateType`: the envelope signature is
// valid for this key, the payload is an in-toto statement with
// predicateType, and one of its subjects has subjectDigest (64 hex
// characters, optionally prefixed by "sha256:"). It returns the predicate.
//
// A signature, envelope or statement that fails any check gives a
// *VerificationError; an invalid subjectDigest or empty predicateType is a
// caller error and gives a plain error.
func (v *Verifier) VerifyAttestation(envelope []byte, subjectDigest, predicateType string) (json.RawMessage, error) {
	hexDigest, err := parseSHA256(subjectDigest)
	if err != nil {
		return nil, err
	}
	if predicateType == "" {
		return nil, errors.New("signing: verify attestation: predicate type is empty")
	}
	pred, err := v.verifyAttestation(envelope, hexDigest, predicateType)
	if err != nil {
		return nil, &VerificationError{KeyIDs: []string{v.keyID}, Err: err}
	}
	return pred, nil
}

// statement is an in-toto statement whose predicate is kept as raw JSON.
type statement struct {
	in_toto.StatementHeader
	Predicate json.RawMessage `json:"predicate"`
}

// envelopeHeader is the part of a DSSE envelope read after verification.
type envelopeHeader struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
}

func (v *Verifier) verifyAttestation(envelope []byte, hexDigest, predicateType string) (json.RawMessage, error) {
	if err := dsse.WrapVerifier(v.v).VerifySignature(bytes.NewReader(envelope), nil); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	// The signature covers payloadType and payload (DSSE PAE), so both can
	// be trusted from here on.
	var env envelopeHeader
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	if env.PayloadType != types.IntotoPayloadType {
		return nil, fmt.Errorf("envelope payload type %q, want %q", env.PayloadType, types.IntotoPayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("envelope payload: %w", err)
	}
	var st statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	if st.PredicateType != predicateType {
		return nil, fmt.Errorf("predicate type %q, want %q", st.PredicateType, predicateType)
	}
	for _, sub := range st.Subject {
		if strings.EqualFold(sub.Digest["sha256"], hexDigest) {
			return st.Predicate, nil
		}
	}
	return nil, fmt.Errorf("no subject has sha256 digest %s", hexDigest)
}

// Keyring holds every verification key of one trust domain: an
// environment's current and retired keys (rotation: the newest key signs,
// older signatures keep verifying), or the CI keys an environment trusts. It
// is safe for concurrent use.
type Keyring struct {
	verifiers []*Verifier
}

// NewKeyring loads each PEM public key with LoadVerifier, in order; the same
// key given twice is kept once. An empty keyring is valid and verifies
// nothing, which is how "no trusted CI keys configured" behaves. A key that
// does not load gives its *KeyError.
func NewKeyring(publicPEMs ...[]byte) (*Keyring, error) {
	k := &Keyring{}
	seen := make(map[string]bool, len(publicPEMs))
	for i, p := range publicPEMs {
		v, err := LoadVerifier(p)
		if err != nil {
			var ke *KeyError
			if errors.As(err, &ke) {
				ke.Source = fmt.Sprintf("public key %d", i)
			}
			return nil, err
		}
		if seen[v.keyID] {
			continue
		}
		seen[v.keyID] = true
		k.verifiers = append(k.verifiers, v)
	}
	return k, nil
}

// KeyIDs lists the ids of the keyring's keys in the order given.
func (k *Keyring) KeyIDs() []string {
	ids := make([]string, len(k.verifiers))
	for i, v := range k.verifiers {
		ids[i] = v.keyID
	}
	return ids
}

// Identify returns the id of the first key for which sigBase64 is a valid
// signature over payload (see Verifier.VerifyBlob), so a gate can record
// which key vouched for an artifact. It returns a *VerificationError listing
// every key tried when none does.
func (k *Keyring) Identify(payload []byte, sigBase64 string) (keyID string, err error) {
	if _, err := decodeSignature(sigBase64); err != nil {
		return "", &VerificationError{KeyIDs: k.KeyIDs(), Err: err}
	}
	last := errors.New("keyring is empty")
	for _, v := range k.verifiers {
		if err := v.verifyBlob(payload, sigBase64); err != nil {
			last = err
			continue
		}
		return v.keyID, nil
	}
	return "", &VerificationError{KeyIDs: k.KeyIDs(), Err: last}
}

// VerifyBlob is Identify without the key id, so a Keyring can stand where a
// single Verifier is expected.
func (k *Keyring) VerifyBlob(payload []byte, sigBase64 string) error {
	_, err := k.Identify(payload, sigBase64)
	return err
}

// VerifyAttestation is Verifier.VerifyAttestation trying each key in turn;
// it also returns the id of the key that verified.
func (k *Keyring) VerifyAttestation(envelope []byte, subjectDigest, predicateType string) (predicate json.RawMessage, keyID string, err error) {
	hexDigest, err := parseSHA256(subjectDigest)
	if err != nil {
		return nil, "", err
	}
	if predicateType == "" {
		return nil, "", errors.New("signing: verify attestation: predicate type is empty")
	}
	last := errors.New("keyring is empty")
	for _, v := range k.verifiers {
		pred, err := v.verifyAttestation(envelope, hexDigest, predicateType)
		if err != nil {
			last = err
			continue
		}
		return pred, v.keyID, nil
	}
	return nil, "", &VerificationError{KeyIDs: k.KeyIDs(), Err: last}
}

// IdentifyDigest is Identify for a payload known only by its SHA-256 digest
// (64 hex characters, optionally "sha256:"-prefixed). `cosign sign-blob`
// signs the SHA-256 of the bytes, so a file's signature can be checked
// against the digest the registry verified on upload, without reading the
// file again.
func (k *Keyring) IdentifyDigest(sha256Digest string, sigBase64 string) (keyID string, err error) {
	hexDigest, err := parseSHA256(sha256Digest)
	if err != nil {
		return "", err
	}
	digest, err := hex.DecodeString(hexDigest)
	if err != nil {
		return "", err
	}
	raw, err := decodeSignature(sigBase64)
	if err != nil {
		return "", &VerificationError{KeyIDs: k.KeyIDs(), Err: err}
	}
	last := errors.New("keyring is empty")
	for _, v := range k.verifiers {
		err := v.v.VerifySignature(bytes.NewReader(raw), nil, options.WithDigest(digest), options.WithCryptoSignerOpts(crypto.SHA256))
		if err != nil {
			last = err
			continue
		}
		return v.keyID, nil
	}
	return "", &VerificationError{KeyIDs: k.KeyIDs(), Err: last}
}
