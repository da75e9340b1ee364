package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/registry"
)

// The storage hygiene capabilities (blob.Lister, Deleter, Replacer) every
// driver implements, and the Store's repair of corrupt blobs built on them.
func runHygieneCases(t *testing.T, newDriver func(t *testing.T) blob.Driver) {
	cases := []driverCase{
		{name: "List", run: testList},
		{name: "ListStops", run: testListStops},
		{name: "Delete", run: testDelete},
		{name: "Replace", run: testReplace},
		{name: "ReplaceLarge", large: true, run: testReplaceLarge},
		{name: "ReplaceVetoed", run: testReplaceVetoed},
		{name: "ReplaceConcurrentReaders", run: testReplaceConcurrentReaders},
		// Both sides of blob.SmallBlobSize: small uploads are written
		// first and looked at when the write finds the blob stored; larger
		// ones are looked up first.
		{name: "RepairOnUploadSizeDiffers", run: func(t *testing.T, d blob.Driver) { testRepairOnUploadSizeDiffers(t, d, 8<<10) }},
		{name: "RepairOnUploadSizeDiffersBig", run: func(t *testing.T, d blob.Driver) { testRepairOnUploadSizeDiffers(t, d, blob.SmallBlobSize+1) }},
		{name: "RepairOnUploadMarked", run: func(t *testing.T, d blob.Driver) { testRepairOnUploadMarked(t, d, 8<<10) }},
		{name: "RepairOnUploadMarkedBig", run: func(t *testing.T, d blob.Driver) { testRepairOnUploadMarked(t, d, blob.SmallBlobSize+1) }},
		{name: "RepairBlob", run: testRepairBlob},
	}
	runCases(t, newDriver, cases)
}

func put(t *testing.T, d blob.Driver, key string, data []byte) {
	t.Helper()
	if err := d.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func list(t *testing.T, d blob.Driver, prefix string) map[string]blob.Info {
	t.Helper()
	out := map[string]blob.Info{}
	err := d.(blob.Lister).List(context.Background(), prefix, func(i blob.Info) error {
		if _, dup := out[i.Key]; dup {
			return fmt.Errorf("%q listed twice", i.Key)
		}
		out[i.Key] = i
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func keysOf(m map[string]blob.Info) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func testList(t *testing.T, d blob.Driver) {
	// Object stores keep whole seconds of LastModified.
	before := time.Now().Add(-2 * time.Second)
	objects := map[string][]byte{
		"blobs/sha256/aa":          contentBytes(1, 10),
		"blobs/sha256/bb":          contentBytes(2, 2000),
		"refs/team/x/-/1.0.0":      []byte("sha256:x"),
		"signatures/sha256/aa/k-1": nil,
	}
	for k, v := range objects {
		put(t, d, k, v)
	}
	after := time.Now().Add(2 * time.Second)
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"blobs/sha256/aa", "blobs/sha256/bb", "refs/team/x/-/1.0.0", "signatures/sha256/aa/k-1"}},
		{"blobs/", []string{"blobs/sha256/aa", "blobs/sha256/bb"}},
		{"blobs/sha256/a", []string{"blobs/sha256/aa"}},
		{"refs/team/", []string{"refs/team/x/-/1.0.0"}},
		{"nothing/", nil},
	} {
		got := list(t, d, tc.prefix)
		if ks := keysOf(got); !slices.Equal(ks, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, ks, tc.want)
		}
		for k, info := range got {
			if info.Size != int64(len(objects[k])) {
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, k, info.Size, len(objects[k]))
			}
			if info.ModTime.Before(before) || info.ModTime.After(after) {
				t.Errorf("List(%q): %s has ModTime %s, not between %s and %s", tc.prefix, k, info.ModTime, before, after)
			}
		}
	}
}

