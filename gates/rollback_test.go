package gates

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stagegate/stagegate/registry"
)

const freezePolicy = `environment: prod
checks:
  - name: promotion-order
  - name: approvals
  - name: freeze-windows
    params:
      windows:
        - {name: year-end, start: "2026-12-20", end: "2027-01-04"}
`

// rollbackSubject is a rollback in prod of intact files, signed.
func rollbackSubject(now time.Time, files ...File) *Subject {
	return &Subject{Name: "fraud-detector", Version: "1.0.0", Kind: registry.KindModel,
		Source: "prod", Target: "prod", Environments: []string{"dev", "staging", "prod"}, Files: files,
		Actor: "oncall", Now: now, EnvironmentSignature: Signature{Status: SignatureTrusted, KeyID: "sha256:k1"}}
}

func TestRollbackPolicy(t *testing.T) {
	envPolicy, err := LoadPolicy([]byte(freezePolicy))
	if err != nil {
		t.Fatal(err)
	}
	frozen := time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC)
	thawed := time.Date(2027, 2, 1, 12, 0, 0, 0, time.UTC)
	file := memFile("model.safetensors", []byte("weights"))
	tests := []struct {
		name       string
		envPolicy  *Policy
		forced     bool
		now        time.Time
		wantChecks string
		wantPassed bool
		blocking   string // the one blocking check, when refused
	}{
		{"no freeze windows configured", nil, false, frozen, "digest-integrity environment-signature", true, ""},
		{"outside the window", envPolicy, false, thawed, "digest-integrity environment-signature freeze-windows", true, ""},
		{"inside the window", envPolicy, false, frozen, "digest-integrity environment-signature freeze-windows", false, "freeze-windows"},
		{"inside the window, forced", envPolicy, true, frozen, "digest-integrity environment-signature freeze-windows", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RollbackPolicy("prod", tt.envPolicy, tt.forced)
			var names []string
			for _, pc := range p.Checks {
				names = append(names, pc.Check.Name())
			}
			if got := fmt.Sprint(names); got != "["+tt.wantChecks+"]" {
				t.Fatalf("checks %s, want [%s]: the rollback set takes only freeze windows from the environment's policy", got, tt.wantChecks)
			}
			rep := Engine{}.Evaluate(context.Background(), p, rollbackSubject(tt.now, file))
			if rep.Passed != tt.wantPassed {
				t.Fatalf("passed %v, want %v: %+v", rep.Passed, tt.wantPassed, rep.Results)
			}
			var blocking []string
			for _, r := range rep.Failures() {
				blocking = append(blocking, r.Check)
			}
			if tt.blocking != "" && fmt.Sprint(blocking) != "["+tt.blocking+"]" {
				t.Errorf("blocking checks %v, want [%s]", blocking, tt.blocking)
			}
			if tt.forced {
				last := rep.Results[len(rep.Results)-1]
				if last.Status != Failed || last.Required {
					t.Errorf("forced freeze window: %+v; want reported as failed and advisory", last)
				}
			}
		})
	}
	a, b := RollbackPolicy("prod", envPolicy, false), RollbackPolicy("prod", envPolicy, true)
	if a.Digest == b.Digest || a.Digest == RollbackPolicy("prod", nil, false).Digest || a.Digest == RollbackPolicy("staging", envPolicy, false).Digest {
		t.Error("the rollback policy digest does not tell forced, unforced, other policies and environments apart")
	}
	if a.Digest != RollbackPolicy("prod", envPolicy, false).Digest {
		t.Error("the rollback policy digest is not stable")
	}
	if envPolicy.Checks[2].Required != true {
		t.Error("RollbackPolicy changed the environment's own policy")
	}
}

func TestEnvironmentSignature(t *testing.T) {
	tests := []struct {
		status SignatureStatus
		want   Status
	}{
		{SignatureTrusted, Passed},
		{SignatureUntrusted, Failed},
		{SignatureAbsent, Failed},
		{SignatureError, Errored},
		{SignatureUnconfigured, Errored},
		{SignatureStatus("maybe"), Errored},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			s := rollbackSubject(testNow)
			s.EnvironmentSignature = Signature{Status: tt.status, KeyID: "sha256:k1", Detail: "why"}
			wantStatus(t, environmentSignature{env: "prod"}.Run(context.Background(), s), tt.want)
		})
	}
}

// verifyingOpener serves b through a reader that, like the blob store's,
// fails at the end with ErrDigestMismatch.
func verifyingOpener(b []byte) Opener {
	return func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{fmt.Errorf("%w: corrupt", registry.ErrDigestMismatch)})), nil
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestDigestIntegrityCorruptStore: the blob store's own verdict on corrupt
// bytes is a mismatch (failed), reported with the digest of what is stored,
// not a check that could not decide.
func TestDigestIntegrityCorruptStore(t *testing.T) {
	good := memFile("model.safetensors", []byte("weights"))
	bad := good
	bad.Open = verifyingOpener([]byte("WEIGHTS"))
	res := digestIntegrity{}.Run(context.Background(), rollbackSubject(testNow, bad))
	wantStatus(t, res, Failed)
	d, ok := res.Details.(IntegrityDetails)
	if !ok || len(d.Mismatches) != 1 || d.Mismatches[0].GotDigest != digestOf([]byte("WEIGHTS")).String() {
		t.Errorf("details %+v, want the stored bytes' digest", res.Details)
	}
}
