package gates

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is the outcome of one check. Failed and Errored are kept apart as
// in kargo: Failed means the artifact does not meet the policy (fix the
// artifact); Errored means the check could not decide for technical reasons
// (fix the system, then retry). Both block a promotion.
type Status string

// Check statuses.
const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Errored Status = "errored"
	Skipped Status = "skipped" // the check does not apply to this subject
)

// Family groups checks for reports and summaries.
type Family string

// Check families, as in the design.
const (
	FamilyValidation Family = "validation"
	FamilyTests      Family = "tests"
	FamilySecurity   Family = "security"
	FamilyProcess    Family = "process"
)

// Result is what one check reports. Checks set Status, Reason and Details;
// the engine fills Check, Family, Required and Duration.
type Result struct {
	Check    string        `json:"check"`
	Family   Family        `json:"family"`
	Status   Status        `json:"status"`
	Required bool          `json:"required"`
	Reason   string        `json:"reason"`            // one line, never a secret
	Details  any           `json:"details,omitempty"` // structured, JSON-encodable
	Duration time.Duration `json:"duration"`
}

// Blocking reports whether r stops a promotion.
func (r Result) Blocking() bool {
	return r.Required && r.Status != Passed && r.Status != Skipped
}

func pass(details any, format string, args ...any) Result {
	return Result{Status: Passed, Reason: fmt.Sprintf(format, args...), Details: details}
}

func fail(details any, format string, args ...any) Result {
	return Result{Status: Failed, Reason: fmt.Sprintf(format, args...), Details: details}
}

func errored(details any, format string, args ...any) Result {
	return Result{Status: Errored, Reason: fmt.Sprintf(format, args...), Details: details}
}

func skip(format string, args ...any) Result {
	return Result{Status: Skipped, Reason: fmt.Sprintf(format, args...)}
}

// printable escapes control characters and Unicode line separators in
// text taken from an artifact or a report (test names, pickle globals,
// archive member names), as Go would quote them. Such text ends up in a
// Reason, which must stay one line: a newline in a test name could
// otherwise forge a line of gate output, and terminal escapes could
// rewrite it.
func printable(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if needsEscape(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError
}

// foldLines puts a parser's message on one line for a Reason: yaml.v3, for
// one, lists its type errors on separate indented lines.
func foldLines(s string) string {
	return printable(strings.Join(strings.Fields(s), " "))
}
