package httpapi

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// Rate is a token bucket: Burst requests at once, refilled at PerSecond.
// PerSecond 0 means no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

// KeyLimits bound what one credential may ask of one replica, so that a
// runaway job or a leaked key cannot starve everyone else. They are kept
// in process memory, per replica: n replicas behind a balancer admit up to
// n times the rate, which is what a per-replica guard is for (the
// database, not these limits, decides every race).
type KeyLimits struct {
	// Requests returns the bucket of a role's credentials; nil: no limit.
	Requests func(role auth.Role) Rate
	// MaxUploads caps a credential's blob uploads in flight; 0: no cap.
	MaxUploads int
}

// uploadRetryAfter is what a refused upload is told to wait: a slot frees
// when one of the key's uploads ends, which nothing here can predict.
const uploadRetryAfter = 2 * time.Second

// Idle keys are forgotten: at most once per sweepEvery, every key whose
// bucket has refilled and that has no upload in flight is dropped, since a
// full bucket is what a key seen for the first time gets anyway. Memory is
// thus bounded by the keys active within about a refill time.
const sweepEvery = time.Minute

// keyLimiter enforces KeyLimits. Times are passed in, so tests drive it
// with a fake clock.
type keyLimiter struct {
	limits KeyLimits

	mu        sync.Mutex
	keys      map[string]*keyState
	lastSweep time.Time
}

type keyState struct {
	bucket  *rate.Limiter // nil: the role has no rate limit
	uploads int
}

func newKeyLimiter(l KeyLimits) *keyLimiter {
	return &keyLimiter{limits: l, keys: map[string]*keyState{}}
}

// state returns the key's state, creating it; l.mu must be held.
func (l *keyLimiter) state(p auth.Principal, now time.Time) *keyState {
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	s, ok := l.keys[p.CredentialID]
	if !ok {
		s = &keyState{}
		if l.limits.Requests != nil {
			if r := l.limits.Requests(p.Role); r.PerSecond > 0 {
				s.bucket = rate.NewLimiter(rate.Limit(r.PerSecond), max(r.Burst, 1))
			}
		}
		l.keys[p.CredentialID] = s
	}
	return s
}

func (l *keyLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for id, s := range l.keys {
		if s.uploads == 0 && (s.bucket == nil || s.bucket.TokensAt(now) >= float64(s.bucket.Burst())) {
			delete(l.keys, id)
		}
	}
}

// admit takes one request from p's bucket, or refuses it with a
// rate_limited error that says when a token will be there.
func (l *keyLimiter) admit(p auth.Principal, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.state(p, now)
	if s.bucket == nil {
		return nil
	}
	r := s.bucket.ReserveN(now, 1)
	if !r.OK() {
		// Burst is at least 1, so one token is always reservable.
		return registry.CodeInternal.Errorf("rate limiter refused a single token")
	}
	wait := r.DelayFrom(now)
	if wait <= 0 {
		return nil
	}
	// Refused requests take nothing: give the token back.
	r.CancelAt(now)
	return tooManyRequests(wait, "requests", "credential %s is over its limit of %g requests per second (burst %d) on this replica",
		p.CredentialID, float64(s.bucket.Limit()), s.bucket.Burst())
}

// startUpload takes one of p's upload slots; done gives it back.
func (l *keyLimiter) startUpload(p auth.Principal, now time.Time) (done func(), err error) {
	if l.limits.MaxUploads <= 0 {
		return func() {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.state(p, now)
	if s.uploads >= l.limits.MaxUploads {
		return nil, tooManyRequests(uploadRetryAfter, "uploads", "credential %s has %d uploads in flight on this replica, the most allowed",
			p.CredentialID, s.uploads)
	}
	s.uploads++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			// s stays in the map while an upload is in flight (sweep
			// keeps it), so this is the state the slot was taken from.
			s.uploads--
		})
	}, nil
}

// throttled is a rate_limited error with the wait to announce in
// Retry-After.
type throttled struct {
	err   *registry.Error
	after time.Duration
}

func (t *throttled) Error() string { return t.err.Error() }
func (t *throttled) Unwrap() error { return t.err }

// retryAfterSeconds rounds the wait up to whole seconds, at least 1:
// Retry-After has no fractions, and 0 would invite an immediate retry.
func (t *throttled) retryAfterSeconds() int {
	return max(1, int(math.Ceil(t.after.Seconds())))
}

func tooManyRequests(after time.Duration, limit, format string, args ...any) error {
	t := &throttled{after: after}
	t.err = registry.CodeRateLimited.Errorf(format, args...).
		WithDetails(map[string]any{"limit": limit, "retryAfterSeconds": t.retryAfterSeconds()})
	return t
}

// setRetryAfter announces the wait of a throttled error.
func setRetryAfter(c *gin.Context, err error) {
	var t *throttled
	if errors.As(err, &t) {
		c.Header("Retry-After", strconv.Itoa(t.retryAfterSeconds()))
	}
}

// uploadSlot wraps an upload handler with the per-key cap on uploads in
// flight.
func (a *API) uploadSlot(h handlerFunc) handlerFunc {
	return func(c *gin.Context, req *request) error {
		done, err := a.limiter.startUpload(req.principal, a.Now())
		if err != nil {
			return err
		}
		defer done()
		return h(c, req)
	}
}
