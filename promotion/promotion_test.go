package promotion_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	blobminio "github.com/stagegate/stagegate/internal/blob/minio"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
)

// untouchable is a bucket and metadata handle that fail the test when
// anything reads them: the environment a request must never reach.
type untouchable struct {
	registry.Blobs
	registry.Metadata
	t *testing.T
}

func (u untouchable) GetVersion(context.Context, string, string) (registry.VersionRecord, error) {
	u.t.Error("prod's metadata was read")
	return registry.VersionRecord{}, registry.CodeNotFound.Errorf("no")
}

func (u untouchable) OpenBlob(context.Context, v1.Hash) (io.ReadCloser, int64, error) {
	u.t.Error("prod's bucket was read")
	return nil, 0, registry.ErrObjectNotFound
}

// newService wires dev -> staging over real local storage and a real key,
// and publishes model@1.0.0 into dev. prod exists but must never be read.
func newService(t *testing.T) (*promotion.Service, *environment.List) {
	t.Helper()
	return newServiceOn(t, func(t *testing.T, name string) blob.Driver {
		d, err := filesystem.New(filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

// newServiceOn is newService with each environment's bucket from newDriver.
func newServiceOn(t *testing.T, newDriver func(t *testing.T, env string) blob.Driver) (*promotion.Service, *environment.List) {
	t.Helper()
	ctx := context.Background()
	names := []string{"dev", "staging", "prod"}
	meta, err := metadata.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "meta.db"), names)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	priv, pub, err := signing.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadSigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := signing.NewKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	var specs []environment.Spec
	for _, name := range names {
		d := newDriver(t, name)
		handle, err := meta.Env(name)
		if err != nil {
			t.Fatal(err)
		}
		spec := environment.Spec{Name: name, Blobs: blob.NewStore(d), Metadata: handle, Signer: signer, Verifier: verifier}
		if name != "dev" {
			if spec.Policy, err = gates.DefaultPolicy(name); err != nil {
				t.Fatal(err)
			}
		}
		if name == "prod" {
			u := untouchable{Blobs: spec.Blobs, Metadata: handle, t: t}
			spec.Blobs, spec.Metadata = u, u
		}
		specs = append(specs, spec)
	}
	envs, err := environment.New(specs)
	if err != nil {
		t.Fatal(err)
	}
	dev := envs.First()
	data := []byte("weights")
	if _, err := dev.Blobs().PutBlob(ctx, registry.DigestOf(data), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	reg := registry.NewService(registry.Limits{}, nil)
	if _, err := reg.Publish(ctx, dev, audit.Actor{Name: "ci"}, registry.PublishRequest{Name: "model", Version: "1.0.0", Kind: "generic",
		Files: []registry.File{{Path: "w.bin", Digest: registry.DigestOf(data), Size: int64(len(data))}}}); err != nil {
		t.Fatal(err)
	}
	return promotion.New(func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }), envs
}

func env(t *testing.T, envs *environment.List, name string) *environment.Environment {
	t.Helper()
	e, ok := envs.Bind(name)
	if !ok {
		t.Fatalf("no environment %q", name)
	}
	return e
}

func TestRefusals(t *testing.T) {
	svc, envs := newService(t)
	ctx := context.Background()
	by := audit.Actor{Name: "someone"}
	dev, staging := env(t, envs, "dev"), env(t, envs, "staging")
	tests := []struct {
		name string
		run  func() error
		code string
	}{
		{"promote into the first environment", func() error {
			_, err := svc.Promote(ctx, dev, by, promotion.Request{Name: "model", Version: "1.0.0"})
			return err
		}, registry.CodeNotPromotable.Name},
		// The source is target.Previous(); a request cannot name another
		// environment to read (untouchable fails the test if prod is read).
		{"source other than the previous environment", func() error {
			_, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "1.0.0", From: "prod", DryRun: true})
			return err
		}, registry.CodeNotPromotable.Name},
		{"source that is not configured", func() error {
			_, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "1.0.0", From: "qa"})
			return err
		}, registry.CodeNotPromotable.Name},
		{"missing version", func() error {
			_, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "9.9.9"})
			return err
		}, registry.CodeVersionNotFound.Name},
		{"bad version", func() error {
			_, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "latest"})
			return err
		}, registry.CodeInvalidVersion.Name},
		{"evidence outside the first environment", func() error {
			_, _, err := svc.AddEvidence(ctx, staging, by, "model", "1.0.0", "metrics", []byte(`{"auc":1}`))
			return err
		}, registry.CodeEvidenceNotFirst.Name},
		{"malformed evidence", func() error {
			_, _, err := svc.AddEvidence(ctx, dev, by, "model", "1.0.0", "metrics", []byte(`[1,2]`))
			return err
		}, registry.CodeInvalidEvidence.Name},
		{"approval for the first environment", func() error {
			_, err := svc.Approve(ctx, dev, by, "approver", "model", "1.0.0", "")
			return err
		}, registry.CodeNotPromotable.Name},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registry.AsError(tt.run()).Code; got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
		})
	}
}

