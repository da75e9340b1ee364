package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
)

// safetensorsFile builds a valid safetensors file with one F32 tensor.
func safetensorsFile(values int) []byte {
	header := []byte(`{"w":{"dtype":"F32","shape":[` + strconv.Itoa(values) + `],"data_offsets":[0,` + strconv.Itoa(values*4) + `]}}`)
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.Write(header)
	buf.Write(make([]byte, values*4))
	return buf.Bytes()
}

const passingJUnit = `<testsuite name="eval" tests="2"><testcase name="auc"/><testcase name="latency"/></testsuite>`

// prodPolicy adds a soak time to the default prod checks.
const prodPolicy = `environment: prod
checks:
  - name: promotion-order
  - name: digest-integrity
  - name: soak-time
    params: {min: 1h}
  - name: approvals
    params: {count: 1, role: approver}
  - name: safetensors
    kinds: [model]
  - name: required-evidence
    kinds: [model]
    params: {types: [junit]}
  - name: junit
    kinds: [model]
    params: {min_tests: 1}
`

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func gateFailure(t *testing.T, err error) client.GateFailure {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || ae.Code != registry.CodeGateFailed.Name {
		t.Fatalf("want 422 gate_failed, got %v", err)
	}
	var gf client.GateFailure
	if err := json.Unmarshal(ae.Details, &gf); err != nil {
		t.Fatalf("gate failure details: %v", err)
	}
	return gf
}

func failedChecks(r client.GateReport) map[string]string {
	out := map[string]string{}
	for _, c := range r.Results {
		if c.Status != "passed" && c.Status != "skipped" {
			out[c.Check] = c.Reason
		}
	}
	return out
}

