package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/registry"
)

// replicaPassword encrypts the signing keys every replica shares.
const replicaPassword = "replicas-e2e-key-password"

// alternating sends each request to the next replica in turn, as a
// round-robin load balancer does, so that one client operation (HEAD, PUT
// blob, PUT version) is spread over both processes.
type alternating struct {
	hosts []string
	next  atomic.Uint64
	sent  []atomic.Int64 // requests per host
}

func newAlternating(urls ...string) *alternating {
	a := &alternating{sent: make([]atomic.Int64, len(urls))}
	for _, u := range urls {
		pu, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		a.hosts = append(a.hosts, pu.Host)
	}
	return a
}

func (a *alternating) RoundTrip(r *http.Request) (*http.Response, error) {
	i := int(a.next.Add(1) % uint64(len(a.hosts)))
	a.sent[i].Add(1)
	r = r.Clone(r.Context())
	r.URL.Host, r.Host = a.hosts[i], a.hosts[i]
	return http.DefaultTransport.RoundTrip(r)
}

// client returns a client over both replicas that sends token and never
// retries, so that every answer (a 5xx above all) is seen.
func (a *alternating) client(token string) *client.Client {
	return client.New("http://replicas", token, &http.Client{Transport: a}).WithRetry(client.NoRetry())
}

// replicaSet is two `stagegate serve` processes over one MinIO and one
// PostgreSQL database, with the same configuration and signing keys.
type replicaSet struct {
	bin, config  string
	bucketPrefix string
	env          []string
	procs        []*serveProc
	lb           *alternating
}

