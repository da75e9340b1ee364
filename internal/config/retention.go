package config

import "fmt"

// Retention is an environment's optional WORM rule on MinIO: its bucket is
// created with S3 object lock and every object is retained for Days in Mode.
// Object lock can only be enabled when a bucket is created, so retention
// needs a new bucket. gc never removes a retained object: it skips it and
// reports it as locked.
type Retention struct {
	// Mode is "governance" (users with s3:BypassGovernanceRetention may
	// still delete) or "compliance" (nobody may, until the date passes).
	Mode string `yaml:"mode"`
	// Days each object is retained from when it is written.
	Days int `yaml:"days"`
}

// maxRetentionDays bounds days at 100 years: compliance-mode retention
// cannot be shortened once set, so an absurd value is refused up front.
const maxRetentionDays = 36500

func (c *Config) validateRetention() []error {
	var errs []error
	for _, e := range c.Environments {
		r := e.Retention
		if r == nil {
			continue
		}
		if c.Storage.Driver != "minio" {
			errs = append(errs, fmt.Errorf("environment %q: retention needs storage.driver minio (object lock)", e.Name))
		}
		if r.Mode != "governance" && r.Mode != "compliance" {
			errs = append(errs, fmt.Errorf("environment %q: retention.mode %q: want governance or compliance", e.Name, r.Mode))
		}
		if r.Days < 1 || r.Days > maxRetentionDays {
			errs = append(errs, fmt.Errorf("environment %q: retention.days %d: want 1 to %d", e.Name, r.Days, maxRetentionDays))
		}
	}
	return errs
}
