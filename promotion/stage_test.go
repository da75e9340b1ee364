package promotion

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// holdingBucket stands for a target that copies at once and holds the
// publication on ready, as blob.Store's server-side path does (verifies
// true) or its streaming path (false: ready first, then the copy).
type holdingBucket struct {
	Content
	verifies  bool
	mu        sync.Mutex
	published []v1.Hash
	aborted   []v1.Hash
	inFlight  int // copies between start and end, held or not
	working   int // copies not waiting in ready
	maxWork   int
}

func (h *holdingBucket) CopyBlobWhen(ctx context.Context, _ registry.Blobs, d v1.Hash, ready func(context.Context, bool) error) (bool, error) {
	h.mu.Lock()
	h.inFlight++
	h.mu.Unlock()
	h.work() // the verifying copy, or the streamed copy's set-up
	err := ready(ctx, h.verifies)
	if err == nil {
		h.work() // publishing
	}
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

// work counts a copy at work for a moment, outside ready.
func (h *holdingBucket) work() {
	h.mu.Lock()
	h.working++
	h.maxWork = max(h.maxWork, h.working)
	h.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	h.mu.Lock()
	h.working--
	h.mu.Unlock()
}

func TestStagedCopies(t *testing.T) {
	digests := []v1.Hash{
		registry.DigestOf([]byte("a")), registry.DigestOf([]byte("b")), registry.DigestOf([]byte("a")),
		registry.DigestOf([]byte("c")), registry.DigestOf([]byte("d")),
	}
	tests := []struct {
		name          string
		verifies      bool
		verdict       error
		wantPublished int
	}{
		{"verified copies, gates passed: every distinct file published", true, nil, 4},
		{"verified copies, gates refused: nothing published", true, errNotPromoted, 0},
		{"streamed copies, gates passed: the gate must read", false, nil, 4},
		{"streamed copies, gates refused", false, errNotPromoted, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &holdingBucket{verifies: tt.verifies}
			st := stage(context.Background(), h, nil, digests)
			// Every file's verification is known before the verdict, more
			// files than stageParallel included: the gate waits on them.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, d := range digests {
				if got := st.verified(d)(ctx); got != tt.verifies {
					t.Errorf("verified(%s) = %v, want %v", d, got, tt.verifies)
				}
			}
			if ctx.Err() != nil {
				t.Fatal("the verifications did not all end before the verdict")
			}
			if err := st.decide(tt.verdict); err != nil {
				t.Fatalf("decide = %v", err)
			}
			if len(h.published) != tt.wantPublished {
				t.Errorf("published %d, want %d", len(h.published), tt.wantPublished)
			}
			if h.maxWork > stageParallel {
				t.Errorf("%d copies at work at once, limit %d", h.maxWork, stageParallel)
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
	if (*staged)(nil).verified(digests[0]) != nil {
		t.Error("nothing staged, yet a verification hook")
	}
}

// failingBucket fails every copy: a failure after a positive verdict is
// reported by decide, as a storage error.
type failingBucket struct{ Content }

func (failingBucket) CopyBlobWhen(ctx context.Context, _ registry.Blobs, _ v1.Hash, ready func(context.Context, bool) error) (bool, error) {
	if err := ready(ctx, false); err != nil {
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
