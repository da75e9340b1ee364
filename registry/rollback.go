package registry

import "github.com/stagegate/stagegate/audit"

// RollbackCommit is what one rollback writes into its environment in one
// metadata transaction: a release that makes an earlier version current
// again, and its audit event. Nothing else changes: the version, its
// signatures and its evidence are in the environment already.
type RollbackCommit struct {
	// Release is the new release: Action must be ReleaseRollback, and
	// Name@Version must have been released in the environment before. ID,
	// PreviousID and Number are assigned by the store.
	Release Release
	// ExpectedCurrentID, when not 0, is the id of the release the rollback
	// was decided against (its default target, or an alert's judgement,
	// depend on it): if another release became current meanwhile, the
	// commit is refused with release_changed. 0 appends after whatever is
	// current, for a rollback to a version the caller named.
	ExpectedCurrentID int64
	// Event is appended to the environment's audit trail.
	Event audit.Event
}

// ReleasePage selects part of a name's releases, newest first.
type ReleasePage struct {
	// Before, when positive, returns only releases with a lower Number: the
	// cursor is the Number of the last release of the previous page.
	Before int64
	// Limit is the page size (EffectiveLimit applies the bounds).
	Limit int
}

// Page size bounds of ReleasePage.
const (
	DefaultReleasePage = 100
	MaxReleasePage     = 1000
)

// EffectiveLimit applies the default and maximum to p.Limit.
func (p ReleasePage) EffectiveLimit() int {
	switch {
	case p.Limit <= 0:
		return DefaultReleasePage
	case p.Limit > MaxReleasePage:
		return MaxReleasePage
	}
	return p.Limit
}
