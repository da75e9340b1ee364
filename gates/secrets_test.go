package gates

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagegate/stagegate/registry"
)

// fakeSecrets are credential-shaped values assembled at run time (see
// testdata/secrets/README.md).
func fakeSecrets() map[string]string {
	return map[string]string{
		"@@AWS@@":     "AKIA" + "Q3EXAMPLE7ZZTEST",
		"@@GHP@@":     "ghp" + "_" + strings.Repeat("aB3dE6", 6),
		"@@GHPAT@@":   "github" + "_pat_" + "11AAAAAAA0" + strings.Repeat("xY9_", 10),
		"@@SLACK@@":   "xox" + "b-1234567890-0987654321-" + "AbCdEfGhIjKlMnOp",
		"@@BLOB@@":    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
		"@@ENTROPY@@": "Zq8#vL2!pR7$wT4mK9xN",
	}
}

func secretFixture(t *testing.T, name string) File {
	b := string(readFixture(t, filepath.Join("testdata", "secrets", name)))
	for k, v := range fakeSecrets() {
		b = strings.ReplaceAll(b, k, v)
	}
	return memFile(name, []byte(b))
}

func TestSecretScan(t *testing.T) {
	c := buildCheck(t, "secret-scan", "")
	tests := []struct {
		file string
		want []SecretFinding
	}{
		{"clean.yaml", nil},
		{"aws.json", []SecretFinding{{Path: "aws.json", Line: 4, Rule: "aws-access-key-id"}}},
		{"github.yaml", []SecretFinding{{Path: "github.yaml", Line: 9, Rule: "github-token"}, {Path: "github.yaml", Line: 10, Rule: "github-fine-grained-token"}}},
		{"slack.env", []SecretFinding{{Path: "slack.env", Line: 2, Rule: "slack-token"}}},
		{"key.txt", []SecretFinding{{Path: "key.txt", Line: 2, Rule: "private-key"}}},
		{"generic.yaml", []SecretFinding{{Path: "generic.yaml", Line: 4, Rule: "high-entropy-assignment", Key: "db_password"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := c.Run(context.Background(), subject(registry.KindAgentConfig, secretFixture(t, tt.file)))
			want := Passed
			if tt.want != nil {
				want = Failed
			}
			wantStatus(t, r, want)
			d := r.Details.(SecretDetails)
			if diff := cmp.Diff(tt.want, d.Findings); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			// The report must never carry the secret itself.
			enc, _ := json.Marshal(r)
			for _, v := range fakeSecrets() {
				if strings.Contains(string(enc), v) || strings.Contains(string(enc), v[:12]) {
					t.Errorf("result leaks a secret: %s", enc)
				}
			}
		})
	}
}

func TestSecretScanLimitsAndErrors(t *testing.T) {
	c := buildCheck(t, "secret-scan", "max_file_bytes: 10\nextensions: [.cfg]")
	wantStatus(t, c.Run(context.Background(), subject(registry.KindAgentConfig, memFile("a.cfg", []byte("0123456789ab")))), Failed)
	wantStatus(t, c.Run(context.Background(), subject(registry.KindAgentConfig, memFile("a.yaml", []byte("token: "+fakeSecrets()["@@GHP@@"])))), Passed)
	f := memFile("a.cfg", []byte("x"))
	f.Open = failingOpener
	wantStatus(t, c.Run(context.Background(), subject(registry.KindAgentConfig, f)), Errored)
}

func TestSecretScanLongLines(t *testing.T) {
	c := buildCheck(t, "secret-scan", "")
	long := strings.Repeat("a", 3*maxLineChunk) + " " + fakeSecrets()["@@AWS@@"] + "\nnext\n"
	r := c.Run(context.Background(), subject(registry.KindAgentConfig, memFile("big.txt", []byte(long))))
	wantStatus(t, r, Failed)
	if got := r.Details.(SecretDetails).Findings[0].Line; got != 1 {
		t.Errorf("line = %d, want 1", got)
	}
}
