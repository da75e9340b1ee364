package minio

import (
	"context"
	"fmt"

	miniogo "github.com/minio/minio-go/v7"
)

// Retention makes an environment's bucket WORM with S3 object lock: every
// object written is retained for Days in Mode. In governance mode a user
// with the s3:BypassGovernanceRetention permission may still delete early;
// in compliance mode nobody can, not even the root user, until the date
// passes. stagegate itself never bypasses: gc skips locked objects and
// reports them (blob.ErrLocked).
type Retention struct {
	Mode string // "governance" or "compliance"
	Days uint
}

// mode is the S3 name of the retention mode.
func (r Retention) mode() (miniogo.RetentionMode, error) {
	switch r.Mode {
	case "governance":
		return miniogo.Governance, nil
	case "compliance":
		return miniogo.Compliance, nil
	}
	return "", fmt.Errorf("minio: retention mode %q is not governance or compliance", r.Mode)
}

// applyRetention sets the bucket's default retention rule. Object lock can
// only be enabled when a bucket is created (New does that for a bucket it
// creates); an existing bucket without it is an error, not silently left
// unprotected.
func (d *Driver) applyRetention(ctx context.Context, r *Retention) error {
	if r == nil {
		return nil
	}
	mode, err := r.mode()
	if err != nil {
		return err
	}
	if r.Days == 0 {
		return fmt.Errorf("minio: retention of bucket %q needs at least 1 day", d.bucket)
	}
	enabled, _, _, _, err := d.core.GetObjectLockConfig(ctx, d.bucket)
	if err != nil || enabled != "Enabled" {
		return fmt.Errorf("minio: bucket %q has no object lock (it can only be enabled when a bucket is created; create a new bucket): %v", d.bucket, err)
	}
	days, unit := r.Days, miniogo.Days
	if err := d.core.SetObjectLockConfig(ctx, d.bucket, &mode, &days, &unit); err != nil {
		return fmt.Errorf("minio: set retention of bucket %q: %w", d.bucket, err)
	}
	d.locked = true
	return nil
}
