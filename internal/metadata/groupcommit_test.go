package metadata

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

// groupStores opens a fresh SQLite file store and, when the test
// PostgreSQL is configured, a store on a fresh PostgreSQL database.
func groupStores(t *testing.T) map[string]*Store {
	t.Helper()
	ctx := context.Background()
	envs := []string{"dev", "prod"}
	out := map[string]*Store{}
	s, err := Open(ctx, DriverSQLite, filepath.Join(t.TempDir(), "m.db"), envs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	out["sqlite"] = s
	dsn := os.Getenv("STAGEGATE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Log("STAGEGATE_TEST_POSTGRES_DSN is not set; group commit tested on SQLite only")
		return out
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	name := "stagegate_gc_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	pg, err := Open(ctx, DriverPostgres, replaceDB(t, dsn, name), envs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	out["postgres"] = pg
	return out
}

// replaceDB points a postgres:// DSN at database name.
func replaceDB(t *testing.T, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func gcDigest(s string) v1.Hash {
	sum := sha256.Sum256([]byte(s))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func gcVersion(name, ver, content string) registry.VersionRecord {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	return registry.VersionRecord{
		Environment: "dev", Name: name, Version: ver, OriginalVersion: ver, Kind: registry.KindAgentConfig,
		ManifestDigest: gcDigest(name + ver + content), ManifestSize: 300,
		Files:     []registry.File{{Path: "agent.json", Digest: gcDigest(content), Size: 4096, MediaType: "application/json"}},
		CreatedAt: at, CreatedBy: "ci", CISignature: registry.CIAbsent,
		Signatures: []registry.Signature{{Role: registry.SignedByEnvironment, KeyID: "sha256:k", Subject: registry.SubjectManifest,
			Signature: "sig-" + content, Trusted: true, CreatedAt: at}},
	}
}

func gcEvent(action, target string) audit.Event {
	return audit.Event{Environment: "dev", Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), Actor: "ci",
		Action: action, Target: target, Outcome: audit.Success}
}

// TestGroupCommit commits one batch of mixed jobs the way drainChain does
// and checks that each job gets the outcome it would get alone, and that
// the chain and its ids come out as one append at a time would leave them.
func TestGroupCommit(t *testing.T) {
	for driver, s := range groupStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			dev, _ := s.Env("dev")
			// Already committed before the batch: a@1.0.0 and c@1.0.0.
			for _, rec := range []registry.VersionRecord{gcVersion("a", "1.0.0", "A"), gcVersion("c", "1.0.0", "C")} {
				if _, created, err := dev.CommitVersion(ctx, rec, gcEvent(audit.ActionPublish, rec.Name+"@"+rec.Version)); err != nil || !created {
					t.Fatalf("seed %s: created=%v err=%v", rec.Name, created, err)
				}
			}
			newRec, repeat, conflict := gcVersion("b", "1.0.0", "B"), gcVersion("a", "1.0.0", "A"), gcVersion("c", "1.0.0", "other")
			jobs := []*chainJob{
				{rec: &newRec, ev: gcEvent(audit.ActionPublish, "b@1.0.0")},
				{ev: gcEvent(audit.ActionBlobUpload, "sha256:x")},
				{rec: &repeat, ev: gcEvent(audit.ActionPublish, "a@1.0.0")},
				{rec: &conflict, ev: gcEvent(audit.ActionPublish, "c@1.0.0")},
				{ev: gcEvent(audit.ActionBlobUpload, "sha256:y")},
			}
			for _, j := range jobs {
				j.done = make(chan struct{})
			}
			s.commitChain("dev", jobs)

			if j := jobs[0]; j.err != nil || !j.created || len(j.out.Signatures) != 1 || j.out.Signatures[0].Signature != "sig-B" {
				t.Errorf("new version: created=%v sigs=%+v err=%v", j.created, j.out.Signatures, j.err)
			}
			if j := jobs[2]; j.err != nil || j.created || j.out.ManifestDigest != repeat.ManifestDigest || len(j.out.Signatures) != 1 {
				t.Errorf("repeat: created=%v out=%+v err=%v", j.created, j.out, j.err)
			}
			if j := jobs[3]; registry.KindOf(j.err) != registry.Exists || j.id != 0 {
				t.Errorf("conflict: id=%d err=%v, want version_exists and no event", j.id, j.err)
			}
			for _, i := range []int{0, 1, 2, 4} {
				if jobs[i].id == 0 || jobs[i].err != nil {
					t.Errorf("job %d: id=%d err=%v", i, jobs[i].id, jobs[i].err)
				}
			}
			if !(jobs[0].id < jobs[1].id && jobs[1].id < jobs[2].id && jobs[2].id < jobs[4].id) {
				t.Errorf("ids %d %d %d %d do not follow the queue order", jobs[0].id, jobs[1].id, jobs[2].id, jobs[4].id)
			}
			got, err := dev.GetVersion(ctx, "b", "1.0.0")
			if err != nil || got.ManifestDigest != newRec.ManifestDigest || len(got.Signatures) != 1 {
				t.Errorf("GetVersion(b) = %+v, %v", got, err)
			}
			if got, _ := dev.GetVersion(ctx, "c", "1.0.0"); got.ManifestDigest != gcDigest("c1.0.0C") {
				t.Errorf("c@1.0.0 changed: %s", got.ManifestDigest)
			}
			checkChain(t, dev, 2+4)
			if kind, ok, err := dev.ArtifactKind(ctx, "b"); err != nil || !ok || kind != registry.KindAgentConfig {
				t.Errorf("ArtifactKind(b) = %q, %v, %v", kind, ok, err)
			}
			if _, ok, err := dev.ArtifactKind(ctx, "nothing"); err != nil || ok {
				t.Errorf("ArtifactKind(nothing) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

// TestGroupCommitFallback: a job that breaks the batch's transaction
// fails alone; the others commit in transactions of their own.
func TestGroupCommitFallback(t *testing.T) {
	for driver, s := range groupStores(t) {
		t.Run(driver, func(t *testing.T) {
			ok1, ok2 := gcVersion("d", "1.0.0", "D"), gcVersion("e", "1.0.0", "E")
			bad := gcVersion("f", "1.0.0", "F")
			bad.Environment = "prod" // a caller bug: refused by the store
			jobs := []*chainJob{
				{rec: &ok1, ev: gcEvent(audit.ActionPublish, "d@1.0.0")},
				{rec: &bad, ev: gcEvent(audit.ActionPublish, "f@1.0.0")},
				{rec: &ok2, ev: gcEvent(audit.ActionPublish, "e@1.0.0")},
			}
			for _, j := range jobs {
				j.done = make(chan struct{})
			}
			s.commitChain("dev", jobs)
			if jobs[0].err != nil || !jobs[0].created || jobs[2].err != nil || !jobs[2].created {
				t.Errorf("good jobs: %v %v", jobs[0].err, jobs[2].err)
			}
			if registry.KindOf(jobs[1].err) != registry.Internal {
				t.Errorf("bad job: %v, want an internal error", jobs[1].err)
			}
			dev, _ := s.Env("dev")
			checkChain(t, dev, 2)
		})
	}
}

// TestGroupCommitConcurrent: many goroutines publishing and auditing at
// once (so that batches form) get their own outcomes and leave one
// unbroken chain whose ids follow it.
func TestGroupCommitConcurrent(t *testing.T) {
	for driver, s := range groupStores(t) {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			dev, _ := s.Env("dev")
			const workers, each = 16, 8
			errs := make(chan error, workers*each*3)
			done := make(chan struct{})
			for w := range workers {
				go func() {
					defer func() { done <- struct{}{} }()
					for i := range each {
						// Workers 0 and 1 publish the same versions with the same
						// content (idempotent), worker 2 with other content.
						name, content := fmt.Sprintf("w%d", w), fmt.Sprintf("%d-%d", w, i)
						if w < 3 {
							name, content = "shared", fmt.Sprint(i)
							if w == 2 {
								content = "other" + content
							}
						}
						rec := gcVersion(name, fmt.Sprintf("1.0.%d", i), content)
						_, _, err := dev.CommitVersion(ctx, rec, gcEvent(audit.ActionPublish, rec.Name+"@"+rec.Version))
						if registry.KindOf(err) == registry.Exists && name == "shared" {
							err = nil // the loser of the shared race
						}
						errs <- err
						_, err = dev.AppendAudit(ctx, gcEvent(audit.ActionBlobUpload, "sha256:"+content))
						errs <- err
					}
				}()
			}
			for range workers {
				<-done
			}
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			vs, err := dev.ListVersions(ctx, "shared")
			if err != nil || len(vs) != each {
				t.Fatalf("shared versions: %d, %v", len(vs), err)
			}
			n := checkChain(t, dev, -1)
			// Every append and every successful commit left one event;
			// refused commits left none.
			if min, max := workers*each+(workers-2)*each, workers*each*2; n < min || n > max {
				t.Errorf("%d events, want between %d and %d", n, min, max)
			}
		})
	}
}

// checkChain verifies e's whole trail, in id order, and returns its length
// (want < 0: any).
func checkChain(t *testing.T, e *Env, want int) int {
	t.Helper()
	c := audit.NewChain(e.Name())
	n := 0
	err := e.ExportAudit(context.Background(), audit.Filter{}, func(ev audit.Event) error {
		n++
		return c.Next(ev)
	})
	if err != nil {
		t.Fatalf("chain: %v", err)
	}
	if want >= 0 && n != want {
		t.Errorf("%d events, want %d", n, want)
	}
	head, err := e.AuditHead(context.Background())
	if err != nil || head != c.Head() {
		t.Errorf("AuditHead = %+v, %v; the trail ends at %+v", head, err, c.Head())
	}
	return n
}
