package hygiene

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// chunkedUpload sends data to f's environment as an OCI chunked upload of
// chunks PATCHes and, when finish is set, ends it with the digest. It
// returns the upload's position.
func (f *fixture) chunkedUpload(data []byte, chunks int, finish bool) oci.UploadPosition {
	f.t.Helper()
	ctx := context.Background()
	up, err := oci.StartUpload(ctx, f.env)
	if err != nil {
		f.t.Fatal(err)
	}
	step := (len(data) + chunks - 1) / chunks
	for off := 0; off < len(data); off += step {
		end := min(off+step, len(data))
		if up, err = oci.AppendUpload(ctx, f.env, up.ID, up.Offset, -1, bytes.NewReader(data[off:end]), int64(end-off), 1<<30); err != nil {
			f.t.Fatalf("chunk at %d: %v", off, err)
		}
	}
	if finish {
		rc, _, err := oci.FinishUpload(ctx, f.env, up.ID, up.Offset, registry.DigestOf(data))
		if err != nil || rc != nil {
			f.t.Fatalf("FinishUpload = %v, %v; want the blob linked in place", rc, err)
		}
	}
	return up
}

func (f *fixture) uploadKeys(id string) []string {
	var out []string
	for _, k := range f.keys() {
		if strings.HasPrefix(k, registry.UploadKey(id, "")) {
			out = append(out, k)
		}
	}
	return out
}

// TestGCChunkedUploads: the chunks a parts object names are a blob's bytes
// and stay while the blob does; an abandoned upload goes once its newest
// key is old, an active one stays however old its first chunk is.
func TestGCChunkedUploads(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	mb := func(b byte) []byte { return bytes.Repeat([]byte{b}, 3<<19) } // 1.5 MiB, kept in parts

	kept := mb('k')
	keptUp := f.chunkedUpload(kept, 2, true)
	f.mustPublishReusing("weights", map[string][]byte{"w.bin": kept})
	keptChunks := f.uploadKeys(keptUp.ID)
	if len(keptChunks) != 2 || !strings.HasSuffix(keptChunks[0], ".data") || !strings.HasSuffix(keptChunks[1], ".data") {
		t.Fatalf("a linked upload keeps its chunks and drops its states: %q", keptChunks)
	}
	if f.has(registry.BlobKey(registry.DigestOf(kept))) || !f.has(registry.PartsKey(registry.DigestOf(kept))) {
		t.Fatal("a chunked upload over 1 MiB was written again instead of linked")
	}
	orphan := mb('o')
	orphanUp := f.chunkedUpload(orphan, 3, true)
	abandoned := f.chunkedUpload(mb('a'), 2, false)
	active := f.chunkedUpload(mb('x')[:1<<20], 1, false)
	f.ageAll(48 * time.Hour)
	// The active upload goes on: its newest key is young.
	rest := mb('x')[1<<20:]
	activeUp, err := oci.AppendUpload(ctx, f.env, active.ID, active.Offset, -1, bytes.NewReader(rest), int64(len(rest)), 1<<30)
	if err != nil {
		t.Fatal(err)
	}

	_, removed := f.gc(DefaultGrace, false)
	for _, k := range keptChunks {
		if _, gone := removed[k]; gone || !f.has(k) {
			t.Errorf("chunk %s of a published blob removed", k)
		}
	}
	if _, gone := removed[registry.PartsKey(registry.DigestOf(orphan))]; !gone {
		t.Error("the parts object of an unreferenced blob was kept")
	}
	if n := len(f.uploadKeys(orphanUp.ID)); n != 3 {
		t.Errorf("the orphan's chunks: %d left after the run that removed its parts object, want 3 (they go in the next run)", n)
	}
	if keys := f.uploadKeys(abandoned.ID); len(keys) != 0 {
		t.Errorf("an abandoned upload left %q", keys)
	}
	if n := len(f.uploadKeys(active.ID)); n != 5 { // two chunks, three states
		t.Errorf("an active upload has %d keys after gc, want 5", n)
	}
	if err := f.verifyAll(); err != nil {
		t.Fatalf("after gc: %v", err)
	}

	_, removed = f.gc(DefaultGrace, false)
	if n := len(f.uploadKeys(orphanUp.ID)); n != 0 || len(removed) != 3 {
		t.Errorf("second run: the orphan's chunks %d left, %d removals (%v); want 0 and 3", n, len(removed), removed)
	}
	// The active upload still finishes, in place.
	whole := mb('x')
	if rc, _, err := oci.FinishUpload(ctx, f.env, activeUp.ID, activeUp.Offset, registry.DigestOf(whole)); err != nil || rc != nil {
		t.Fatalf("finishing the active upload = %v, %v", rc, err)
	}
	f.mustPublishReusing("active", map[string][]byte{"x.bin": whole})
	if err := f.verifyAll(); err != nil {
		t.Fatal(err)
	}
}

// TestUploadExpires: an upload whose last state is older than half of
// registry.UploadTTL is unknown to every request, so none can write or link
// what gc may be removing.
func TestUploadExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("e"), 3<<19)
	up := f.chunkedUpload(data, 1, false)
	stateFile := filepath.Join(f.root, filepath.FromSlash(registry.UploadKey(up.ID, fmt.Sprintf("%020d.state", up.Offset))))
	raw, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	st["at"] = time.Now().Add(-registry.UploadTTL/2 - time.Minute).UnixNano()
	raw, _ = json.Marshal(st)
	if err := os.WriteFile(stateFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	expired := func(what string, err error) {
		t.Helper()
		var oe *oci.Error
		if !errors.As(err, &oe) || oe.Code != oci.CodeBlobUploadUnknown || !strings.Contains(oe.Message, "expired") {
			t.Errorf("%s of an expired upload = %v, want BLOB_UPLOAD_UNKNOWN (expired)", what, err)
		}
	}
	expired("status", oci.CheckUpload(ctx, f.env, up.ID, up.Offset))
	_, err = oci.AppendUpload(ctx, f.env, up.ID, up.Offset, -1, strings.NewReader("more"), 4, 1<<30)
	expired("a chunk", err)
	_, _, err = oci.FinishUpload(ctx, f.env, up.ID, up.Offset, registry.DigestOf(data))
	expired("the end", err)
	if f.has(registry.PartsKey(registry.DigestOf(data))) {
		t.Error("an expired upload was linked")
	}
}

// TestUploadFinishedTwice: two PUTs ending one upload at once (a client's
// retry racing its first attempt) both see its state; the one that finds
// the blob linked already must not remove the chunks the link names.
func TestUploadFinishedTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for i := range 20 {
		data := bytes.Repeat([]byte{byte(i)}, 1<<20+100)
		up := f.chunkedUpload(data, 2, false)
		dgst := registry.DigestOf(data)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				_, _, err := oci.FinishUpload(ctx, f.env, up.ID, up.Offset, dgst)
				errs <- err
			}()
		}
		ok := 0
		for range 2 {
			var oe *oci.Error
			switch err := <-errs; {
			case err == nil:
				ok++
			case errors.As(err, &oe) && oe.Code == oci.CodeBlobUploadUnknown:
				// The other one finished first and removed the states.
			default:
				t.Fatalf("finish: %v", err)
			}
		}
		if ok == 0 {
			t.Fatal("neither finish succeeded")
		}
		rc, _, err := f.env.Blobs().OpenBlob(ctx, dgst)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("round %d: the blob after two finishes: %v", i, err)
		}
	}
}