func startReplicas(t *testing.T) *replicaSet {
	t.Helper()
	bin := buildStagegate(t)
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	for _, env := range []string{"dev", "staging"} {
		if _, _, _, err := signing.EnsureKeyPair(keyDir, env, []byte(replicaPassword)); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "staging-policy.yaml")
	if err := os.WriteFile(policy, []byte(permissiveStaging), 0o600); err != nil {
		t.Fatal(err)
	}
	prefix := "sg-" + randomSuffix(t) + "-"
	cfg := fmt.Sprintf(`addr: 127.0.0.1:0
environments:
  - name: dev
    signing: {key: %q}
  - name: staging
    policy: %q
    signing: {key: %q}
storage:
  driver: minio
  minio: {endpoint: %q, access_key: %q, secret_key: %q, bucket_prefix: %q}
database:
  driver: postgres
  dsn: %q
`, filepath.Join(keyDir, "dev.key"), policy, filepath.Join(keyDir, "staging.key"),
		os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT"), os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"),
		os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"), prefix, freshPostgres(t))
	rs := &replicaSet{bin: bin, config: filepath.Join(dir, "config.yaml"), bucketPrefix: prefix,
		env: processEnv("STAGEGATE_KEY_PASSWORD=" + replicaPassword)}
	if err := os.WriteFile(rs.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Both start together on an empty database and no buckets: migrations
	// and bucket creation race too, as when a Deployment rolls out.
	var wg sync.WaitGroup
	rs.procs = make([]*serveProc, 2)
	errs := make([]error, 2)
	for i := range rs.procs {
		wg.Go(func() {
			rs.procs[i], errs[i] = launchServe(t, fmt.Sprintf("replica %d", i), bin, rs.env,
				"--config", rs.config, "--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", i)))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	rs.lb = newAlternating(rs.procs[0].url, rs.procs[1].url)
	return rs
}

// hostKey mints a key with `stagegate keys create` on the shared database,
// as an operator bootstraps one.
func (rs *replicaSet) hostKey(t *testing.T, env, role string) string {
	t.Helper()
	cmd := exec.Command(rs.bin, "keys", "create", "--config", rs.config, "--env", env, "--role", role,
		"--name", env+"-"+role, "--owner", env+"-"+role+"@example.test")
	cmd.Env = rs.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// direct is a client of replica i alone.
func (rs *replicaSet) direct(i int, token string) *client.Client {
	return client.New(rs.procs[i].url, token, nil).WithRetry(client.NoRetry())
}

// no5xx fails the test on an error answered with a server fault or not
// answered at all; it returns the API error (nil on success).
func no5xx(t *testing.T, what string, err error) *client.APIError {
	t.Helper()
	if err == nil {
		return nil
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Errorf("%s: %v", what, err)
		return nil
	}
	if ae.Status >= 500 {
		t.Errorf("%s: server fault %d %s: %s", what, ae.Status, ae.Code, ae.Message)
	}
	return ae
}

// TestReplicas runs two real `serve` processes on one MinIO and one
// PostgreSQL and spreads every race over both: nothing that decides a race
// may live in one process's memory.
func TestReplicas(t *testing.T) {
	if os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT") == "" || os.Getenv("STAGEGATE_TEST_POSTGRES_DSN") == "" {
		t.Skip("needs STAGEGATE_TEST_MINIO_ENDPOINT and STAGEGATE_TEST_POSTGRES_DSN (scripts/test.sh sets them)")
	}
	if testing.Short() {
		t.Skip("builds and runs the binary twice; skipped with -short")
	}
	t.Parallel()
	rs := startReplicas(t)
	ctx := context.Background()

	// Keys: minted on the host, and over the API through one replica for
	// use on the other.
	devAdmin := rs.hostKey(t, "dev", "admin")
	stagingAdmin := rs.hostKey(t, "staging", "admin")
	_, devPublisher, err := rs.direct(0, devAdmin).CreateKey(ctx, "dev", api.CreateKeyRequest{Name: "ci", Role: "publisher"})
	if err != nil {
		t.Fatalf("create key through replica 0: %v", err)
	}
	_, stagingPromoter, err := rs.direct(1, stagingAdmin).CreateKey(ctx, "staging",
		api.CreateKeyRequest{Name: "promoter", Role: "promoter", Owner: "rel@example.test"})
	if err != nil {
		t.Fatalf("create key through replica 1: %v", err)
	}
	for i, token := range map[int]string{1: devPublisher, 0: stagingPromoter} {
		if _, err := rs.direct(i, token).Whoami(ctx); err != nil {
			t.Fatalf("a key created through replica %d does not authenticate on replica %d: %v", 1-i, i, err)
		}
	}

	t.Run("publish race", func(t *testing.T) { replicaPublishRace(t, rs, devPublisher) })
	t.Run("promotion race", func(t *testing.T) { replicaPromotionRace(t, rs, stagingPromoter) })
	t.Run("rollback and promotion race", func(t *testing.T) {
		replicaReleaseChainRace(t, rs, devPublisher, stagingPromoter)
	})
	t.Run("audit race", func(t *testing.T) { replicaAuditRace(t, rs, devPublisher) })
	// Both replicas appended to each environment's audit chain all along:
	// it still holds, one link after another.
	for env, token := range map[string]string{"dev": devAdmin, "staging": stagingAdmin} {
		rep, err := rs.direct(0, token).VerifyAuditChain(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Broken != nil || rep.Events == 0 {
			t.Errorf("%s audit chain over %d events: broken at %+v", env, rep.Events, rep.Broken)
		}
	}
	// Revoked through one replica, a key is refused by the other at once:
	// keys are read from the database on every request, never cached.
	keys, err := rs.direct(1, devAdmin).ListKeys(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == "ci" {
			if err := rs.direct(1, devAdmin).RevokeKey(ctx, "dev", k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := rs.direct(0, devPublisher).Whoami(ctx); err == nil {
		t.Error("a key revoked through replica 1 still authenticates on replica 0")
	} else {
		wantAPIError(t, err, http.StatusUnauthorized, registry.CodeUnauthenticated.Name)
	}
	for i := range rs.lb.sent {
		if rs.lb.sent[i].Load() == 0 {
			t.Errorf("replica %d received no request", i)
		}
	}
}

// replicaPublishRace: 16 publishes of one name@version with different
// content, spread over both replicas → one 201, fifteen 409
// version_exists, and the version is the winner's through either replica.
func replicaPublishRace(t *testing.T, rs *replicaSet, token string) {
	ctx := context.Background()
	const racers = 16
	cl := rs.lb.client(token)
	contents := make([][]byte, racers)
	bodies := make([][]byte, racers)
	for i := range racers {
		contents[i] = []byte(fmt.Sprintf("weights of racer %d\n", i))
		dgst := registry.DigestOf(contents[i])
		if _, err := cl.UploadBlob(ctx, "dev", dgst, bytes.NewReader(contents[i]), int64(len(contents[i]))); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		var err error
		bodies[i], err = json.Marshal(api.PublishRequest{Kind: "generic",
			Files: []registry.File{{Path: "model.bin", Digest: dgst, Size: int64(len(contents[i]))}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Transport: rs.lb}
	type answer struct {
		status int
		body   []byte
	}
	answers := make([]answer, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPut, "http://replicas/v1/environments/dev/artifacts/race/model/-/versions/1.0.0",
				bytes.NewReader(bodies[i]))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			<-start
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, body}
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	var won api.PublishResponse
	for i, a := range answers {
		switch a.status {
		case http.StatusCreated:
			if winner >= 0 {
				t.Errorf("publishes %d and %d both created the version", winner, i)
			}
			winner = i
			if err := json.Unmarshal(a.body, &won); err != nil {
				t.Fatal(err)
			}
		case http.StatusConflict:
			var eb api.ErrorBody
			if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error.Code != registry.CodeVersionExists.Name {
				t.Errorf("publish %d: 409 with %s, want version_exists", i, a.body)
			}
		default:
			t.Errorf("publish %d: %d %s, want 201 or 409 version_exists", i, a.status, a.body)
		}
	}
	if winner < 0 {
		t.Fatal("no publish created the version")
	}
	if len(won.Version.Files) != 1 || won.Version.Files[0].Digest != registry.DigestOf(contents[winner]) {
		t.Fatalf("the winner's answer lists %+v", won.Version.Files)
	}
	// The bucket describes itself (reindex): its ref names the winner too.
	mc, err := miniogo.New(os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT"), &miniogo.Options{Creds: credentials.NewStaticV4(
		os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"), os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"), "")})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := mc.GetObject(ctx, rs.bucketPrefix+"dev", registry.RefKey("race/model", "1.0.0"), miniogo.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := io.ReadAll(obj)
	if err != nil || string(ref) != won.Version.ManifestDigest.String() {
		t.Errorf("the bucket's ref of race/model@1.0.0 reads %q (%v), want the winner's %s", ref, err, won.Version.ManifestDigest)
	}
	for i := range rs.procs {
		c := rs.direct(i, token)
		rec, err := c.GetVersion(ctx, "dev", "race/model", "1.0.0")
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		if rec.ManifestDigest != won.Version.ManifestDigest {
			t.Errorf("replica %d serves manifest %s, the winner published %s", i, rec.ManifestDigest, won.Version.ManifestDigest)
		}
		dir := t.TempDir()
		if _, err := c.Pull(ctx, "dev", "race/model", "1.0.0", dir); err != nil {
			t.Fatalf("pull through replica %d: %v", i, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "model.bin"))
		if err != nil || !bytes.Equal(got, contents[winner]) {
			t.Errorf("pull through replica %d: model.bin = %q (%v), want the winner's %q", i, got, err, contents[winner])
		}
		manifest, err := c.Manifest(ctx, "dev", "race/model", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if registry.DigestOf(manifest) != won.Version.ManifestDigest {
			t.Errorf("replica %d: manifest bytes hash to %s, want %s", i, registry.DigestOf(manifest), won.Version.ManifestDigest)
		}
	}
}

// replicaPromotionRace: 8 promotions of one version into staging over both
// replicas → one release; the others answer it idempotently.
func replicaPromotionRace(t *testing.T, rs *replicaSet, token string) {
	ctx := context.Background()
	const racers = 8
	cl := rs.lb.client(token)
	results := make([]client.PromoteResponse, racers)
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = cl.Promote(ctx, "staging", client.PromoteRequest{Name: "race/model", Version: "1.0.0", Reason: "race"})
		})
	}
	close(start)
	wg.Wait()
	created := 0
	var releaseID int64
	for i := range racers {
		if ae := no5xx(t, fmt.Sprintf("promotion %d", i), errs[i]); ae != nil {
			t.Errorf("promotion %d: %d %s: %s (a concurrent duplicate should answer the release)", i, ae.Status, ae.Code, ae.Message)
			continue
		}
		if errs[i] != nil {
			continue
		}
		if results[i].Created {
			created++
		}
		if results[i].Release == nil {
			t.Errorf("promotion %d answered no release", i)
			continue
		}
		if releaseID == 0 {
			releaseID = results[i].Release.ID
		} else if results[i].Release.ID != releaseID {
			t.Errorf("promotion %d answered release %d, another answered %d", i, results[i].Release.ID, releaseID)
		}
	}
	if created != 1 {
		t.Errorf("%d promotions created a release, want 1", created)
	}
	hist, err := rs.direct(0, token).History(ctx, "staging", "race/model", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Releases) != 1 {
		t.Errorf("staging holds %d releases of race/model, want 1: %+v", len(hist.Releases), hist.Releases)
	}
}

// replicaReleaseChainRace: promotions of four new versions race rollbacks
// to 1.0.0, over both replicas. Whatever wins, the releases form one chain:
// numbers 1..n without gaps, each superseding the one before.
func replicaReleaseChainRace(t *testing.T, rs *replicaSet, publisher, promoter string) {
	ctx := context.Background()
	pub := rs.lb.client(publisher)
	versions := []string{"1.1.0", "1.2.0", "1.3.0", "1.4.0"}
	for _, v := range versions {
		if _, err := push(t, pub, "dev", "race/model@"+v, "generic", modelFiles(v)); err != nil {
			t.Fatalf("publish %s: %v", v, err)
		}
	}
	cl := rs.lb.client(promoter)
	var mu sync.Mutex
	appended := 0 // releases the answers say were appended
	outcomes := map[string]int{}
	tally := func(what string, err error, outcome string, created bool) {
		mu.Lock()
		defer mu.Unlock()
		if ae := no5xx(t, what, err); ae != nil {
			outcome = fmt.Sprintf("%d %s", ae.Status, ae.Code)
		}
		outcomes[what+": "+outcome]++
		if err == nil && created {
			appended++
		}
	}
	// One round per new version: two promotions of it race two rollbacks
	// to 1.0.0, so that every round starts from another current release.
	for _, v := range versions {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				<-start
				res, err := cl.Promote(ctx, "staging", client.PromoteRequest{Name: "race/model", Version: v, Reason: "race"})
				tally("promote", err, fmt.Sprintf("created=%v", res.Created), res.Created)
			})
			wg.Go(func() {
				<-start
				res, err := cl.Rollback(ctx, "staging", client.RollbackRequest{Name: "race/model", Version: "1.0.0", Reason: "race " + v})
				tally("rollback", err, res.Outcome, res.Outcome == api.RollbackDone)
			})
		}
		close(start)
		wg.Wait()
	}

	var releases []registry.Release
	for before := int64(0); ; {
		page, err := rs.direct(1, promoter).History(ctx, "staging", "race/model", 0, before)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, page.Releases...)
		if page.NextBefore == 0 {
			break
		}
		before = page.NextBefore
	}
	sort.Slice(releases, func(i, j int) bool { return releases[i].Number < releases[j].Number })
	t.Logf("%d releases after the race (%d appended by it); answers: %v", len(releases), appended, outcomes)
	if want := 1 + appended; len(releases) != want {
		t.Errorf("%d releases, want %d (the first promotion and the %d the answers reported)", len(releases), want, appended)
	}
	for i, r := range releases {
		if r.Number != int64(i+1) {
			t.Errorf("release at position %d has number %d: numbers are not contiguous", i, r.Number)
		}
		var prev int64
		if i > 0 {
			prev = releases[i-1].ID
		}
		if r.PreviousID != prev {
			t.Errorf("release %d (%s %s) supersedes id %d, want %d (the release before it)", r.Number, r.Action, r.Version, r.PreviousID, prev)
		}
		if i > 0 && r.CreatedAt.Before(releases[i-1].CreatedAt) {
			t.Errorf("release %d is dated before release %d", r.Number, r.Number-1)
		}
	}
	promoted := map[string]int{}
	for _, r := range releases {
		if r.Action == registry.ReleasePromotion {
			promoted[r.Version]++
		}
	}
	for v, n := range promoted {
		if n != 1 {
			t.Errorf("%s promoted %d times", v, n)
		}
	}
}

// replicaAuditRace: 24 audited uploads at once over both replicas (within
// the default cap of 16 uploads in flight per key and replica), each
// appending to dev's one audit hash chain; none fails, and the chain (checked
// by the caller) still links every event to the one before.
func replicaAuditRace(t *testing.T, rs *replicaSet, token string) {
	ctx := context.Background()
	cl := rs.lb.client(token)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			data := []byte(fmt.Sprintf("audited upload %d", i))
			<-start
			created, err := cl.UploadBlob(ctx, "dev", registry.DigestOf(data), bytes.NewReader(data), int64(len(data)))
			if err != nil || !created {
				t.Errorf("upload %d: created %v, %v", i, created, err)
			}
		})
	}
	close(start)
	wg.Wait()
}
