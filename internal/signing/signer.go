package signing

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/common"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// Signer signs with one environment's private key. It is safe for
// concurrent use.
type Signer struct {
	sv        signature.SignerVerifier
	publicPEM []byte
	keyID     string
	verifier  *Verifier
}

// LoadSigner decrypts a cosign private key (as written by GenerateKeyPair or
// `cosign generate-key-pair`) with password.
//
// It fails with a *KeyError that wraps ErrBadPassword when password is empty
// or wrong, and one that wraps ErrMalformedKey when privatePEM is not an
// encrypted cosign key, so a misconfiguration stops start-up with a message
// that says which of the two to fix.
func LoadSigner(privatePEM, password []byte) (*Signer, error) {
	return loadSigner("private key", privatePEM, password)
}

// LoadSignerFile is LoadSigner for a key file; errors name the path.
func LoadSignerFile(path string, password []byte) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &KeyError{Source: path, Err: err}
	}
	return loadSigner(path, b, password)
}

func loadSigner(source string, privatePEM, password []byte) (*Signer, error) {
	block, _ := pem.Decode(privatePEM)
	if block == nil {
		return nil, &KeyError{Source: source, Err: fmt.Errorf("%w: no PEM block found", ErrMalformedKey)}
	}
	if block.Type != cosign.SigstorePrivateKeyPemType && block.Type != cosign.CosignPrivateKeyPemType {
		return nil, &KeyError{Source: source, Err: fmt.Errorf("%w: PEM type %q, want %q or %q", ErrMalformedKey, block.Type, cosign.SigstorePrivateKeyPemType, cosign.CosignPrivateKeyPemType)}
	}
	if len(password) == 0 {
		return nil, &KeyError{Source: source, Err: fmt.Errorf("%w: no password given for encrypted key", ErrBadPassword)}
	}
	// An empty option list is what `cosign sign-blob --tlog-upload=false`
	// uses: plain (not pre-hashed) Ed25519 for Ed25519 keys. It changes
	// nothing for the ECDSA keys GenerateKeyPair makes.
	sv, err := cosign.LoadPrivateKey(privatePEM, password, &[]signature.LoadOption{})
	if err != nil {
		// cosign reports a failed secretbox open (wrong password, or a
		// corrupted ciphertext, which cannot be told apart) only as text.
		if strings.Contains(err.Error(), "decryption failed") {
			return nil, &KeyError{Source: source, Err: fmt.Errorf("%w: cannot decrypt the key (or the key file is corrupted)", ErrBadPassword)}
		}
		return nil, &KeyError{Source: source, Err: fmt.Errorf("%w: %v", ErrMalformedKey, err)}
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, &KeyError{Source: source, Err: err}
	}
	publicPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, &KeyError{Source: source, Err: err}
	}
	v, err := LoadVerifier(publicPEM)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, publicPEM: publicPEM, keyID: v.keyID, verifier: v}, nil
}

// SignBlob signs payload and returns what `cosign sign-blob --key` prints
// and writes with --output-signature: the standard base64 of the signature,
// without a trailing newline. Write the payload's exact bytes next to it;
// `cosign verify-blob` checks those bytes, not a re-encoding.
func (s *Signer) SignBlob(payload []byte) (string, error) {
	sig, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("signing: sign blob with key %s: %w", s.keyID, err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// KeyID returns the id of the signer's public key (see KeyID), recorded with
// every signature so a reader knows which of an environment's keys to use.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKeyPEM returns the signer's public key in the PEM form of a cosign
// .pub file, for publishing alongside signatures.
func (s *Signer) PublicKeyPEM() []byte { return bytes.Clone(s.publicPEM) }

// Verifier returns a Verifier for the signer's own public key, so a service
// can check what it signed without reloading the .pub file.
func (s *Signer) Verifier() *Verifier { return s.verifier }

// AttestBlob signs an in-toto statement about one subject and returns the
// DSSE envelope JSON, byte-compatible with what `cosign attest-blob --key
// --type <predicateType>` writes with --output-signature. Verify it with
// `cosign verify-blob-attestation --key env.pub --signature <envelope>
// --type <predicateType> --insecure-ignore-tlog=true <subject-file>`, which
// also checks that the file's SHA-256 is the subject's.
//
// subjectDigest is the subject's SHA-256 as 64 hex characters, optionally
// prefixed by "sha256:" (a manifest digest can be passed as is).
// predicateType should be a URI that names the predicate's schema, and
// predicate must be a JSON object; both are embedded unchanged apart from
// JSON compaction. The statement is in-toto v0.1, as cosign attest-blob
// writes.
func (s *Signer) AttestBlob(subjectName, subjectDigest, predicateType string, predicate json.RawMessage) ([]byte, error) {
	hexDigest, err := parseSHA256(subjectDigest)
	if err != nil {
		return nil, err
	}
	if predicateType == "" {
		return nil, errors.New("signing: attest: predicate type is empty")
	}
	if !isJSONObject(predicate) {
		return nil, errors.New("signing: attest: predicate is not a JSON object")
	}
	st := in_toto.Statement{
		StatementHeader: in_toto.StatementHeader{
			Type:          in_toto.StatementInTotoV01,
			PredicateType: predicateType,
			Subject: []in_toto.Subject{{
				Name:   subjectName,
				Digest: common.DigestSet{"sha256": hexDigest},
			}},
		},
		Predicate: predicate,
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("signing: attest: encode statement: %w", err)
	}
	env, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("signing: attest with key %s: %w", s.keyID, err)
	}
	return env, nil
}

// parseSHA256 accepts "<64 hex>" or "sha256:<64 hex>" and returns the
// lowercase hex.
func parseSHA256(d string) (string, error) {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) != 2*32 {
		return "", fmt.Errorf("signing: subject digest %q is not a SHA-256 (64 hex characters)", d)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("signing: subject digest %q is not a SHA-256 (64 hex characters)", d)
	}
	return strings.ToLower(h), nil
}

// isJSONObject reports whether b is valid JSON whose top level is an object.
func isJSONObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}
