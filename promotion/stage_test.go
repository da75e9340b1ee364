package promotion

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// holdingBucket stands for a target that copies at once and holds the
// publication on ready, as blob.Store's server-side path does.
type holdingBucket struct {
	Content
	mu        sync.Mutex
	published []v1.Hash
	aborted   []v1.Hash
	inFlight  int
	maxFlight int
}

func (h *holdingBucket) CopyBlobWhen(ctx context.Context, _ registry.Blobs, d v1.Hash, ready func(context.Context) error) (bool, error) {
	h.mu.Lock()
	h.inFlight++
	h.maxFlight = max(h.maxFlight, h.inFlight)
	h.mu.Unlock()
	err := ready(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inFlight--
	if err != nil {
		h.aborted = append(h.aborted, d)
		return false, err
	}
	h.published = append(h.published, d)
	return true, nil
}

func TestStagedCopies(t *testing.T) {
	digests := []v1.Hash{
		registry.DigestOf([]byte("a")), registry.DigestOf([]byte("b")), registry.DigestOf([]byte("a")),
		registry.DigestOf([]byte("c")), registry.DigestOf([]byte("d")),
	}
	tests := []struct {
		name          string
		verdict       error
		wantPublished int
	}{
		{"gates passed: every distinct file published", nil, 4},
		{"gates refused: nothing published", errNotPromoted, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &holdingBucket{}
			st := stage(context.Background(), h, nil, digests)
			if err := st.decide(tt.verdict); err != nil {
				t.Fatalf("decide = %v", err)
			}
			if len(h.published) != tt.wantPublished {
				t.Errorf("published %d, want %d", len(h.published), tt.wantPublished)
			}
			if h.maxFlight > stageParallel {
				t.Errorf("%d copies in flight, limit %d", h.maxFlight, stageParallel)
			}
			if h.inFlight != 0 {
				t.Errorf("decide returned with %d copies in flight", h.inFlight)
			}
			// A second decision changes nothing.
			if err := st.decide(errors.New("late")); err != nil {
				t.Errorf("second decide = %v", err)
			}
		})
	}
}

// failingBucket fails every copy: a failure after a positive verdict is
// reported by decide, as a storage error.
type failingBucket struct{ Content }

func (failingBucket) CopyBlobWhen(ctx context.Context, _ registry.Blobs, _ v1.Hash, ready func(context.Context) error) (bool, error) {
	if err := ready(ctx); err != nil {
		return false, err
	}
	return false, io.ErrUnexpectedEOF
}

func TestStagedCopyFailure(t *testing.T) {
	st := stage(context.Background(), failingBucket{}, nil, []v1.Hash{registry.DigestOf([]byte("a"))})
	err := st.decide(nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || registry.AsError(err).Code == "" {
		t.Fatalf("decide = %v, want the copy's failure as an API error", err)
	}
	if stage(context.Background(), struct{ Content }{}, nil, []v1.Hash{registry.DigestOf([]byte("a"))}) != nil {
		t.Error("a bucket that cannot hold copies was staged")
	}
	var none *staged
	if err := none.decide(nil); err != nil {
		t.Errorf("nil staged decide = %v", err)
	}
}
