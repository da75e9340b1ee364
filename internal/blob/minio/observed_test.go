package minio

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/blob/blobtest"
	"github.com/stagegate/stagegate/registry"
)

// TestObservedKeepsServerSideCopy: wrapping both buckets' drivers for
// metrics (blob.Observed, as the server does) leaves a promotion copy
// server-side: the destination sees a copy, never a streamed put.
func TestObservedKeepsServerSideCopy(t *testing.T) {
	var mu sync.Mutex
	var ops []string
	observe := func(op string, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			ops = append(ops, op)
		}
	}
	src := blob.NewStore(blob.Observed(newDriver(t), func(string, time.Duration, error) {}))
	dst := blob.NewStore(blob.Observed(newDriver(t), observe))
	ctx := context.Background()
	data := bytes.Repeat([]byte("shard"), 1<<18)
	dgst := registry.DigestOf(data)
	if _, err := src.PutBlob(ctx, dgst, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if copied, err := dst.CopyBlob(ctx, src, dgst); err != nil || !copied {
		t.Fatalf("CopyBlob = %v, %v", copied, err)
	}
	mu.Lock()
	got := slices.Clone(ops)
	mu.Unlock()
	if !slices.Contains(got, blob.OpCopy) || slices.Contains(got, blob.OpPut) {
		t.Fatalf("destination operations %v: want a server-side copy and no put", got)
	}
	blobtest.ExpectIntact(t, dst, dgst, int64(len(data)))
}
