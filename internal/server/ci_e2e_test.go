package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/auth/oidctest"
	"github.com/stagegate/stagegate/internal/config"
)

// buildCLI builds the stagegate binary the action runs (the build cache
// makes the second build of a run a link).
func buildCLI(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	bin := filepath.Join(t.TempDir(), "stagegate")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/stagegate").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ciStagingPolicy: the source must be main of ciRepo, built by one of its
// workflows, with passing tests; agent configs hold no secrets.
const ciStagingPolicy = `environment: staging
checks:
  - name: promotion-order
  - name: digest-integrity
  - name: provenance
    params:
      repositories: [acme/fraud-model]
      refs: [refs/heads/main]
      workflows: ["acme/fraud-model/.github/workflows/*@refs/heads/main"]
  - name: required-evidence
    params: {types: [junit]}
  - name: junit
  - name: json-schema
    kinds: [agent-config]
  - name: secret-scan
    kinds: [agent-config]
`

const ciAgent = "model: claude-sonnet-4\nsystem_prompt: You triage fraud alerts.\n"

// actionRun is one run of the action's script in a simulated Actions job.
type actionRun struct {
	code            int
	stdout, stderr  string
	outputs         map[string]string
	summary         string
	annotationLines []string
}

// runAction runs ci/action.sh as the composite action's run step does:
// inputs as INPUT_* variables, the job's GITHUB_* variables, temp files for
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, the OIDC token endpoint, and the
// checkout as the working directory.
func runAction(t *testing.T, bin, workspace string, ep *oidctest.ActionsEndpoint, inputs map[string]string) actionRun {
	t.Helper()
	dir := t.TempDir()
	outFile, sumFile := filepath.Join(dir, "output"), filepath.Join(dir, "summary")
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "CI=true",
		"GITHUB_ACTIONS=true", "GITHUB_OUTPUT=" + outFile, "GITHUB_STEP_SUMMARY=" + sumFile, "GITHUB_WORKSPACE=" + workspace,
		"GITHUB_REPOSITORY=" + ciRepo, "GITHUB_REPOSITORY_OWNER=acme", "GITHUB_REF=refs/heads/main",
		"GITHUB_SHA=0123456789abcdef0123456789abcdef01234567", "GITHUB_WORKFLOW_REF=" + ciRepo + "/.github/workflows/publish.yml@refs/heads/main",
		"GITHUB_RUN_ID=4242", "GITHUB_RUN_ATTEMPT=1", "RUNNER_ENVIRONMENT=github-hosted", "GITHUB_EVENT_NAME=push",
		"GITHUB_SERVER_URL=https://github.com", "RUNNER_TEMP=" + dir,
		"ACTIONS_ID_TOKEN_REQUEST_URL=" + ep.URL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + ep.RequestToken,
		"STAGEGATE_BIN=" + bin,
	}
	for k, v := range inputs {
		env = append(env, "INPUT_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+v)
	}
	script, err := filepath.Abs("../../ci/action.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Dir, cmd.Env = workspace, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := actionRun{stdout: stdout.String(), stderr: stderr.String(), outputs: map[string]string{}}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if b, err := os.ReadFile(outFile); err == nil {
		r.outputs = readGitHubOutput(t, string(b))
	}
	if b, err := os.ReadFile(sumFile); err == nil {
		r.summary = string(b)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "::") {
			r.annotationLines = append(r.annotationLines, l)
		}
	}
	return r
}

// readGitHubOutput parses $GITHUB_OUTPUT as the runner does: name=value
// lines and name<<DELIMITER blocks.
func readGitHubOutput(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if name, delim, ok := strings.Cut(line, "<<"); ok {
			var val []string
			closed := false
			for sc.Scan() {
				if sc.Text() == delim {
					closed = true
					break
				}
				val = append(val, sc.Text())
			}
			if !closed {
				t.Fatalf("output %s: delimiter %s never closes", name, delim)
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("GITHUB_OUTPUT line %q", line)
		}
		out[name] = val
	}
	return out
}