func testListStops(t *testing.T, d blob.Driver) {
	for i := range 5 {
		put(t, d, fmt.Sprintf("blobs/sha256/%02d", i), []byte{byte(i)})
	}
	stop := errors.New("stop")
	calls := 0
	err := d.(blob.Lister).List(context.Background(), "blobs/", func(blob.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with a failing callback: %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func testDelete(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	del := d.(blob.Deleter)
	put(t, d, "blobs/sha256/gone", []byte("old"))
	put(t, d, "blobs/sha256/kept", []byte("kept"))
	if err := del.Delete(ctx, "blobs/sha256/gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertAbsent(t, d, "blobs/sha256/gone")
	if got := mustGet(t, d, "blobs/sha256/kept"); string(got) != "kept" {
		t.Fatalf("a neighbour changed: %q", got)
	}
	if err := del.Delete(ctx, "blobs/sha256/gone"); err != nil {
		t.Fatalf("Delete of an absent key: %v, want nil", err)
	}
	// Create-once applies afresh to a deleted key.
	put(t, d, "blobs/sha256/gone", []byte("new"))
	if got := mustGet(t, d, "blobs/sha256/gone"); string(got) != "new" {
		t.Fatalf("after delete and put: %q", got)
	}
	if err := del.Delete(ctx, "../escape"); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("Delete of an invalid key: %v, want ErrInvalidKey", err)
	}
}

func testReplace(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	rp := d.(blob.Replacer)
	for _, tc := range []struct {
		name     string
		existing []byte
		with     []byte
		size     bool
	}{
		{"absent", nil, contentBytes(3, 100), true},
		{"shorter", contentBytes(4, 5000), contentBytes(5, 10), true},
		{"longer, unknown size", contentBytes(6, 10), contentBytes(7, 300<<10), false},
		{"empty", contentBytes(8, 10), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "blobs/sha256/replace-" + fmt.Sprint(len(tc.existing)) + "-" + fmt.Sprint(len(tc.with))
			if tc.existing != nil {
				put(t, d, key, tc.existing)
			}
			if err := rp.Replace(ctx, key, bytes.NewReader(tc.with), sizeArg(int64(len(tc.with)), tc.size)); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			if got := mustGet(t, d, key); !bytes.Equal(got, tc.with) {
				t.Fatalf("after Replace: %d bytes, want the %d new ones", len(got), len(tc.with))
			}
		})
	}
}

// testReplaceLarge replaces with a multipart-sized body of unknown size,
// and then vetoes another at its very end: the first stays.
func testReplaceLarge(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	rp := d.(blob.Replacer)
	put(t, d, "blobs/sha256/large", []byte("small"))
	if err := rp.Replace(ctx, "blobs/sha256/large", content(18, Large), -1); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	want, _ := sum(t, content(18, Large))
	if got, n := getSum(t, d, "blobs/sha256/large"); got != want || n != Large {
		t.Fatalf("after Replace: %d bytes, sha256 %s, want %d bytes %s", n, got, int64(Large), want)
	}
	veto := &failingReader{r: content(19, Large), n: Large}
	if err := rp.Replace(ctx, "blobs/sha256/large", veto, Large); err == nil {
		t.Fatal("Replace with a failing reader succeeded")
	}
	if got, _ := getSum(t, d, "blobs/sha256/large"); got != want {
		t.Fatal("a vetoed large Replace changed the object")
	}
}

// testReplaceVetoed: a reader that fails at the end (a verifier's veto) or
// a wrong length leaves the old object in place.
func testReplaceVetoed(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	rp := d.(blob.Replacer)
	old := contentBytes(9, 4000)
	put(t, d, "blobs/sha256/veto", old)
	veto := &failingReader{r: bytes.NewReader(contentBytes(10, 4000)), n: 4000}
	if err := rp.Replace(ctx, "blobs/sha256/veto", veto, 4000); err == nil {
		t.Fatal("Replace with a failing reader succeeded")
	}
	if err := rp.Replace(ctx, "blobs/sha256/veto", bytes.NewReader(contentBytes(11, 10)), 20); err == nil {
		t.Fatal("Replace with a short body succeeded")
	}
	if got := mustGet(t, d, "blobs/sha256/veto"); !bytes.Equal(got, old) {
		t.Fatal("a vetoed Replace changed the object")
	}
}

// testReplaceConcurrentReaders: readers during a Replace see the old bytes
// or the new ones whole, never a mix or an absent key.
func testReplaceConcurrentReaders(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	rp := d.(blob.Replacer)
	a, b := contentBytes(12, 64<<10), contentBytes(13, 64<<10)
	put(t, d, "blobs/sha256/swap", a)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got := mustGet(t, d, "blobs/sha256/swap")
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					t.Error("a reader saw neither the old nor the new object")
					return
				}
			}
		})
	}
	for i := range 10 {
		with := a
		if i%2 == 0 {
			with = b
		}
		if err := rp.Replace(ctx, "blobs/sha256/swap", bytes.NewReader(with), int64(len(with))); err != nil {
			t.Errorf("Replace: %v", err)
		}
	}
	close(done)
	wg.Wait()
}

