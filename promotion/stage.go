package promotion

import (
	"context"
	"errors"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// heldCopier is the optional capability of a target bucket (blob.Store has
// it) to copy a blob that becomes visible only once ready returns nil.
type heldCopier interface {
	CopyBlobWhen(ctx context.Context, from registry.Blobs, dgst v1.Hash, ready func(context.Context) error) (bool, error)
}

// stageParallel bounds the staged copies in flight: each server-side copy
// is already several streams (its ranges and its verifying read), and the
// gates read the same source at the same time.
const stageParallel = 2

// errNotPromoted is the verdict that aborts staged copies when the
// promotion stops before its commit (gates refused, an error, a cancel).
var errNotPromoted = errors.New("promotion: not promoted; staged copy aborted")

// staged is the copies of a version's files into the target, started
// before its gates are evaluated so that the copies (and their verifying
// reads) overlap the gates' own reads instead of following them. Nothing
// of them is visible in the target until decide(nil): the backend copies
// and verifies, then holds the publication (CopyBlobWhen's ready). That is
// what keeps a refused version's bytes out of the target bucket: a blob
// that became visible on refusal could not be removed safely, since
// another version may name the same content.
type staged struct {
	verdict chan struct{} // closed by decide
	err     error         // the verdict, set before verdict is closed
	cancel  context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	first   error // first copy failure
}

// stage starts copying digests from src into dst, held until decide. It
// returns nil when dst cannot hold a copy; commit then copies as before.
func stage(ctx context.Context, dst Content, src registry.Blobs, digests []v1.Hash) *staged {
	hc, ok := dst.(heldCopier)
	if !ok || len(digests) == 0 {
		return nil
	}
	// A refusal cancels the copies, so that one still reading its source
	// stops at once instead of finishing a read nobody needs.
	ctx, cancel := context.WithCancel(ctx)
	st := &staged{verdict: make(chan struct{}), cancel: cancel}
	ready := func(ctx context.Context) error {
		select {
		case <-st.verdict:
			return st.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	seen := map[v1.Hash]bool{}
	var unique []v1.Hash
	for _, d := range digests {
		if !seen[d] {
			seen[d] = true
			unique = append(unique, d)
		}
	}
	st.wg.Go(func() {
		sem := make(chan struct{}, stageParallel)
		var copies sync.WaitGroup
		defer copies.Wait()
		for _, d := range unique {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if st.refused() {
				return
			}
			copies.Go(func() {
				defer func() { <-sem }()
				if _, err := hc.CopyBlobWhen(ctx, src, d, ready); err != nil {
					st.fail(registry.StorageError("copying blob "+d.String(), err))
				}
			})
		}
	})
	return st
}

// refused reports a verdict other than "publish".
func (st *staged) refused() bool {
	select {
	case <-st.verdict:
		return st.err != nil
	default:
		return false
	}
}

func (st *staged) fail(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.first == nil {
		st.first = err
	}
}

// decide publishes the staged copies (verdict nil) or aborts them, waits
// for every copy to end and returns the first failure of a published
// copy. Only the first call decides; later calls wait and return the same.
// A nil *staged decides nothing.
func (st *staged) decide(verdict error) error {
	if st == nil {
		return nil
	}
	st.once.Do(func() {
		st.err = verdict
		close(st.verdict)
		if verdict != nil {
			st.cancel()
		}
	})
	st.wg.Wait()
	st.cancel()
	if st.err != nil {
		return nil // aborted on purpose; failures are the verdict's doing
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.first
}
