package promotion

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// heldCopier is the optional capability of a target bucket (blob.Store has
// it) to copy a blob that becomes visible only once ready returns nil.
// ready's verified reports that the bytes to be published were already
// hashed against the digest (a server-side copy verifies before it holds).
type heldCopier interface {
	CopyBlobWhen(ctx context.Context, from registry.Blobs, dgst v1.Hash, ready func(ctx context.Context, verified bool) error) (bool, error)
}

// stageParallel bounds the staged copies at work: each server-side copy is
// already several streams (its ranges and its verifying read). A copy held
// for the verdict does no work and gives its slot up meanwhile, so that
// every file's copy (and its verification, which digest-integrity waits
// for) runs before the verdict however many files the version has.
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
//
// A copy that verified its bytes tells digest-integrity so (verified), and
// the gate then does not read the file again: a promotion reads each large
// file once.
type staged struct {
	verdict chan struct{} // closed by decide
	err     error         // the verdict, set before verdict is closed
	cancel  context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	first   error // first copy failure
	checked map[v1.Hash]*checked
	sem     chan struct{} // work slots, stageParallel of them
}

// checked is whether one staged copy verified its bytes; done is closed
// once that is known (also when it never will be: a failed, refused or
// streamed copy, or a blob the target already had).
type checked struct {
	once     sync.Once
	done     chan struct{}
	verified bool
}

func (c *checked) resolve(verified bool) {
	c.once.Do(func() {
		c.verified = verified
		close(c.done)
	})
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
	st := &staged{verdict: make(chan struct{}), cancel: cancel, checked: map[v1.Hash]*checked{},
		sem: make(chan struct{}, stageParallel)}
	var unique []v1.Hash
	for _, d := range digests {
		if st.checked[d] == nil {
			st.checked[d] = &checked{done: make(chan struct{})}
			unique = append(unique, d)
		}
	}
	st.wg.Go(func() {
		var copies sync.WaitGroup
		defer copies.Wait()
		for i, d := range unique {
			if !st.acquire(ctx) {
				st.resolveFrom(unique[i:])
				return
			}
			if st.refused() {
				<-st.sem
				st.resolveFrom(unique[i:])
				return
			}
			copies.Go(func() {
				c := st.checked[d]
				// held is set while the copy waits for the verdict without
				// its slot; ready may run on a goroutine of the backend's.
				var held atomic.Bool
				defer func() {
					c.resolve(false) // no-op when ready resolved it
					if !held.Load() {
						<-st.sem
					}
				}()
				ready := func(ctx context.Context, verified bool) error {
					c.resolve(verified)
					held.Store(true)
					<-st.sem
					select {
					case <-st.verdict:
					case <-ctx.Done():
						return ctx.Err()
					}
					if st.err != nil {
						return st.err
					}
					// Publishing (or, streamed, the whole copy) is work
					// again: it takes a slot like any other.
					if !st.acquire(ctx) {
						return ctx.Err()
					}
					held.Store(false)
					return nil
				}
				if _, err := hc.CopyBlobWhen(ctx, src, d, ready); err != nil {
					st.fail(registry.StorageError("copying blob "+d.String(), err))
				}
			})
		}
	})
	return st
}

// resolveFrom settles the verification of copies that will not start.
func (st *staged) resolveFrom(digests []v1.Hash) {
	for _, d := range digests {
		st.checked[d].resolve(false)
	}
}

// acquire takes a work slot, false when ctx ended first.
func (st *staged) acquire(ctx context.Context) bool {
	select {
	case st.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// verified returns the digest-integrity hook for file dgst: it waits for
// the staged copy of dgst to verify (or not). Nil when dgst is not staged.
func (st *staged) verified(dgst v1.Hash) func(context.Context) bool {
	if st == nil || st.checked[dgst] == nil {
		return nil
	}
	c := st.checked[dgst]
	return func(ctx context.Context) bool {
		select {
		case <-c.done:
			return c.verified
		case <-ctx.Done():
			return false
		}
	}
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