// corrupt writes bad bytes under the blob key of data, as bit rot or a
// truncating disk would.
func corrupt(t *testing.T, d blob.Driver, data []byte, bad []byte) *blob.Store {
	t.Helper()
	s := blob.NewStore(d)
	dgst := digestOf(t, bytes.NewReader(data))
	if _, err := s.PutBlob(context.Background(), dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if err := d.(blob.Replacer).Replace(context.Background(), blob.BlobKey(dgst), bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatalf("damaging the blob: %v", err)
	}
	if _, err := s.VerifyBlob(context.Background(), dgst); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("VerifyBlob of a damaged blob: %v, want ErrDigestMismatch", err)
	}
	return s
}

// testRepairOnUploadSizeDiffers: a truncated stored blob is replaced by the
// next upload of the right bytes, while an upload of wrong bytes with the
// claimed size changes nothing.
func testRepairOnUploadSizeDiffers(t *testing.T, d blob.Driver, size int64) {
	ctx := context.Background()
	data := contentBytes(14, size)
	s := corrupt(t, d, data, data[:100])
	dgst := digestOf(t, bytes.NewReader(data))
	wrong := contentBytes(15, int64(len(data)))
	if _, err := s.PutBlob(ctx, dgst, bytes.NewReader(wrong), int64(len(wrong))); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("PutBlob of wrong bytes over a corrupt blob: %v, want ErrDigestMismatch", err)
	}
	if got := mustGet(t, d, blob.BlobKey(dgst)); !bytes.Equal(got, data[:100]) {
		t.Fatal("a rejected upload changed the stored blob")
	}
	created, err := s.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data)))
	if err != nil || !created {
		t.Fatalf("PutBlob of the right bytes over a truncated blob = %v, %v; want a replacement", created, err)
	}
	ExpectIntact(t, s, dgst, int64(len(data)))
}

// testRepairOnUploadMarked: a same-size corruption is invisible to the
// cheap check, so an upload short-circuits until scrub marks the blob; then
// the upload replaces it and clears the mark.
func testRepairOnUploadMarked(t *testing.T, d blob.Driver, size int64) {
	ctx := context.Background()
	data := contentBytes(16, size)
	flipped := bytes.Clone(data)
	flipped[42] ^= 1
	s := corrupt(t, d, data, flipped)
	dgst := digestOf(t, bytes.NewReader(data))
	if created, err := s.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil || created {
		t.Fatalf("PutBlob over an unmarked same-size blob = %v, %v; want the short-circuit", created, err)
	}
	if err := s.MarkCorrupt(ctx, dgst, "test", time.Now()); err != nil {
		t.Fatalf("MarkCorrupt: %v", err)
	}
	if err := s.MarkCorrupt(ctx, dgst, "again", time.Now()); err != nil {
		t.Fatalf("MarkCorrupt twice: %v", err)
	}
	created, err := s.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data)))
	if err != nil || !created {
		t.Fatalf("PutBlob over a marked blob = %v, %v; want a replacement", created, err)
	}
	ExpectIntact(t, s, dgst, int64(len(data)))
	assertAbsent(t, d, registry.CorruptMarkKey(dgst))
}

func testRepairBlob(t *testing.T, d blob.Driver) {
	ctx := context.Background()
	data := contentBytes(17, 8<<10)
	flipped := bytes.Clone(data)
	flipped[7] ^= 1
	s := corrupt(t, d, data, flipped)
	dgst := digestOf(t, bytes.NewReader(data))
	if _, err := s.RepairBlob(ctx, dgst, bytes.NewReader(flipped), int64(len(flipped))); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("RepairBlob with wrong bytes: %v, want ErrDigestMismatch", err)
	}
	replaced, err := s.RepairBlob(ctx, dgst, bytes.NewReader(data), int64(len(data)))
	if err != nil || !replaced {
		t.Fatalf("RepairBlob = %v, %v; want a replacement", replaced, err)
	}
	ExpectIntact(t, s, dgst, int64(len(data)))
	// An intact blob is left alone and the reader is not needed.
	replaced, err = s.RepairBlob(ctx, dgst, unreadable{t}, -1)
	if err != nil || replaced {
		t.Fatalf("RepairBlob of an intact blob = %v, %v; want no change", replaced, err)
	}
	// A missing blob is restored.
	if err := d.(blob.Deleter).Delete(ctx, blob.BlobKey(dgst)); err != nil {
		t.Fatal(err)
	}
	if replaced, err := s.RepairBlob(ctx, dgst, bytes.NewReader(data), -1); err != nil || !replaced {
		t.Fatalf("RepairBlob of a missing blob = %v, %v", replaced, err)
	}
	ExpectIntact(t, s, dgst, int64(len(data)))
}
