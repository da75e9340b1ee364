package rollback

import (
	"context"
	"time"

	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/registry"
)

// History returns a page of name's releases in e, newest first, and the
// cursor of the next page (the Before of its ReleasePage), 0 when this
// page is the last.
func (s *Service) History(ctx context.Context, e *environment.Environment, name string, page registry.ReleasePage) ([]registry.Release, int64, error) {
	if _, err := registry.ParseName(name); err != nil {
		return nil, 0, err
	}
	if page.Before < 0 || page.Limit < 0 {
		return nil, 0, registry.CodeInvalidRequest.Errorf("before and limit must not be negative")
	}
	releases, err := index(e).PageReleases(ctx, name, page)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if n := len(releases); n == page.EffectiveLimit() && releases[n-1].Number > 1 {
		next = releases[n-1].Number
	}
	return releases, next, nil
}

// Status returns, for every name released in e (or for name alone when it
// is not ""), the release that was current at instant at, and the instant
// it answered for: at itself, or now when at is zero or in the future (the
// future is not known yet; what is current now is the best answer, and the
// caller sees which instant it got). A name first released after at is
// absent, so before e's first release the answer is empty.
func (s *Service) Status(ctx context.Context, e *environment.Environment, at time.Time, name string) ([]registry.Release, time.Time, error) {
	if name != "" {
		if _, err := registry.ParseName(name); err != nil {
			return nil, time.Time{}, err
		}
	}
	now := s.now().UTC()
	if at.IsZero() || at.After(now) {
		at = now
	}
	at = at.UTC()
	releases, err := index(e).ReleasesAt(ctx, at, name)
	if err != nil {
		return nil, time.Time{}, err
	}
	return releases, at, nil
}
