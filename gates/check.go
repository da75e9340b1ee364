package gates

import "context"

// Check is one gate check, built from a policy entry with its parameters
// already validated. Run judges the subject: an artifact that does not meet
// the policy is a Result with Status Failed, never a Go error, and a check
// that cannot decide (unreadable blob, cancelled context) returns Errored.
// Run must be safe for concurrent use and must not modify the subject.
type Check interface {
	// Name is the policy name of the check, e.g. "pickle-scan".
	Name() string
	// Run evaluates the check against s.
	Run(ctx context.Context, s *Subject) Result
}
