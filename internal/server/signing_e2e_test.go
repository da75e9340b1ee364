package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/registry"
)

// cosignCLI finds the real cosign binary; scripts/test.sh always provides it.
func cosignCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STAGEGATE_TEST_COSIGN"); p != "" {
		return p
	}
	p, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign CLI not found: set STAGEGATE_TEST_COSIGN or run scripts/test.sh")
	}
	return p
}

func runCosign(t *testing.T, bin, dir, password string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+password, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, ".sigstore"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSignaturesVerifyWithCosign: what stagegate signs, the cosign CLI
// verifies; what the CI signs with cosign, stagegate trusts.
func TestSignaturesVerifyWithCosign(t *testing.T) {
	bin := cosignCLI(t)
	work := t.TempDir()
	if out, err := runCosign(t, bin, work, "ci-pass", "generate-key-pair", "--output-key-prefix", "ci"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	if out, err := runCosign(t, bin, work, "other-pass", "generate-key-pair", "--output-key-prefix", "rogue"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			s := newStack(t, kind, func(c *config.Config) {
				c.Environments[0].Signing.TrustedCIKeys = []string{filepath.Join(work, "ci.pub")}
			})
			ctx := context.Background()
			pub := s.client(s.key("dev", auth.RolePublisher))
			files := map[string][]byte{"agent.yaml": []byte("model: gpt\nsystem_prompt: be brief\n"), "tools/search.json": []byte(`{"name":"search"}`)}
			src := writeTree(t, files)
			sign := func(key, password, path string) registry.CISignature {
				sigFile := filepath.Join(work, strings.ReplaceAll(path, "/", "_")+"."+key+".sig")
				if out, err := runCosign(t, bin, work, password, "sign-blob", "--yes", "--key", filepath.Join(work, key+".key"),
					"--tlog-upload=false", "--output-signature", sigFile, filepath.Join(src, filepath.FromSlash(path))); err != nil {
					t.Fatalf("cosign sign-blob: %v\n%s", err, out)
				}
				sig, _ := os.ReadFile(sigFile)
				return registry.CISignature{Subject: path, Signature: string(sig)}
			}

			cases := []struct {
				version string
				sigs    []registry.CISignature
				want    registry.CITrust
			}{
				{"1.0.0", []registry.CISignature{sign("ci", "ci-pass", "agent.yaml"), sign("ci", "ci-pass", "tools/search.json")}, registry.CITrusted},
				{"1.0.1", []registry.CISignature{sign("ci", "ci-pass", "agent.yaml")}, registry.CIUntrusted}, // one file unsigned
				{"1.0.2", []registry.CISignature{sign("rogue", "other-pass", "agent.yaml"), sign("rogue", "other-pass", "tools/search.json")}, registry.CIUntrusted},
				{"1.0.3", nil, registry.CIAbsent},
			}
			for _, c := range cases {
				local, err := client.CollectFiles([]string{src})
				if err != nil {
					t.Fatal(err)
				}
				res, err := pub.Push(ctx, "dev", "support-agent", c.version, local, client.PushOptions{Kind: "agent-config", CISignatures: c.sigs})
				if err != nil {
					t.Fatalf("%s: publish: %v", c.version, err)
				}
				if res.Version.CISignature != c.want {
					t.Fatalf("%s: CI signature %q, want %q", c.version, res.Version.CISignature, c.want)
				}
			}

			// stagegate signs -> cosign verifies, offline, with the key the server publishes.
			rec, err := pub.GetVersion(ctx, "dev", "support-agent", "1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if _, err := pub.PullSignature(ctx, "dev", rec, out); err != nil {
				t.Fatalf("pull signature: %v", err)
			}
			pem, _, err := pub.PublicKey(ctx, "dev")
			if err != nil {
				t.Fatal(err)
			}
			pubFile := filepath.Join(out, "dev.pub")
			if err := os.WriteFile(pubFile, pem, 0o644); err != nil {
				t.Fatal(err)
			}
			verify := func() (string, error) {
				return runCosign(t, bin, out, "", "verify-blob", "--key", pubFile, "--signature", filepath.Join(out, "manifest.json.sig"),
					"--insecure-ignore-tlog=true", filepath.Join(out, "manifest.json"))
			}
			if msg, err := verify(); err != nil || !strings.Contains(msg, "Verified OK") {
				t.Fatalf("cosign verify-blob of stagegate's signature failed: %v\n%s", err, msg)
			}
			manifest, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
			if err := os.WriteFile(filepath.Join(out, "manifest.json"), append(manifest, ' '), 0o644); err != nil {
				t.Fatal(err)
			}
			if msg, err := verify(); err == nil {
				t.Fatalf("cosign verified a tampered manifest:\n%s", msg)
			}
			// Another environment's key does not verify dev's signature.
			prodPEM, _, _ := s.client(s.key("prod", auth.RoleReader)).PublicKey(ctx, "prod")
			if err := os.WriteFile(pubFile, prodPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, "manifest.json"), manifest, 0o644); err != nil {
				t.Fatal(err)
			}
			if msg, err := verify(); err == nil {
				t.Fatalf("cosign verified dev's signature with prod's key:\n%s", msg)
			}
		})
	}
}

// TestKeyPasswordCheckedAtStart: a wrong or missing password stops start-up
// with a message naming the variable, never a failing request later.
func TestKeyPasswordCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	priv, _, _, err := signing.EnsureKeyPair(dir, "prod", []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ password, want string }{
		{"wrong", "wrong or missing password (set $PROD_KEY_PASSWORD)"},
		{"", "password of signing key " + priv + " is missing: set $PROD_KEY_PASSWORD"},
	} {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.Environments[2].Signing = config.Signing{Key: priv, PasswordEnv: "PROD_KEY_PASSWORD", Password: tc.password}
		_, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "environment prod") {
			t.Errorf("password %q: err = %v, want it to contain %q", tc.password, err, tc.want)
		}
	}
}
