package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/blobtest"
	"github.com/stagegate/stagegate/internal/blob/filesystem"
	"github.com/stagegate/stagegate/registry"
)

// opLog records what an observer saw.
type opLog struct {
	mu  sync.Mutex
	ops []string // "op:ok" or "op:<error>"
}

func (l *opLog) observe(op string, d time.Duration, err error) {
	if d < 0 {
		panic("negative duration")
	}
	res := "ok"
	if err != nil {
		res = "err"
	}
	l.mu.Lock()
	l.ops = append(l.ops, op+":"+res)
	l.mu.Unlock()
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.ops
	l.ops = nil
	return out
}

// TestObservedDriverSuite: the wrapper changes nothing a driver guarantees.
func TestObservedDriverSuite(t *testing.T) {
	blobtest.RunDriverSuite(t, func(t *testing.T) blob.Driver {
		d, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return blob.Observed(d, (&opLog{}).observe)
	})
}

func TestObservedSeesEveryOperation(t *testing.T) {
	ctx := context.Background()
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := &opLog{}
	d := blob.Observed(fs, log.observe)
	data := []byte("hello")
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"put", func() error { return d.Put(ctx, "a/b", bytes.NewReader(data), int64(len(data))) }, "put:ok"},
		{"put again", func() error { return d.Put(ctx, "a/b", bytes.NewReader(data), int64(len(data))) }, "put:err"},
		{"stat", func() error { _, err := d.Stat(ctx, "a/b"); return err }, "stat:ok"},
		{"stat missing", func() error { _, err := d.Stat(ctx, "a/c"); return err }, "stat:err"},
		{"get", func() error {
			rc, _, err := d.Get(ctx, "a/b")
			if err == nil {
				rc.Close()
			}
			return err
		}, "get:ok"},
		{"ping", func() error { return d.Ping(ctx) }, "ping:ok"},
	}
	for _, s := range steps {
		err := s.do()
		if got := log.take(); !slices.Equal(got, []string{s.want}) {
			t.Errorf("%s (err %v): observed %v, want [%s]", s.name, err, got, s.want)
		}
	}
	if blob.Observed(fs, nil) != blob.Driver(fs) {
		t.Error("Observed with a nil observer should return the driver itself")
	}
}

// sameTypeCopier copies only from its own type, as the MinIO driver does:
// a wrapper that passed itself as the source would silently turn every
// server-side copy into a stream.
type sameTypeCopier struct {
	blob.Driver
	copied *[]string
}

func (c sameTypeCopier) CopyFrom(ctx context.Context, src blob.Driver, key string) (bool, error) {
	s, ok := src.(sameTypeCopier)
	if !ok {
		return false, nil
	}
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if err := c.Put(ctx, key, rc, info.Size); err != nil {
		return false, err
	}
	*c.copied = append(*c.copied, key)
	return true, nil
}

// CopyVerifiedFrom is CopyFrom with the bytes shown to verify first, as
// Store.CopyBlob requires of a copier before it trusts it with blobs.
func (c sameTypeCopier) CopyVerifiedFrom(ctx context.Context, src blob.Driver, key string, verify func(io.Reader, int64) error) (bool, error) {
	s, ok := src.(sameTypeCopier)
	if !ok {
		return false, nil
	}
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		return false, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return false, err
	}
	if err := verify(bytes.NewReader(data), info.Size); err != nil {
		return false, err
	}
	if err := c.Put(ctx, key, bytes.NewReader(data), info.Size); err != nil {
		return false, err
	}
	*c.copied = append(*c.copied, key)
	return true, nil
}

// TestObservedForwardsServerSideCopy: Store.CopyBlob between two wrapped
// drivers still reaches the inner drivers' CopyFrom with the inner source.
func TestObservedForwardsServerSideCopy(t *testing.T) {
	ctx := context.Background()
	var copied []string
	newDriver := func(log *opLog) blob.Driver {
		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return blob.Observed(sameTypeCopier{Driver: fs, copied: &copied}, log.observe)
	}
	srcLog, dstLog := &opLog{}, &opLog{}
	src, dst := blob.NewStore(newDriver(srcLog)), blob.NewStore(newDriver(dstLog))
	data := []byte(strings.Repeat("weights", 100))
	dgst := registry.DigestOf(data)
	if _, err := src.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	copiedNow, err := dst.CopyBlob(ctx, src, dgst)
	if err != nil || !copiedNow {
		t.Fatalf("CopyBlob = %v, %v", copiedNow, err)
	}
	if len(copied) != 1 {
		t.Fatalf("the inner CopyVerifiedFrom copied %v: the wrapper hid the capability or the source's type", copied)
	}
	if got := dstLog.take(); !slices.Contains(got, "copy:ok") || slices.Contains(got, "put:ok") {
		t.Errorf("destination observed %v, want a copy and no streamed put", got)
	}
	rc, _, err := dst.OpenBlob(ctx, dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copied blob reads %d bytes, %v", len(got), err)
	}
	// A pair that cannot copy server-side is not observed as a copy.
	fs, _ := filesystem.New(t.TempDir())
	plainLog := &opLog{}
	plain := blob.NewStore(blob.Observed(fs, plainLog.observe))
	if _, err := plain.CopyBlob(ctx, src, dgst); err != nil {
		t.Fatal(err)
	}
	if got := plainLog.take(); slices.Contains(got, "copy:ok") || !slices.Contains(got, "put:ok") {
		t.Errorf("streamed copy observed %v, want a put and no copy", got)
	}
	if !errors.Is(func() error { _, err := dst.StatBlob(ctx, registry.DigestOf([]byte("none"))); return err }(), blob.ErrNotFound) {
		t.Error("StatBlob of a missing blob should be ErrNotFound through the wrapper")
	}
}
