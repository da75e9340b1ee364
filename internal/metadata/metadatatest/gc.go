package metadatatest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/metadata"
)

// testGCHandshake: the rows of the publish/gc handshake — intents, one
// lease per environment (taken by one of several racing gcs), tombstones —
// each scoped to its environment.
func testGCHandshake(t *testing.T, s *metadata.Store) {
	ctx := context.Background()
	dev, staging := mustEnv(t, s, "dev"), mustEnv(t, s, "staging")
	d1 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	d2 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	now := time.Now()

	if err := dev.WriteIntent(ctx, "i1", []v1.Hash{d1, d2}, now); err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteIntent(ctx, "i2", []v1.Hash{d2}, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	live, err := dev.LiveIntents(ctx, now.Add(-time.Hour))
	if err != nil || strings.Join(live, ",") != d1.Hex+","+d2.Hex {
		t.Fatalf("LiveIntents = %v, %v; want the young intent's two digests", live, err)
	}
	if live, _ := staging.LiveIntents(ctx, now.Add(-24*time.Hour)); len(live) != 0 {
		t.Fatalf("staging sees dev's intents: %v", live)
	}
	if n, err := dev.DeleteIntentsBefore(ctx, now.Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteIntentsBefore = %d, %v; want the old one", n, err)
	}
	if err := dev.DeleteIntent(ctx, "i1"); err != nil {
		t.Fatal(err)
	}
	if live, _ := dev.LiveIntents(ctx, now.Add(-24*time.Hour)); len(live) != 0 {
		t.Fatalf("intents left: %v", live)
	}

	// Of several gcs racing for the lease, one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for range 4 {
		wg.Go(func() {
			took, err := dev.TakeGCLease(ctx, now)
			if err != nil {
				t.Error(err)
			}
			if took {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d gcs took the lease, want 1", winners)
	}
	if held, since, err := dev.GCLease(ctx); err != nil || !held || since.UnixNano() != now.UnixNano() {
		t.Fatalf("GCLease = %v %v %v", held, since, err)
	}
	if held, _, _ := staging.GCLease(ctx); held {
		t.Fatal("dev's lease is held in staging")
	}
	if err := dev.WriteTombstones(ctx, []string{d1.Hex, d2.Hex, d1.Hex}); err != nil {
		t.Fatal(err)
	}
	if got, err := dev.Tombstoned(ctx, []string{d2.Hex, strings.Repeat("c", 64)}); err != nil || len(got) != 1 || got[0] != d2.Hex {
		t.Fatalf("Tombstoned = %v, %v", got, err)
	}
	if got, _ := staging.Tombstoned(ctx, []string{d1.Hex}); len(got) != 0 {
		t.Fatal("dev's tombstones seen in staging")
	}
	if err := dev.DeleteTombstones(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dev.ReleaseGCLease(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := dev.Tombstoned(ctx, []string{d1.Hex, d2.Hex}); len(got) != 0 {
		t.Fatalf("tombstones left: %v", got)
	}
	if took, err := dev.TakeGCLease(ctx, now); err != nil || !took {
		t.Fatalf("the lease after its release: %v %v", took, err)
	}
	_ = dev.ReleaseGCLease(ctx)
}
