package blob

import (
	"context"
	"io"
	"time"
)

// Blob operation names passed to an observer.
const (
	OpPut  = "put"
	OpGet  = "get"
	OpStat = "stat"
	OpCopy = "copy"
	OpPing = "ping"
)

// Observe receives the latency and error of every driver operation; it
// must be cheap and safe for concurrent use.
type Observe func(op string, d time.Duration, err error)

// Observed wraps d so that observe sees every operation: how long it took
// and how it ended. A Put lasts as long as its reader streams (the client's
// upload); a Get is measured until the object is open, not while it is
// read. The wrapper forwards the Copier capability and unwraps copy sources,
// so a server-side copy stays server-side. A nil observe returns d.
func Observed(d Driver, observe Observe) Driver {
	if observe == nil {
		return d
	}
	return observed{d: d, observe: observe}
}

type observed struct {
	d       Driver
	observe Observe
}

func (o observed) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := o.d.Put(ctx, key, r, size)
	o.observe(OpPut, time.Since(start), err)
	return err
}

func (o observed) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	start := time.Now()
	rc, info, err := o.d.Get(ctx, key)
	o.observe(OpGet, time.Since(start), err)
	return rc, info, err
}

func (o observed) Stat(ctx context.Context, key string) (Info, error) {
	start := time.Now()
	info, err := o.d.Stat(ctx, key)
	o.observe(OpStat, time.Since(start), err)
	return info, err
}

func (o observed) Ping(ctx context.Context) error {
	start := time.Now()
	err := o.d.Ping(ctx)
	o.observe(OpPing, time.Since(start), err)
	return err
}

// CopyFrom forwards to the wrapped driver's Copier with src stripped of
// every wrapper: drivers recognise a source of their own type by assertion.
// A copy the drivers cannot do themselves (ok=false) is not observed: the
// caller streams it through Get and Put, which are.
func (o observed) CopyFrom(ctx context.Context, src Driver, key string) (bool, error) {
	cp, ok := o.d.(Copier)
	if !ok {
		return false, nil
	}
	start := time.Now()
	done, err := cp.CopyFrom(ctx, bare(src), key)
	if done || err != nil {
		o.observe(OpCopy, time.Since(start), err)
	}
	return done, err
}

// CopyVerifiedFrom forwards the VerifyingCopier capability like CopyFrom.
func (o observed) CopyVerifiedFrom(ctx context.Context, src Driver, key string, verify func(io.Reader, int64) error) (bool, error) {
	cp, ok := o.d.(VerifyingCopier)
	if !ok {
		return false, nil
	}
	start := time.Now()
	done, err := cp.CopyVerifiedFrom(ctx, bare(src), key, verify)
	if done || err != nil {
		o.observe(OpCopy, time.Since(start), err)
	}
	return done, err
}

// CopyPartsVerifiedFrom forwards the PartsCopier capability like CopyFrom.
func (o observed) CopyPartsVerifiedFrom(ctx context.Context, src Driver, parts []Part, dst string, verify func(io.Reader, int64) error) (bool, error) {
	cp, ok := o.d.(PartsCopier)
	if !ok {
		return false, nil
	}
	start := time.Now()
	done, err := cp.CopyPartsVerifiedFrom(ctx, bare(src), parts, dst, verify)
	if done || err != nil {
		o.observe(OpCopy, time.Since(start), err)
	}
	return done, err
}

// bare strips the Checked and Observed wrappers from d.
func bare(d Driver) Driver {
	for {
		switch w := d.(type) {
		case checked:
			d = w.d
		case observed:
			d = w.d
		default:
			return d
		}
	}
}
