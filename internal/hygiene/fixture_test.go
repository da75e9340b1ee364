package hygiene

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	"github.com/stagegate/stagegate/internal/metadata"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
)

// testKeys are generated once: scrypt makes key generation slow.
var testKeys = sync.OnceValues(func() (*signing.Signer, error) {
	priv, _, err := signing.GenerateKeyPair([]byte("pw"))
	if err != nil {
		return nil, err
	}
	return signing.LoadSigner(priv, []byte("pw"))
})

// fixture is one environment "dev" on the filesystem driver and SQLite,
// with the real publish path.
type fixture struct {
	t      *testing.T
	root   string
	bucket Bucket
	meta   *metadata.Store
	handle *metadata.Env
	env    *environment.Environment
	reg    *registry.Service
	ev     *promotion.Service
	keys_  *signing.Keyring
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := filepath.Join(t.TempDir(), "dev")
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, d, root)
}

// newFixtureOn is newFixture on driver d; root is the filesystem driver's
// directory ("" for others: age then fails).
func newFixtureOn(t *testing.T, d blob.Driver, root string) *fixture {
	t.Helper()
	bucket, err := AsBucket(d)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, root: root, bucket: bucket, reg: registry.NewService(registry.Limits{}, nil), ev: promotion.New(nil)}
	f.openMeta(filepath.Join(t.TempDir(), "meta.db"))
	signer, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := signing.NewKeyring(signer.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	f.keys_ = verifier
	envs, err := environment.New([]environment.Spec{{Name: "dev", Blobs: blob.NewStore(d), Metadata: f.handle, Signer: signer, Verifier: verifier}})
	if err != nil {
		t.Fatal(err)
	}
	f.env = envs.First()
	return f
}

// openMeta (re)opens the metadata store at path: a fresh path is a lost
// database.
func (f *fixture) openMeta(path string) {
	f.t.Helper()
	meta, err := metadata.Open(context.Background(), "sqlite", path, []string{"dev"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { meta.Close() })
	handle, err := meta.Env("dev")
	if err != nil {
		f.t.Fatal(err)
	}
	f.meta, f.handle = meta, handle
}

func (f *fixture) upload(data []byte) v1.Hash {
	f.t.Helper()
	dgst := registry.DigestOf(data)
	if _, err := f.reg.UploadBlob(context.Background(), f.env, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		f.t.Fatalf("upload: %v", err)
	}
	return dgst
}

type pubReq struct {
	name, version string
	files         map[string][]byte
	labels        map[string]string
	commit        string
}

func (f *fixture) publish(r pubReq) (registry.VersionRecord, error) {
	return f.publishReusing(r, nil)
}

func (f *fixture) mustPublish(r pubReq) registry.VersionRecord {
	f.t.Helper()
	rec, err := f.publish(r)
	if err != nil {
		f.t.Fatalf("publish %s@%s: %v", r.name, r.version, err)
	}
	return rec
}

// age sets the modification time of key to d ago.
func (f *fixture) age(key string, d time.Duration) {
	f.t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(f.root, filepath.FromSlash(key)), when, when); err != nil {
		f.t.Fatal(err)
	}
}

// ageAll makes every object in the bucket d old.
func (f *fixture) ageAll(d time.Duration) {
	f.t.Helper()
	for _, k := range f.keys() {
		f.age(k, d)
	}
}

func (f *fixture) keys() []string {
	f.t.Helper()
	var out []string
	if err := f.bucket.List(context.Background(), "", func(i blob.Info) error {
		out = append(out, i.Key)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) has(key string) bool {
	_, err := f.bucket.Stat(context.Background(), key)
	return err == nil
}

// verifyAll reads every committed version's manifest and files to the end
// through the verifying readers.
func (f *fixture) verifyAll() error {
	ctx := context.Background()
	arts, err := f.handle.ListArtifacts(ctx)
	if err != nil {
		return err
	}
	for _, a := range arts {
		versions, err := f.handle.ListVersions(ctx, a.Name)
		if err != nil {
			return err
		}
		for _, v := range versions {
			if _, err := registry.ReadManifest(ctx, f.env.Blobs(), v.ManifestDigest); err != nil {
				return fmt.Errorf("%s@%s: manifest: %w", v.Name, v.Version, err)
			}
			for _, file := range v.Files {
				rc, _, err := f.env.Blobs().OpenBlob(ctx, file.Digest)
				if err != nil {
					return fmt.Errorf("%s@%s: %s: %w", v.Name, v.Version, file.Path, err)
				}
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil {
					return fmt.Errorf("%s@%s: %s: %w", v.Name, v.Version, file.Path, err)
				}
			}
		}
	}
	return nil
}

func (f *fixture) gc(grace time.Duration, dryRun bool) (GCResult, map[string]Removal) {
	f.t.Helper()
	removed := map[string]Removal{}
	g := &GC{Bucket: f.bucket, Index: f.handle, Grace: grace, DryRun: dryRun, Report: func(r Removal) { removed[r.Key] = r }}
	res, err := g.Run(context.Background())
	if err != nil {
		f.t.Fatalf("gc: %v", err)
	}
	return res, removed
}

var errStop = errors.New("stop")
