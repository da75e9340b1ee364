package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fixture made by the cosign CLI; see testdata/cosign-cli/README.md.
const (
	fixtureDir      = "testdata/cosign-cli"
	fixturePassword = "stagegate-test"
	// fixtureKeyID is `openssl pkey -pubin -in ci.pub -outform DER | sha256sum`.
	fixtureKeyID         = "sha256:47c5a1099a99781c2381b511a4a33a1af607a75808ec1e96ef32eb06434a6c09"
	fixturePredicateType = "https://stagegate.dev/test/v1"
)

// testManifest stands in for an OCI manifest: the exact bytes are what is
// signed.
var testManifest = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`)

// newKeyPair generates a key pair and loads its signer.
func newKeyPair(t testing.TB, password string) (*Signer, []byte, []byte) {
	t.Helper()
	priv, pub, err := GenerateKeyPair([]byte(password))
	if err != nil {
		t.Fatalf("GenerateKeyPair: %v", err)
	}
	s, err := LoadSigner(priv, []byte(password))
	if err != nil {
		t.Fatalf("LoadSigner: %v", err)
	}
	return s, priv, pub
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// requireVerificationError fails unless err is a *VerificationError naming
// wantKeyIDs.
func requireVerificationError(t *testing.T, err error, wantKeyIDs []string) {
	t.Helper()
	var ve *VerificationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v (%T), want *VerificationError", err, err)
	}
	if diff := cmp.Diff(wantKeyIDs, ve.KeyIDs); diff != "" {
		t.Errorf("VerificationError.KeyIDs (-want +got):\n%s", diff)
	}
	if ve.Err == nil || ve.Error() == "" {
		t.Errorf("VerificationError has no reason: %#v", ve)
	}
}

func TestGenerateKeyPair(t *testing.T) {
	s, priv, pub := newKeyPair(t, "pw")

	block, _ := pem.Decode(priv)
	if block == nil || block.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" {
		t.Fatalf("private key PEM type = %v, want ENCRYPTED SIGSTORE PRIVATE KEY", block)
	}
	id, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
		t.Errorf("KeyID = %q, want sha256:<64 hex>", id)
	}
	if s.KeyID() != id || s.Verifier().KeyID() != id {
		t.Errorf("ids differ: KeyID(pub)=%s signer=%s verifier=%s", id, s.KeyID(), s.Verifier().KeyID())
	}
	if diff := cmp.Diff(string(pub), string(s.PublicKeyPEM())); diff != "" {
		t.Errorf("PublicKeyPEM differs from generated .pub (-want +got):\n%s", diff)
	}

	_, _, err = GenerateKeyPair(nil)
	if !errors.Is(err, ErrBadPassword) {
		t.Errorf("GenerateKeyPair(nil) err = %v, want ErrBadPassword", err)
	}
}

func TestKeyIDIsStable(t *testing.T) {
	pub := readFixture(t, "ci.pub")
	for _, tc := range []struct {
		name string
		pem  []byte
	}{
		{"as written by cosign", pub},
		{"surrounding white space", append(append([]byte("\n\n"), pub...), " \n"...)},
		{"reloaded", func() []byte {
			v, err := LoadVerifier(pub)
			if err != nil {
				t.Fatal(err)
			}
			return v.PublicKeyPEM()
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KeyID(tc.pem)
			if err != nil {
				t.Fatal(err)
			}
			if got != fixtureKeyID {
				t.Errorf("KeyID = %s, want %s", got, fixtureKeyID)
			}
		})
	}
	if _, err := KeyID([]byte("not a key")); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("KeyID(garbage) err = %v, want ErrMalformedKey", err)
	}
}

func TestLoadSignerErrors(t *testing.T) {
	_, priv, pub := newKeyPair(t, "right")
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("{not json")})

	for _, tc := range []struct {
		name     string
		key      []byte
		password []byte
		want     error
	}{
		{"wrong password", priv, []byte("wrong"), ErrBadPassword},
		{"missing password", priv, nil, ErrBadPassword},
		{"empty password", priv, []byte{}, ErrBadPassword},
		{"not PEM", []byte("hello"), []byte("right"), ErrMalformedKey},
		{"public key instead of private", pub, []byte("right"), ErrMalformedKey},
		{"corrupt ciphertext", corrupt, []byte("right"), ErrMalformedKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSigner(tc.key, tc.password)
			if err == nil {
				t.Fatalf("LoadSigner succeeded (%v), want error", s.KeyID())
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Errorf("err = %T, want *KeyError", err)
			}
		})
	}

	t.Run("file errors name the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "env.key")
		if err := os.WriteFile(path, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSignerFile(path, []byte("wrong"))
		if !errors.Is(err, ErrBadPassword) || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want ErrBadPassword naming %s", err, path)
		}
		_, err = LoadSignerFile(path+".missing", []byte("right"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want not-exist", err)
		}
	})
}

func TestVerifyBlob(t *testing.T) {
	s, _, _ := newKeyPair(t, "pw")
	other, _, _ := newKeyPair(t, "pw")
	sig, err := s.SignBlob(testManifest)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatalf("SignBlob output is not base64: %v", err)
	}
	otherSig, err := other.SignBlob(testManifest)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(testManifest, []byte(`"layers":[]`), []byte(`"layers":[{}]`), 1)

	for _, tc := range []struct {
		name    string
		payload []byte
		sig     string
		wantOK  bool
	}{
		{"valid", testManifest, sig, true},
		{"valid with trailing newline as cosign prints it", testManifest, sig + "\n", true},
		{"tampered payload", tampered, sig, false},
		{"signed by another key", testManifest, otherSig, false},
		{"truncated signature", testManifest, base64.StdEncoding.EncodeToString(raw[:len(raw)-4]), false},
		{"truncated base64", testManifest, sig[:len(sig)/2], false},
		{"flipped byte", testManifest, base64.StdEncoding.EncodeToString(append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^1)), false},
		{"empty", testManifest, "", false},
		{"not base64", testManifest, "!!!", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Verifier().VerifyBlob(tc.payload, tc.sig)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("VerifyBlob: %v", err)
				}
				return
			}
			requireVerificationError(t, err, []string{s.KeyID()})
		})
	}
}

func TestLoadVerifierErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		pem  []byte
	}{
		{"empty", nil},
		{"garbage", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
		{"private key", readFixture(t, "ci.key")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadVerifier(tc.pem)
			var ke *KeyError
			if !errors.As(err, &ke) || !errors.Is(err, ErrMalformedKey) {
				t.Errorf("err = %v, want *KeyError wrapping ErrMalformedKey", err)
			}
		})
	}
}

func TestKeyringRotation(t *testing.T) {
	oldKey, _, oldPub := newKeyPair(t, "pw")
	newKey, _, newPub := newKeyPair(t, "pw")
	stranger, _, _ := newKeyPair(t, "pw")

	ring, err := NewKeyring(oldPub, newPub, newPub)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{oldKey.KeyID(), newKey.KeyID()}
	if diff := cmp.Diff(wantIDs, ring.KeyIDs()); diff != "" {
		t.Fatalf("KeyIDs (duplicates dropped, order kept) (-want +got):\n%s", diff)
	}

	sign := func(s *Signer) string {
		sig, err := s.SignBlob(testManifest)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	for _, tc := range []struct {
		name   string
		ring   *Keyring
		sig    string
		wantID string // empty: want *VerificationError
	}{
		{"signed by retired key", ring, sign(oldKey), oldKey.KeyID()},
		{"signed by newest key", ring, sign(newKey), newKey.KeyID()},
		{"signed by unknown key", ring, sign(stranger), ""},
		{"garbled signature", ring, "AAAA", ""},
		{"empty keyring", &Keyring{}, sign(newKey), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.ring.Identify(testManifest, tc.sig)
			if tc.wantID == "" {
				requireVerificationError(t, err, tc.ring.KeyIDs())
				if verr := tc.ring.VerifyBlob(testManifest, tc.sig); verr == nil {
					t.Error("VerifyBlob succeeded where Identify failed")
				}
				return
			}
			if err != nil {
				t.Fatalf("Identify: %v", err)
			}
			if id != tc.wantID {
				t.Errorf("Identify = %s, want %s", id, tc.wantID)
			}
		})
	}

	if _, err := NewKeyring(oldPub, []byte("junk")); !errors.Is(err, ErrMalformedKey) || !strings.Contains(err.Error(), "public key 1") {
		t.Errorf("NewKeyring with junk: err = %v, want ErrMalformedKey naming public key 1", err)
	}
}

func TestEnsureKeyPair(t *testing.T) {
	password := []byte("pw")

	t.Run("creates then reuses", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "keys")
		priv, pub, created, err := EnsureKeyPair(dir, "dev", password)
		if err != nil || !created {
			t.Fatalf("EnsureKeyPair = %v, %v; want created", created, err)
		}
		if diff := cmp.Diff([]string{filepath.Join(dir, "dev.key"), filepath.Join(dir, "dev.pub")}, []string{priv, pub}); diff != "" {
			t.Errorf("paths (-want +got):\n%s", diff)
		}
		for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, priv: 0o600, pub: 0o644} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("mode of %s = %v, want %v", path, fi.Mode(), want)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 2 {
			t.Errorf("dir holds %d entries, want 2 (no temp files left)", len(entries))
		}
		before, _ := os.ReadFile(priv)

		_, _, created, err = EnsureKeyPair(dir, "dev", password)
		if err != nil || created {
			t.Fatalf("second EnsureKeyPair = %v, %v; want existing pair", created, err)
		}
		after, _ := os.ReadFile(priv)
		if !bytes.Equal(before, after) {
			t.Error("existing private key was replaced")
		}
		s, err := LoadSignerFile(priv, password)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM, _ := os.ReadFile(pub)
		if id, _ := KeyID(pubPEM); id != s.KeyID() {
			t.Errorf(".pub id %s does not match .key id %s", id, s.KeyID())
		}
	})

	t.Run("restores missing public key", func(t *testing.T) {
		dir := t.TempDir()
		_, pub, _, err := EnsureKeyPair(dir, "staging", password)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(pub)
		if err := os.Remove(pub); err != nil {
			t.Fatal(err)
		}
		if _, _, created, err := EnsureKeyPair(dir, "staging", password); err != nil || created {
			t.Fatalf("EnsureKeyPair = %v, %v", created, err)
		}
		got, _ := os.ReadFile(pub)
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("restored .pub (-want +got):\n%s", diff)
		}
		os.Remove(pub)
		if _, _, _, err := EnsureKeyPair(dir, "staging", []byte("wrong")); !errors.Is(err, ErrBadPassword) {
			t.Errorf("restoring with wrong password: err = %v, want ErrBadPassword", err)
		}
	})

	for _, tc := range []struct {
		name     string
		setup    func(dir string)
		basename string
		password []byte
		want     error
	}{
		{"public key without private key", func(dir string) {
			os.WriteFile(filepath.Join(dir, "prod.pub"), readFixture(t, "ci.pub"), 0o644)
		}, "prod", password, nil},
		{"empty password", func(string) {}, "prod", nil, ErrBadPassword},
		{"basename with slash", func(string) {}, "../prod", password, nil},
		{"empty basename", func(string) {}, "", password, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			_, _, _, err := EnsureKeyPair(dir, tc.basename, tc.password)
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v, want *KeyError", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAttestation(t *testing.T) {
	s, _, _ := newKeyPair(t, "pw")
	other, _, _ := newKeyPair(t, "pw")
	const predType = "https://stagegate.dev/gates/v1"
	predicate := json.RawMessage(`{"environment":"prod","checks":[{"name":"junit","status":"Passed"}]}`)
	digest := "sha256:" + sha256Hex(testManifest)

	env, err := s.AttestBlob("fraud-detector@1.4.0", digest, predType, predicate)
	if err != nil {
		t.Fatal(err)
	}
	otherEnv, err := other.AttestBlob("fraud-detector@1.4.0", digest, predType, predicate)
	if err != nil {
		t.Fatal(err)
	}
	tamperedEnv := func() []byte {
		var m map[string]any
		if err := json.Unmarshal(env, &m); err != nil {
			t.Fatal(err)
		}
		p, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
		p = bytes.Replace(p, []byte("Passed"), []byte("Failed"), 1)
		m["payload"] = base64.StdEncoding.EncodeToString(p)
		b, _ := json.Marshal(m)
		return b
	}()

	for _, tc := range []struct {
		name     string
		envelope []byte
		digest   string
		predType string
		wantOK   bool
	}{
		{"valid, digest with prefix", env, digest, predType, true},
		{"valid, bare hex digest", env, sha256Hex(testManifest), predType, true},
		{"other subject", env, sha256Hex([]byte("other")), predType, false},
		{"other predicate type", env, digest, "https://example.com/other", false},
		{"tampered statement", tamperedEnv, digest, predType, false},
		{"signed by another key", otherEnv, digest, predType, false},
		{"not an envelope", []byte("garbage"), digest, predType, false},
		{"truncated envelope", env[:len(env)/2], digest, predType, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Verifier().VerifyAttestation(tc.envelope, tc.digest, tc.predType)
			if !tc.wantOK {
				requireVerificationError(t, err, []string{s.KeyID()})
				return
			}
			if err != nil {
				t.Fatalf("VerifyAttestation: %v", err)
			}
			if diff := cmp.Diff(string(predicate), string(got)); diff != "" {
				t.Errorf("predicate (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("keyring", func(t *testing.T) {
		ring, err := NewKeyring(other.PublicKeyPEM(), s.PublicKeyPEM())
		if err != nil {
			t.Fatal(err)
		}
		_, id, err := ring.VerifyAttestation(env, digest, predType)
		if err != nil || id != s.KeyID() {
			t.Errorf("VerifyAttestation = %s, %v; want %s", id, err, s.KeyID())
		}
		_, _, err = ring.VerifyAttestation(tamperedEnv, digest, predType)
		requireVerificationError(t, err, ring.KeyIDs())
	})

	for _, tc := range []struct {
		name, digest, predType string
		predicate              json.RawMessage
	}{
		{"short digest", "abc", predType, predicate},
		{"non-hex digest", strings.Repeat("z", 64), predType, predicate},
		{"empty predicate type", digest, "", predicate},
		{"predicate not an object", digest, predType, json.RawMessage(`[1]`)},
		{"predicate not JSON", digest, predType, json.RawMessage(`{`)},
	} {
		t.Run("AttestBlob rejects "+tc.name, func(t *testing.T) {
			if _, err := s.AttestBlob("x", tc.digest, tc.predType, tc.predicate); err == nil {
				t.Error("AttestBlob succeeded, want error")
			}
		})
	}
}

// TestCosignFixtures checks files the cosign CLI wrote, so the interop
// contract is covered even where the CLI is not installed.
func TestCosignFixtures(t *testing.T) {
	manifest := readFixture(t, "manifest.json")
	pub := readFixture(t, "ci.pub")

	v, err := LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyID() != fixtureKeyID {
		t.Errorf("KeyID = %s, want %s", v.KeyID(), fixtureKeyID)
	}
	if err := v.VerifyBlob(manifest, string(readFixture(t, "manifest.json.sig"))); err != nil {
		t.Errorf("VerifyBlob(cosign sign-blob output): %v", err)
	}
	pred, err := v.VerifyAttestation(readFixture(t, "manifest.json.att"), sha256Hex(manifest), fixturePredicateType)
	if err != nil {
		t.Fatalf("VerifyAttestation(cosign attest-blob output): %v", err)
	}
	if diff := cmp.Diff(string(readFixture(t, "predicate.json")), string(pred)); diff != "" {
		t.Errorf("predicate (-want +got):\n%s", diff)
	}

	s, err := LoadSignerFile(filepath.Join(fixtureDir, "ci.key"), []byte(fixturePassword))
	if err != nil {
		t.Fatalf("LoadSignerFile(cosign generate-key-pair output): %v", err)
	}
	if s.KeyID() != fixtureKeyID {
		t.Errorf("signer KeyID = %s, want %s", s.KeyID(), fixtureKeyID)
	}
	if _, err := LoadSignerFile(filepath.Join(fixtureDir, "ci.key"), []byte("wrong")); !errors.Is(err, ErrBadPassword) {
		t.Errorf("wrong password: err = %v, want ErrBadPassword", err)
	}
}

// FuzzVerifyBlob feeds untrusted signature text and payloads to VerifyBlob
// and Identify: they must never panic, never accept anything but the one
// real signature, and always fail with *VerificationError.
func FuzzVerifyBlob(f *testing.F) {
	v, err := LoadVerifier(readFixture(f, "ci.pub"))
	if err != nil {
		f.Fatal(err)
	}
	ring, err := NewKeyring(readFixture(f, "ci.pub"))
	if err != nil {
		f.Fatal(err)
	}
	manifest := readFixture(f, "manifest.json")
	goodSig := string(readFixture(f, "manifest.json.sig"))
	f.Add(manifest, goodSig)
	f.Add(manifest, goodSig[:10])
	f.Add(manifest, "")
	f.Add(manifest, "====")
	f.Add([]byte{}, "MEUCIQ==")
	f.Add(manifest, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x30}, 80)))
	f.Fuzz(func(t *testing.T, payload []byte, sig string) {
		err := v.VerifyBlob(payload, sig)
		_, rerr := ring.Identify(payload, sig)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Verifier and Keyring disagree: %v vs %v", err, rerr)
		}
		if err == nil {
			if !bytes.Equal(payload, manifest) {
				t.Fatalf("signature %q accepted for payload %q", sig, payload)
			}
			return
		}
		var ve *VerificationError
		if !errors.As(err, &ve) || !errors.As(rerr, &ve) {
			t.Fatalf("err = %v / %v, want *VerificationError", err, rerr)
		}
	})
}

// FuzzVerifyAttestation feeds untrusted envelopes to VerifyAttestation.
func FuzzVerifyAttestation(f *testing.F) {
	v, err := LoadVerifier(readFixture(f, "ci.pub"))
	if err != nil {
		f.Fatal(err)
	}
	digest := sha256Hex(readFixture(f, "manifest.json"))
	f.Add(readFixture(f, "manifest.json.att"))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{"signatures":[{"sig":"!!"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, envelope []byte) {
		_, err := v.VerifyAttestation(envelope, digest, fixturePredicateType)
		if err == nil {
			return
		}
		var ve *VerificationError
		if !errors.As(err, &ve) {
			t.Fatalf("err = %v, want *VerificationError", err)
		}
	})
}

func TestKeyringIdentifyDigest(t *testing.T) {
	signer, _, pub := newKeyPair(t, "pw-digest")
	_, _, otherPub := newKeyPair(t, "pw-other")
	payload := []byte("model weights")
	sig, err := signer.SignBlob(payload)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := NewKeyring(otherPub, pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{sha256Hex(payload), "sha256:" + sha256Hex(payload)} {
		id, err := ring.IdentifyDigest(d, sig)
		if err != nil || id != signer.KeyID() {
			t.Fatalf("IdentifyDigest(%s) = %q, %v; want %s", d, id, err, signer.KeyID())
		}
	}
	_, err = ring.IdentifyDigest(sha256Hex([]byte("other bytes")), sig)
	requireVerificationError(t, err, ring.KeyIDs())
	if _, err := ring.IdentifyDigest("sha256:abc", sig); err == nil {
		t.Fatal("short digest accepted")
	}
}