func TestPromoteGenericArtifact(t *testing.T) {
	svc, envs := newService(t)
	ctx := context.Background()
	by := audit.Actor{Name: "promoter"}
	staging := env(t, envs, "staging")
	dry, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "1.0.0", DryRun: true})
	if err != nil || dry.Release != nil || !dry.Report.Passed {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	res, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "1.0.0", From: "dev", Reason: "ok"})
	if err != nil || !res.Created || res.Release.Reason != "ok" || res.Release.GateRunID != res.GateRun.ID {
		t.Fatalf("promote: %+v %v", res, err)
	}
	run, err := svc.GateRun(ctx, staging, res.GateRun.ID)
	if err != nil || !run.Passed || run.Source != "dev" {
		t.Fatalf("stored gate run: %+v %v", run, err)
	}
	again, err := svc.Promote(ctx, staging, by, promotion.Request{Name: "model", Version: "1.0.0"})
	if err != nil || again.Created || again.GateRun != nil || again.Release.ID != res.Release.ID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if _, err := svc.Attestation(ctx, staging, "model", "1.0.0"); err != nil {
		t.Fatalf("attestation: %v", err)
	}
}

// TestRefusedPromotionLeavesTargetEmpty: the files are copied while the
// gates run, but a refusal (here digest-integrity, the dev blob having
// been corrupted behind the store's back) aborts the copies before they
// become visible, so the refused bytes never reach the target bucket. On
// MinIO the copy is server-side and verifies the bytes itself, and
// digest-integrity takes its verdict instead of reading the file again: the
// corrupt copy must not be taken for verified, and an intact one is
// counted in the gate's details as verified by its copy.
func TestRefusedPromotionLeavesTargetEmpty(t *testing.T) {
	stacks := []struct {
		name     string
		byCopy   int // files digest-integrity takes from their verified copy
		newStack func(t *testing.T) (*promotion.Service, *environment.List)
	}{
		{"filesystem", 0, newService},
		{"minio", 1, func(t *testing.T) (*promotion.Service, *environment.List) { return newServiceOn(t, minioDriver) }},
	}
	for _, st := range stacks {
		t.Run(st.name, func(t *testing.T) {
			for _, corrupt := range []bool{true, false} {
				svc, envs := st.newStack(t)
				ctx := context.Background()
				dev, staging := env(t, envs, "dev"), env(t, envs, "staging")
				dgst := registry.DigestOf([]byte("weights"))
				if corrupt {
					rp := dev.Blobs().(*blob.Store).Driver().(blob.Replacer)
					if err := rp.Replace(ctx, blob.BlobKey(dgst), bytes.NewReader([]byte("weightz")), 7); err != nil {
						t.Fatal(err)
					}
				}
				res, err := svc.Promote(ctx, staging, audit.Actor{Name: "promoter"}, promotion.Request{Name: "model", Version: "1.0.0"})
				if !corrupt {
					if err != nil {
						t.Fatalf("promote of an intact version: %v", err)
					}
					if got := integrityByCopy(t, res.Report); got != st.byCopy {
						t.Errorf("digest-integrity took %d file(s) from their copy, want %d", got, st.byCopy)
					}
					if _, err := staging.Blobs().StatBlob(ctx, dgst); err != nil {
						t.Fatalf("after the promotion the target's StatBlob = %v", err)
					}
					continue
				}
				if got := registry.AsError(err).Code; got != registry.CodeGateFailed.Name {
					t.Fatalf("promote of a corrupt version: %v, want %s", err, registry.CodeGateFailed.Name)
				}
				if _, err := staging.Blobs().StatBlob(ctx, dgst); !errors.Is(err, registry.ErrObjectNotFound) {
					t.Fatalf("after the refusal the target's StatBlob = %v, want not found", err)
				}
			}
		})
	}
}

// integrityByCopy returns the byCopy count of the report's digest-integrity result.
func integrityByCopy(t *testing.T, rep *gates.Report) int {
	t.Helper()
	for _, r := range rep.Results {
		if r.Check == "digest-integrity" {
			d, ok := r.Details.(gates.IntegrityDetails)
			if !ok {
				t.Fatalf("digest-integrity details are %T", r.Details)
			}
			return d.ByCopy
		}
	}
	t.Fatal("no digest-integrity result in the report")
	return 0
}

// minioDriver is a fresh bucket on the test MinIO (skips without one),
// emptied when the test ends. One credential for every environment, so
// copies between them are server-side.
func minioDriver(t *testing.T, env string) blob.Driver {
	endpoint := os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT")
	if endpoint == "" {
		t.Skip("STAGEGATE_TEST_MINIO_ENDPOINT is not set; skipping the MinIO promotion case")
	}
	d, err := blobminio.New(context.Background(), blobminio.Config{Endpoint: endpoint,
		AccessKey: os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"), SecretKey: os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"),
		Bucket: "stagegate-promo-" + env + "-" + strings.ToLower(rand.Text()[:12]), CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = d.List(ctx, "", func(i blob.Info) error { return d.Delete(ctx, i.Key) })
	})
	return d
}