// The action's script in a simulated Actions job against a live service:
// publish with OIDC (no stored key), a promotion the gates refuse (a secret
// in the config), then one they pass.
func TestActionPublishesWithOIDC(t *testing.T) {
	bin := buildCLI(t)
	policy := filepath.Join(t.TempDir(), "staging.yaml")
	if err := os.WriteFile(policy, []byte(ciStagingPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			is := oidctest.NewIssuer(t, nil)
			ep := is.ActionsEndpoint(ciClaims(nil))
			s := newStack(t, kind, func(c *config.Config) {
				c.Auth = oidcAuth(is)
				c.Environments[1].Policy = policy
			})
			ws := t.TempDir()
			write := func(rel, data string) {
				full := filepath.Join(ws, rel)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Credential-shaped text is assembled here, so that the
			// repository never holds a string secret scanners flag.
			leaked := "AKIA" + "Z7Q4" + "MPLE" + "XK2V" + "H3RT"
			write("config/agent.yaml", ciAgent+"metadata:\n  owner: risk\n  aws_key: "+leaked+"\n")
			write("reports/junit.xml", `<testsuite name="eval" tests="2"><testcase name="a"/><testcase name="b"/></testsuite>`)
			inputs := map[string]string{
				"command": "publish", "name": "support-agent", "version": "v1.0.0", "kind": "agent-config",
				"paths": "config/\n", "evidence": "junit=reports/junit.xml\n", "labels": "team=risk",
				"promote-to": "staging", "url": s.url, "oidc-audience": "stagegate-dev",
				"promote-oidc-audience": "stagegate-staging", "quiet": "false",
			}

			refused := runAction(t, bin, ws, ep, inputs)
			if refused.code != 3 {
				t.Fatalf("exit %d, want 3 (gate refused)\nstdout:\n%s\nstderr:\n%s", refused.code, refused.stdout, refused.stderr)
			}
			o := refused.outputs
			if !strings.HasPrefix(o["digest"], "sha256:") || o["version"] != "1.0.0" || o["release"] != "" || o["gate-result"] != "failed" || o["gate-run"] == "" {
				t.Fatalf("outputs of the refused run: %v", o)
			}
			for _, want := range []string{
				"### ❌ stagegate: support-agent@1.0.0 refused by staging's gates",
				"| `secret-scan` | security | ❌ failed |",
				"| `provenance` | security | ✅ passed | built from acme/fraud-model at refs/heads/main",
				"| `junit` | tests | ✅ passed |",
				"| provenance evidence attached automatically |",
			} {
				if !strings.Contains(refused.summary, want) {
					t.Errorf("summary lacks %q:\n%s", want, refused.summary)
				}
			}
			wantAnnotations := []*regexp.Regexp{
				regexp.MustCompile(`^::error title=stagegate staging%3A secret-scan failed::support-agent@1\.0\.0: `),
				regexp.MustCompile(`^::error file=config/agent\.yaml,line=5,title=stagegate staging%3A secret-scan failed::`),
			}
			if len(refused.annotationLines) != len(wantAnnotations) {
				t.Fatalf("annotations:\n%s", strings.Join(refused.annotationLines, "\n"))
			}
			for i, re := range wantAnnotations {
				if !re.MatchString(refused.annotationLines[i]) {
					t.Errorf("annotation %d = %q, want %s", i, refused.annotationLines[i], re)
				}
			}
			if strings.Contains(refused.stdout+refused.stderr+refused.summary, leaked) {
				t.Fatal("the secret's value reached the job's log or summary")
			}

			// Fix the config, publish the next version: it passes. The
			// build step's checksum file spares the action a hash of the
			// files; a stale one (the leaky config's digest) is refused by
			// the server, which verifies every byte.
			sha := func(data string) string { sum := sha256.Sum256([]byte(data)); return hex.EncodeToString(sum[:]) }
			write("SHA256SUMS", sha(ciAgent+"metadata:\n  owner: risk\n  aws_key: "+leaked+"\n")+"  config/agent.yaml\n")
			write("config/agent.yaml", ciAgent)
			inputs["version"], inputs["sha256sums"] = "1.0.1", "SHA256SUMS"
			if stale := runAction(t, bin, ws, ep, inputs); stale.code != 1 || !strings.Contains(stale.stderr, "digest_mismatch") {
				t.Fatalf("a stale sha256sums input: exit %d, want 1 with digest_mismatch\nstderr:\n%s", stale.code, stale.stderr)
			}
			write("SHA256SUMS", sha(ciAgent)+"  config/agent.yaml\n")
			passed := runAction(t, bin, ws, ep, inputs)
			if passed.code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", passed.code, passed.stdout, passed.stderr)
			}
			o = passed.outputs
			if o["version"] != "1.0.1" || o["release"] != "1" || o["gate-result"] != "passed" || o["gate-run"] == "" || !strings.HasPrefix(o["digest"], "sha256:") {
				t.Fatalf("outputs of the passing run: %v", o)
			}
			if !strings.Contains(passed.summary, "### ✅ stagegate: support-agent@1.0.1 promoted into staging") || len(passed.annotationLines) != 0 {
				t.Fatalf("summary:\n%s\nannotations: %v", passed.summary, passed.annotationLines)
			}
			if got := ep.Audiences(); len(got) < 4 || got[0] != "stagegate-dev" || !strings.Contains(strings.Join(got, ","), "stagegate-staging") {
				t.Fatalf("token audiences requested: %v", got)
			}

			// What the service recorded: the identity of the rule, the
			// provenance of the job.
			ctx := context.Background()
			rels, err := s.client(s.key("staging", auth.RoleReader)).Releases(ctx, "staging", "support-agent")
			if err != nil || len(rels) != 1 || rels[0].Actor != "github:"+ciRepo || !strings.Contains(rels[0].Reason, "actions/runs/4242") {
				t.Fatalf("releases %+v %v", rels, err)
			}
			v, err := s.client(s.key("dev", auth.RoleReader)).GetVersion(ctx, "dev", "support-agent", "1.0.1")
			if err != nil || v.SourceCommit != "0123456789abcdef0123456789abcdef01234567" || v.Labels["team"] != "risk" {
				t.Fatalf("version %+v %v", v, err)
			}
		})
	}
}

