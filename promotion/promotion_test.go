package promotion_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
)

// index adapts the real metadata store (SQLite in memory) to promotion.Index.
type index struct{ *metadata.Env }

func (i index) CommitPromotion(ctx context.Context, c promotion.Commit) (registry.Release, bool, error) {
	return i.Env.CommitPromotion(ctx, metadata.Promotion{Version: c.Version, Evidence: c.Evidence, Release: c.Release, Event: c.Event})
}

// newService wires dev -> staging over real local storage and a real key,
// and publishes model@1.0.0 into dev.
func newService(t *testing.T) *promotion.Service {
	t.Helper()
	ctx := context.Background()
	meta, err := metadata.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	priv, _, err := signing.GenerateKeyPair([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadSigner(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := gates.DefaultPolicy("staging")
	if err != nil {
		t.Fatal(err)
	}
	var envs []*promotion.Environment
	var regEnvs []registry.Environment
	for _, name := range []string{"dev", "staging"} {
		d, err := filesystem.New(filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		store := blob.NewStore(d)
		e := &promotion.Environment{Name: name, Index: index{meta.Env(name)}, Blobs: store, Signer: signer}
		if name == "staging" {
			e.Policy = policy
		}
		envs = append(envs, e)
		regEnvs = append(regEnvs, registry.Environment{Name: name, Blobs: store, Index: meta.Env(name), Signer: signer})
	}
	reg, err := registry.NewService(regEnvs, registry.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("weights")
	if _, err := regEnvs[0].Blobs.PutBlob(ctx, registry.DigestOf(data), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Publish(ctx, "dev", audit.Actor{Name: "ci"}, registry.PublishRequest{Name: "model", Version: "1.0.0", Kind: "generic",
		Files: []registry.File{{Path: "w.bin", Digest: registry.DigestOf(data), Size: int64(len(data))}}}); err != nil {
		t.Fatal(err)
	}
	svc, err := promotion.New(envs, func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestRefusals(t *testing.T) {
	svc := newService(t)
	ctx := context.Background()
	by := audit.Actor{Name: "someone"}
	tests := []struct {
		name string
		run  func() error
		code string
	}{
		{"promote into the first environment", func() error {
			_, err := svc.Promote(ctx, "dev", by, promotion.Request{Name: "model", Version: "1.0.0"})
			return err
		}, promotion.CodeNotPromotable},
		{"unknown target", func() error {
			_, err := svc.Promote(ctx, "qa", by, promotion.Request{Name: "model", Version: "1.0.0"})
			return err
		}, registry.CodeNotFound},
		{"missing version", func() error {
			_, err := svc.Promote(ctx, "staging", by, promotion.Request{Name: "model", Version: "9.9.9"})
			return err
		}, registry.CodeVersionNotFound},
		{"bad version", func() error {
			_, err := svc.Promote(ctx, "staging", by, promotion.Request{Name: "model", Version: "latest"})
			return err
		}, registry.CodeInvalidVersion},
		{"evidence outside the first environment", func() error {
			_, _, err := svc.AddEvidence(ctx, "staging", by, "model", "1.0.0", "metrics", []byte(`{"auc":1}`))
			return err
		}, promotion.CodeEvidenceNotFirst},
		{"malformed evidence", func() error {
			_, _, err := svc.AddEvidence(ctx, "dev", by, "model", "1.0.0", "metrics", []byte(`[1,2]`))
			return err
		}, promotion.CodeInvalidEvidence},
		{"approval for the first environment", func() error {
			_, err := svc.Approve(ctx, "dev", by, "approver", "model", "1.0.0", "")
			return err
		}, promotion.CodeNotPromotable},
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
	svc := newService(t)
	ctx := context.Background()
	by := audit.Actor{Name: "promoter"}
	dry, err := svc.Promote(ctx, "staging", by, promotion.Request{Name: "model", Version: "1.0.0", DryRun: true})
	if err != nil || dry.Release != nil || !dry.Report.Passed {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	res, err := svc.Promote(ctx, "staging", by, promotion.Request{Name: "model", Version: "1.0.0", Reason: "ok"})
	if err != nil || !res.Created || res.Release.Reason != "ok" || res.Release.GateRunID != res.GateRun.ID {
		t.Fatalf("promote: %+v %v", res, err)
	}
	run, err := svc.GateRun(ctx, "staging", res.GateRun.ID)
	if err != nil || !run.Passed || run.Source != "dev" {
		t.Fatalf("stored gate run: %+v %v", run, err)
	}
	again, err := svc.Promote(ctx, "staging", by, promotion.Request{Name: "model", Version: "1.0.0"})
	if err != nil || again.Created || again.GateRun != nil || again.Release.ID != res.Release.ID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if _, err := svc.Attestation(ctx, "staging", "model", "1.0.0"); err != nil {
		t.Fatalf("attestation: %v", err)
	}
}