func TestPromotionThroughGates(t *testing.T) {
	policyFile := filepath.Join(t.TempDir(), "prod.yaml")
	if err := os.WriteFile(policyFile, []byte(prodPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
			s := newStack(t, kind, func(c *config.Config) { c.Environments[2].Policy = policyFile }, server.WithClock(clock.Now))
			ctx := context.Background()
			pub := s.client(s.key("dev", auth.RolePublisher))
			stagingPromoter := s.client(s.key("staging", auth.RolePromoter))
			prodPromoter := s.client(s.key("prod", auth.RolePromoter))
			prodApprover := s.client(s.key("prod", auth.RoleApprover))

			files := map[string][]byte{"model.safetensors": safetensorsFile(64), "config.json": []byte(`{"arch":"mlp"}`)}
			published, err := push(t, pub, "dev", "fraud-detector@1.0.0", "model", files)
			if err != nil {
				t.Fatal(err)
			}

			// dev -> staging without evidence: refused, and the table names why.
			_, err = stagingPromoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0"})
			gf := gateFailure(t, err)
			failed := failedChecks(gf.Report)
			if _, ok := failed["required-evidence"]; !ok || gf.GateRunID == "" {
				t.Fatalf("refusal does not name required-evidence: %v (run %q)", failed, gf.GateRunID)
			}
			run, err := stagingPromoter.GateRun(ctx, "staging", gf.GateRunID)
			if err != nil || run.Passed || run.PolicyDigest == "" {
				t.Fatalf("stored gate run: %+v %v", run, err)
			}

			// Evidence from CI, attached in dev.
			if _, created, err := pub.AddEvidence(ctx, "dev", "fraud-detector", "1.0.0", "junit", []byte(passingJUnit)); err != nil || !created {
				t.Fatalf("add evidence: %v %v", created, err)
			}
			_, _, err = pub.AddEvidence(ctx, "dev", "fraud-detector", "1.0.0", "junit", []byte("<not-xml"))
			wantAPIError(t, err, http.StatusBadRequest, registry.CodeInvalidEvidence.Name)

			// A dry run passes and changes nothing.
			dry, err := stagingPromoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0", DryRun: true})
			if err != nil || !dry.Passed || dry.Release != nil {
				t.Fatalf("dry run: %+v %v", dry, err)
			}
			if _, err := stagingPromoter.GetVersion(ctx, "staging", "fraud-detector", "1.0.0"); err == nil {
				t.Fatal("dry run created the version in staging")
			}

			// A promoter of dev cannot promote into staging.
			_, err = s.client(s.key("dev", auth.RoleAdmin)).Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0"})
			wantAPIError(t, err, http.StatusForbidden, registry.CodeWrongEnvironment.Name)

			res, err := stagingPromoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0", Reason: "nightly eval green"})
			if err != nil || !res.Created || res.Release == nil || res.Release.Source != "dev" {
				t.Fatalf("promote to staging: %+v %v", res, err)
			}
			again, err := stagingPromoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0"})
			if err != nil || again.Created || again.Release.ID != res.Release.ID {
				t.Fatalf("retried promotion: %+v %v, want the existing release %d", again, err, res.Release.ID)
			}

			// The files download from staging with the same digests, and the
			// staging key signed the manifest and the gate attestation.
			out := t.TempDir()
			rec, err := stagingPromoter.Pull(ctx, "staging", "fraud-detector", "1.0.0", out)
			if err != nil || rec.ManifestDigest != published.Version.ManifestDigest {
				t.Fatalf("pull from staging: %v (digest %s, published %s)", err, rec.ManifestDigest, published.Version.ManifestDigest)
			}
			for p, want := range files {
				got, _ := os.ReadFile(filepath.Join(out, p))
				if !bytes.Equal(got, want) {
					t.Fatalf("%s differs after promotion", p)
				}
			}
			pem, keyID, _ := stagingPromoter.PublicKey(ctx, "staging")
			manifest, _ := stagingPromoter.Manifest(ctx, "staging", "fraud-detector", "1.0.0")
			verifier, err := signing.LoadVerifier(pem)
			if err != nil {
				t.Fatal(err)
			}
			sig, ok := rec.EnvironmentSignature(keyID)
			if !ok || verifier.VerifyBlob(manifest, sig.Signature) != nil {
				t.Fatalf("staging's key did not sign the promoted manifest (%v)", ok)
			}
			envelope, err := stagingPromoter.Attestation(ctx, "staging", "fraud-detector", "1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verifier.VerifyAttestation(envelope, rec.ManifestDigest.String(), promotion.PredicateType); err != nil {
				t.Fatalf("gate attestation does not verify: %v", err)
			}
			if bin := os.Getenv("STAGEGATE_TEST_COSIGN"); bin != "" {
				// The real cosign CLI verifies the gate attestation offline.
				dir := t.TempDir()
				for name, data := range map[string][]byte{"manifest.json": manifest, "att.json": envelope, "staging.pub": pem} {
					if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				msg, err := runCosign(t, bin, dir, "", "verify-blob-attestation", "--key", "staging.pub", "--signature", "att.json",
					"--type", promotion.PredicateType, "--insecure-ignore-tlog=true", "manifest.json")
				if err != nil || !strings.Contains(msg, "Verified OK") {
					t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, msg)
				}
			}

			// Skipping staging is refused before anything of dev is read:
			// the source is always the target's predecessor.
			_, err = prodPromoter.Promote(ctx, "prod", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0", From: "dev"})
			wantAPIError(t, err, 400, "promotion_not_allowed")
			// A staging promoter cannot read prod through "from", not even
			// to learn whether a version exists there.
			for _, v := range []string{"1.0.0", "9.9.9"} {
				_, err = stagingPromoter.Promote(ctx, "staging", client.PromoteRequest{Name: "fraud-detector", Version: v, From: "prod", DryRun: true})
				wantAPIError(t, err, 400, "promotion_not_allowed")
			}

			// staging -> prod: too fresh and unapproved.
			_, err = prodPromoter.Promote(ctx, "prod", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0"})
			failed = failedChecks(gateFailure(t, err).Report)
			if _, ok := failed["soak-time"]; !ok {
				t.Fatalf("soak time not enforced: %v", failed)
			}
			if _, ok := failed["approvals"]; !ok {
				t.Fatalf("approval not required: %v", failed)
			}
			if _, err := prodApprover.Approve(ctx, "prod", "fraud-detector", "1.0.0", "reviewed eval"); err != nil {
				t.Fatal(err)
			}
			_, err = prodPromoter.Approve(ctx, "prod", "fraud-detector", "1.0.0", "")
			wantAPIError(t, err, http.StatusForbidden, registry.CodeForbidden.Name)
			clock.Advance(2 * time.Hour)
			prodRes, err := prodPromoter.Promote(ctx, "prod", client.PromoteRequest{Name: "fraud-detector", Version: "1.0.0"})
			if err != nil || !prodRes.Created {
				t.Fatalf("promote to prod: %+v %v", prodRes, err)
			}
			releases, err := prodPromoter.Releases(ctx, "prod", "fraud-detector")
			if err != nil || len(releases) != 1 || releases[0].Source != "staging" || releases[0].GateRunID == "" {
				t.Fatalf("prod releases: %+v %v", releases, err)
			}
		})
	}
}

func TestConcurrentPromotionsOneRelease(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		if _, err := push(t, pub, "dev", "support-agent@2.0.0", "agent-config",
			map[string][]byte{"agent.json": []byte(`{"model":"gpt-x","system_prompt":"Be brief."}`)}); err != nil {
			t.Fatal(err)
		}
		promoter := s.client(s.key("staging", auth.RolePromoter))
		const n = 8
		var wg sync.WaitGroup
		results := make([]client.PromoteResponse, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i], errs[i] = promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "support-agent", Version: "2.0.0"})
			}(i)
		}
		wg.Wait()
		created := 0
		for i, err := range errs {
			if err != nil {
				t.Fatalf("promotion %d: %v", i, err)
			}
			if results[i].Created {
				created++
			}
			if results[i].Release.ID != results[0].Release.ID {
				t.Fatalf("promotions answered different releases: %d and %d", results[i].Release.ID, results[0].Release.ID)
			}
		}
		releases, err := promoter.Releases(ctx, "staging", "support-agent")
		if created != 1 || err != nil || len(releases) != 1 {
			t.Fatalf("%d promotions created a release, %d releases stored (%v); want exactly one", created, len(releases), err)
		}
	})
}
