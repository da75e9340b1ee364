package gates

import (
	"context"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

func TestSignature(t *testing.T) {
	opt := buildCheck(t, "signature", "")
	req := buildCheck(t, "signature", "required: true")
	tests := []struct {
		name   string
		check  Check
		status SignatureStatus
		want   Status
	}{
		{"no keys: skipped", opt, SignatureUnconfigured, Skipped},
		{"no keys but required: errored", req, SignatureUnconfigured, Errored},
		{"trusted", opt, SignatureTrusted, Passed},
		{"untrusted", opt, SignatureUntrusted, Failed},
		{"absent", req, SignatureAbsent, Failed},
		{"verification error", opt, SignatureError, Errored},
		{"unknown status", opt, SignatureStatus("maybe"), Errored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel)
			s.Signature = Signature{Status: tt.status, KeyID: "ci-2026", Detail: "key not trusted"}
			wantStatus(t, tt.check.Run(context.Background(), s), tt.want)
		})
	}
}

func TestDigestIntegrity(t *testing.T) {
	c := buildCheck(t, "digest-integrity", "")
	good := memFile("config.json", []byte(`{"a":1}`))
	tampered := good
	tampered.Open = memOpener([]byte(`{"a":2}`))
	resized := good
	resized.Size++
	unreadable := good
	unreadable.Open = failingOpener
	notSHA := good
	notSHA.Digest.Algorithm = "md5"
	badEvidence := memEvidence("junit", []byte("<testsuite/>"))
	badEvidence.Open = memOpener([]byte("<testsuite tests='1'/>"))
	// A file its verifying copy hashed is not read again (its opener
	// would fail); one whose copy did not verify is read and judged.
	byCopy := unreadable
	byCopy.Verified = func(context.Context) bool { return true }
	copyFailed := tampered
	copyFailed.Verified = func(context.Context) bool { return false }
	copyStreamed := good
	copyStreamed.Verified = func(context.Context) bool { return false }
	tests := []struct {
		name     string
		files    []File
		evidence []Evidence
		want     Status
	}{
		{"intact", []File{good, memFile("b.txt", []byte("b"))}, []Evidence{memEvidence("junit", []byte("x"))}, Passed},
		{"empty version", nil, nil, Passed},
		{"tampered bytes", []File{good, tampered}, nil, Failed},
		{"size differs", []File{resized}, nil, Failed},
		{"tampered evidence", []File{good}, []Evidence{badEvidence}, Failed},
		{"unreadable", []File{unreadable}, nil, Errored},
		{"not sha256", []File{notSHA}, nil, Errored},
		{"verified by its copy: not read", []File{byCopy, good}, nil, Passed},
		{"copy did not verify, bytes tampered: read and refused", []File{copyFailed}, nil, Failed},
		{"copy did not verify, bytes intact: read", []File{copyStreamed}, nil, Passed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := subject(registry.KindModel, tt.files...)
			s.Evidence = tt.evidence
			wantStatus(t, c.Run(context.Background(), s), tt.want)
		})
	}
}

func TestSizeLimits(t *testing.T) {
	c := buildCheck(t, "size-limits", "max_file_bytes: 10\nmax_total_bytes: 15")
	tests := []struct {
		name  string
		sizes []int
		want  Status
	}{
		{"within", []int{10, 5}, Passed},
		{"file too big", []int{11}, Failed},
		{"total too big", []int{10, 6}, Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []File
			for _, n := range tt.sizes {
				files = append(files, memFile("f", make([]byte, n)))
			}
			wantStatus(t, c.Run(context.Background(), subject(registry.KindModel, files...)), tt.want)
		})
	}
}
