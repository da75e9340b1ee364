package signing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cosignCLI runs the real cosign CLI fully offline. The commands it builds
// are the ones documented in doc.go.
type cosignCLI struct {
	t    *testing.T
	path string
	home string
}

// findCosign locates the CLI through STAGEGATE_TEST_COSIGN or PATH and skips
// the test when there is none.
func findCosign(t *testing.T) *cosignCLI {
	t.Helper()
	path := os.Getenv("STAGEGATE_TEST_COSIGN")
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("STAGEGATE_TEST_COSIGN=%s: %v", path, err)
		}
	} else {
		var err error
		path, err = exec.LookPath("cosign")
		if err != nil {
			t.Skip("cosign CLI not found: set STAGEGATE_TEST_COSIGN=/path/to/cosign or put cosign on PATH " +
				"(go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5) to run the interop tests")
		}
	}
	return &cosignCLI{t: t, path: path, home: t.TempDir()}
}

// run executes cosign with args; password, when not empty, is passed as
// COSIGN_PASSWORD. It returns combined output and the exit error.
func (c *cosignCLI) run(password string, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.home,
		"TUF_ROOT=" + filepath.Join(c.home, "tuf"),
	}
	if password != "" {
		cmd.Env = append(cmd.Env, "COSIGN_PASSWORD="+password)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("cosign %s: timed out (is it trying the network?)\n%s", strings.Join(args, " "), out.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		c.t.Fatalf("cosign %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), err
}

// mustRun is run that fails the test on a non-zero exit.
func (c *cosignCLI) mustRun(password string, args ...string) string {
	c.t.Helper()
	out, err := c.run(password, args...)
	if err != nil {
		c.t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cosignCLI) verifyBlob(pub, sig, blob string) (string, error) {
	return c.run("", "verify-blob", "--key", pub, "--signature", sig, "--insecure-ignore-tlog=true", blob)
}

func (c *cosignCLI) signBlob(password, key, sigOut, blob string) {
	c.mustRun(password, "sign-blob", "--yes", "--key", key, "--tlog-upload=false", "--output-signature", sigOut, blob)
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCosignVerifiesStagegateSignatures: stagegate signs, the cosign CLI
// verifies with no stagegate code; every rejection by cosign is also a
// *VerificationError from VerifyBlob.
func TestCosignVerifiesStagegateSignatures(t *testing.T) {
	cli := findCosign(t)
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	privPath, pubPath, _, err := EnsureKeyPair(keysDir, "prod", []byte("prod-pw"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSignerFile(privPath, []byte("prod-pw"))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, err := GenerateKeyPair([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}

	manifest := writeFile(t, filepath.Join(dir, "manifest.json"), testManifest, 0o644)
	sig, err := s.SignBlob(testManifest)
	if err != nil {
		t.Fatal(err)
	}
	sigPath := writeFile(t, manifest+".sig", []byte(sig), 0o644)
	raw, _ := base64.StdEncoding.DecodeString(sig)

	tampered := bytes.Replace(testManifest, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
	for _, tc := range []struct {
		name    string
		payload []byte
		pub     []byte
		sig     string
		wantOK  bool
	}{
		{"valid", testManifest, nil, sig, true},
		{"tampered manifest", tampered, nil, sig, false},
		{"wrong key", testManifest, otherPub, sig, false},
		{"truncated signature", testManifest, nil, base64.StdEncoding.EncodeToString(raw[:len(raw)-8]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseDir := t.TempDir()
			blob, sigFile, pub := manifest, sigPath, pubPath
			if !bytes.Equal(tc.payload, testManifest) {
				blob = writeFile(t, filepath.Join(caseDir, "manifest.json"), tc.payload, 0o644)
			}
			if tc.sig != sig {
				sigFile = writeFile(t, filepath.Join(caseDir, "manifest.json.sig"), []byte(tc.sig), 0o644)
			}
			pubPEM, _ := os.ReadFile(pubPath)
			if tc.pub != nil {
				pubPEM = tc.pub
				pub = writeFile(t, filepath.Join(caseDir, "other.pub"), tc.pub, 0o644)
			}

			out, cliErr := cli.verifyBlob(pub, sigFile, blob)
			v, err := LoadVerifier(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			ourErr := v.VerifyBlob(tc.payload, tc.sig)

			if tc.wantOK {
				if cliErr != nil || !strings.Contains(out, "Verified OK") {
					t.Fatalf("cosign verify-blob rejected a stagegate signature: %v\n%s", cliErr, out)
				}
				if ourErr != nil {
					t.Fatalf("VerifyBlob: %v", ourErr)
				}
				return
			}
			if cliErr == nil {
				t.Errorf("cosign verify-blob accepted it:\n%s", out)
			}
			requireVerificationError(t, ourErr, []string{v.KeyID()})
			t.Logf("cosign: %s\nstagegate: %v", lastLine(out), ourErr)
		})
	}
}

// TestStagegateVerifiesCosignSignatures: cosign makes the key and signs,
// stagegate loads the key and verifies.
func TestStagegateVerifiesCosignSignatures(t *testing.T) {
	cli := findCosign(t)
	dir := t.TempDir()
	const password = "ci-password"
	prefix := filepath.Join(dir, "ci")
	cli.mustRun(password, "generate-key-pair", "--output-key-prefix", prefix)
	manifest := writeFile(t, filepath.Join(dir, "manifest.json"), testManifest, 0o644)
	cli.signBlob(password, prefix+".key", manifest+".sig", manifest)
	stdoutSig := cli.mustRun(password, "sign-blob", "--yes", "--key", prefix+".key", "--tlog-upload=false", manifest)

	pubPEM, _ := os.ReadFile(prefix + ".pub")
	v, err := LoadVerifier(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	fileSig, _ := os.ReadFile(manifest + ".sig")
	// Printed to stdout, the signature is the last line; log lines precede it.
	lines := strings.Split(strings.TrimSpace(stdoutSig), "\n")
	printed := lines[len(lines)-1] + "\n"

	for _, tc := range []struct {
		name    string
		payload []byte
		sig     string
		wantOK  bool
	}{
		{"--output-signature file", testManifest, string(fileSig), true},
		{"printed to stdout", testManifest, printed, true},
		{"tampered manifest", append(bytes.Clone(testManifest), ' '), string(fileSig), false},
		{"truncated signature", testManifest, string(fileSig[:len(fileSig)-6]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.VerifyBlob(tc.payload, tc.sig)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("VerifyBlob: %v", err)
				}
				return
			}
			requireVerificationError(t, err, []string{v.KeyID()})
		})
	}

	t.Run("cosign private key loads", func(t *testing.T) {
		s, err := LoadSignerFile(prefix+".key", []byte(password))
		if err != nil {
			t.Fatalf("LoadSignerFile: %v", err)
		}
		if s.KeyID() != v.KeyID() {
			t.Errorf("KeyID of .key %s != .pub %s", s.KeyID(), v.KeyID())
		}
		sig, err := s.SignBlob(testManifest)
		if err != nil {
			t.Fatal(err)
		}
		sigPath := writeFile(t, filepath.Join(t.TempDir(), "m.sig"), []byte(sig), 0o644)
		if out, err := cli.verifyBlob(prefix+".pub", sigPath, manifest); err != nil {
			t.Errorf("cosign verify-blob of a signature made with a cosign key loaded by stagegate: %v\n%s", err, out)
		}
	})

	t.Run("wrong or missing password", func(t *testing.T) {
		for _, pw := range []string{"wrong", ""} {
			_, err := LoadSignerFile(prefix+".key", []byte(pw))
			if !errors.Is(err, ErrBadPassword) {
				t.Errorf("password %q: err = %v, want ErrBadPassword", pw, err)
			}
		}
	})
}

// TestCosignSignsWithStagegateKey: a key made by GenerateKeyPair works with
// `cosign sign-blob --key`, and both sides verify the result.
func TestCosignSignsWithStagegateKey(t *testing.T) {
	cli := findCosign(t)
	dir := t.TempDir()
	const password = "env-pw"
	privPath, pubPath, created, err := EnsureKeyPair(dir, "dev", []byte(password))
	if err != nil || !created {
		t.Fatalf("EnsureKeyPair = %v, %v", created, err)
	}
	manifest := writeFile(t, filepath.Join(dir, "manifest.json"), testManifest, 0o644)
	cli.signBlob(password, privPath, manifest+".sig", manifest)

	if out, err := cli.verifyBlob(pubPath, manifest+".sig", manifest); err != nil {
		t.Fatalf("cosign verify-blob: %v\n%s", err, out)
	}
	pubPEM, _ := os.ReadFile(pubPath)
	ring, err := NewKeyring(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(manifest + ".sig")
	if _, err := ring.Identify(testManifest, string(sig)); err != nil {
		t.Errorf("Identify: %v", err)
	}

	out, err := cli.run("wrong", "sign-blob", "--yes", "--key", privPath, "--tlog-upload=false", manifest)
	if err == nil {
		t.Errorf("cosign sign-blob with the wrong password succeeded:\n%s", out)
	}
}

// TestCosignVerifiesStagegateAttestation: AttestBlob output passes `cosign
// verify-blob-attestation`, and `cosign attest-blob` output passes
// VerifyAttestation.
func TestCosignVerifiesStagegateAttestation(t *testing.T) {
	cli := findCosign(t)
	dir := t.TempDir()
	const (
		password = "prod-pw"
		predType = "https://stagegate.dev/gates/v1"
	)
	privPath, pubPath, _, err := EnsureKeyPair(dir, "prod", []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSignerFile(privPath, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, err := GenerateKeyPair([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	otherPubPath := writeFile(t, filepath.Join(dir, "other.pub"), otherPub, 0o644)

	manifest := writeFile(t, filepath.Join(dir, "manifest.json"), testManifest, 0o644)
	tamperedManifest := writeFile(t, filepath.Join(dir, "tampered.json"), append(bytes.Clone(testManifest), '\n'), 0o644)
	predicate := json.RawMessage(`{"environment":"prod","result":"Passed","checks":[{"name":"junit","status":"Passed"}]}`)
	env, err := s.AttestBlob("fraud-detector@1.4.0", "sha256:"+sha256Hex(testManifest), predType, predicate)
	if err != nil {
		t.Fatal(err)
	}
	envPath := writeFile(t, manifest+".att", env, 0o644)

	for _, tc := range []struct {
		name           string
		pub, predType  string
		blob           string
		wantOK         bool
		wantOutputHint string
	}{
		{"valid", pubPath, predType, manifest, true, "Verified OK"},
		{"tampered manifest", pubPath, predType, tamperedManifest, false, ""},
		{"wrong key", otherPubPath, predType, manifest, false, ""},
		{"wrong predicate type", pubPath, "https://example.com/other/v1", manifest, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cli.run("", "verify-blob-attestation", "--key", tc.pub, "--signature", envPath,
				"--type", tc.predType, "--insecure-ignore-tlog=true", tc.blob)
			if tc.wantOK {
				if err != nil || !strings.Contains(out, tc.wantOutputHint) {
					t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Errorf("cosign verify-blob-attestation accepted it:\n%s", out)
			}
			t.Logf("cosign: %s", lastLine(out))
		})
	}

	t.Run("cosign attest-blob, stagegate verifies", func(t *testing.T) {
		predPath := writeFile(t, filepath.Join(dir, "predicate.json"), predicate, 0o644)
		att := filepath.Join(dir, "cosign.att")
		cli.mustRun(password, "attest-blob", "--yes", "--key", privPath, "--tlog-upload=false",
			"--type", predType, "--predicate", predPath, "--output-signature", att, manifest)
		b, _ := os.ReadFile(att)
		got, err := s.Verifier().VerifyAttestation(b, sha256Hex(testManifest), predType)
		if err != nil {
			t.Fatalf("VerifyAttestation: %v", err)
		}
		var want, gotV any
		if err := json.Unmarshal(predicate, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &gotV); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, gotV); diff != "" {
			t.Errorf("predicate (-want +got):\n%s", diff)
		}
	})
}

// lastLine returns the last non-empty line of cosign's output, usually the
// error it reports.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