// flakyProxy stands between the CLI and the service. The first two times
// each mutating request arrives, it fails: once before the service sees it
// (503), once after the service has acted, with the answer lost (502).
type flakyProxy struct {
	target *httputil.ReverseProxy
	mu     sync.Mutex
	seen   map[string]int
	failed int
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		p.target.ServeHTTP(w, r)
		return
	}
	key := r.Method + " " + r.URL.Path
	p.mu.Lock()
	p.seen[key]++
	n := p.seen[key]
	p.mu.Unlock()
	switch n {
	case 1:
		p.count()
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":{"code":"unavailable","message":"proxy: upstream busy"}}`, http.StatusServiceUnavailable)
	case 2:
		p.count()
		rec := httptest.NewRecorder()
		p.target.ServeHTTP(rec, r)
		http.Error(w, "bad gateway", http.StatusBadGateway)
	default:
		p.target.ServeHTTP(w, r)
	}
}

func (p *flakyProxy) count() { p.mu.Lock(); p.failed++; p.mu.Unlock() }

// Every verb of `ci publish` fails twice and is retried: the pipeline ends
// with one version, one evidence document and one release.
func TestCIPublishRetriesWithoutDuplicates(t *testing.T) {
	bin := buildCLI(t)
	forEachStack(t, func(t *testing.T, s *stack) {
		target, err := url.Parse(s.url)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ErrorLog = log.New(io.Discard, "", 0) // the requests it aborts on purpose
		proxy := &flakyProxy{target: rp, seen: map[string]int{}}
		front := httptest.NewServer(proxy)
		defer front.Close()
		dir := writeTree(t, map[string][]byte{"model/weights.bin": randomBytes(t, 2<<20), "junit.xml": []byte(passingJUnit)})
		cmd := exec.Command(bin, "ci", "publish", "retried@1.0.0", "--kind", "generic", "--evidence", "junit="+filepath.Join(dir, "junit.xml"),
			"--promote-to", "staging", "-o", "json", filepath.Join(dir, "model"))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "STAGEGATE_URL=" + front.URL,
			"STAGEGATE_TOKEN=" + s.key("dev", auth.RolePublisher), "STAGEGATE_PROMOTE_TOKEN=" + s.key("staging", auth.RolePromoter)}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ci publish: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		// blob upload, publish, evidence, promotion: each failed twice.
		if proxy.failed != 8 || strings.Count(stderr.String(), "retrying in") != 8 {
			t.Fatalf("%d failures injected, stderr:\n%s", proxy.failed, stderr.String())
		}
		if !strings.Contains(stdout.String(), `"gate-result": "passed"`) || !strings.Contains(stdout.String(), `"release": "1"`) {
			t.Fatalf("summary:\n%s", stdout.String())
		}
		ctx := context.Background()
		dev := s.client(s.key("dev", auth.RoleReader))
		versions, err := dev.ListVersions(ctx, "dev", "retried")
		if err != nil || len(versions) != 1 {
			t.Fatalf("versions %v %v", versions, err)
		}
		evidence, err := dev.ListEvidence(ctx, "dev", "retried", "1.0.0")
		if err != nil || len(evidence) != 1 || evidence[0].Type != "junit" {
			t.Fatalf("evidence %+v %v: want exactly one junit document", evidence, err)
		}
		rels, err := s.client(s.key("staging", auth.RoleReader)).Releases(ctx, "staging", "retried")
		if err != nil || len(rels) != 1 {
			t.Fatalf("releases %v %v: want exactly one", rels, err)
		}
	})
}
