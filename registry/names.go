package registry

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
)

// MaxNameLength bounds an artifact name; it keeps bucket keys and database
// indexes well inside their limits.
const MaxNameLength = 200

// A name segment is DNS-label style: lowercase alphanumerics, with single
// '.', '_' or '-' separators inside. Separators cannot repeat or lead, so
// ".." and "." can never form a segment.
var nameSegment = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// ParseName validates an artifact name such as "fraud-detector" or
// "team/nlp/tokenizer" and returns it unchanged.
func ParseName(s string) (string, error) {
	bad := func(why string) error {
		return CodeInvalidName.Errorf("invalid artifact name %q: %s", truncate(s), why)
	}
	switch {
	case s == "":
		return "", bad("empty")
	case len(s) > MaxNameLength:
		return "", bad(fmt.Sprintf("longer than %d bytes", MaxNameLength))
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" {
			return "", bad("empty path segment (leading, trailing or double '/')")
		}
		if len(seg) > 63 {
			return "", bad("path segment longer than 63 bytes")
		}
		if !nameSegment.MatchString(seg) {
			return "", bad("segments are lowercase letters and digits separated by single '.', '_' or '-'")
		}
	}
	return s, nil
}

// Version is a strict semantic version. Canonical is the normalised form used
// as the identity ("1.2.3"); Original is what the publisher wrote ("v1.2.3").
type Version struct {
	Canonical string
	Original  string
	SemVer    *semver.Version
}

// MaxVersionLength bounds a version string.
const MaxVersionLength = 128

// ParseVersion accepts a strict semantic version, with an optional leading
// "v" that is normalised away. Ranges, wildcards and "latest" are refused:
// a version names exactly one immutable set of bytes.
func ParseVersion(s string) (Version, error) {
	bad := func(why string) error {
		return CodeInvalidVersion.Errorf("invalid version %q: %s", truncate(s), why)
	}
	if s == "" {
		return Version{}, bad("empty")
	}
	if len(s) > MaxVersionLength {
		return Version{}, bad(fmt.Sprintf("longer than %d bytes", MaxVersionLength))
	}
	if s == "latest" {
		return Version{}, bad(`"latest" is not a version; use a constraint to resolve one`)
	}
	v, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		return Version{}, bad("want strict semantic version MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]")
	}
	return Version{Canonical: v.String(), Original: s, SemVer: v}, nil
}

// ParseConstraint parses a semver constraint such as "^1.2" or ">=1.0, <2".
func ParseConstraint(s string) (*semver.Constraints, error) {
	if s == "" || len(s) > 256 {
		return nil, CodeInvalidVersion.Errorf("invalid version constraint %q", truncate(s))
	}
	c, err := semver.NewConstraint(s)
	if err != nil {
		return nil, CodeInvalidVersion.Errorf("invalid version constraint %q: %v", truncate(s), err)
	}
	return c, nil
}

// MaxPathLength bounds a file path inside an artifact.
const MaxPathLength = 1024

// ParseFilePath validates a file's path inside an artifact: relative,
// '/'-separated, no "." or ".." segments, no control characters. It is what a
// pull writes under its output directory, so it must never escape it.
func ParseFilePath(p string) (string, error) {
	bad := func(why string) error {
		return CodeInvalidPath.Errorf("invalid file path %q: %s", truncate(p), why)
	}
	switch {
	case p == "":
		return "", bad("empty")
	case len(p) > MaxPathLength:
		return "", bad(fmt.Sprintf("longer than %d bytes", MaxPathLength))
	case !utf8.ValidString(p):
		return "", bad("not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return "", bad("absolute paths are not allowed")
	case strings.Contains(p, `\`):
		return "", bad(`backslashes are not allowed`)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return "", bad("control characters are not allowed")
		}
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return "", bad("empty path segment")
		case ".", "..":
			return "", bad(`"." and ".." segments are not allowed`)
		}
		if len(seg) > 255 {
			return "", bad("path segment longer than 255 bytes")
		}
	}
	return p, nil
}

// Label keys are short identifiers; values are free text of bounded size.
var labelKey = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,62}[a-zA-Z0-9])?$`)

// ValidateLabels checks label keys and values.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > 64 {
		return CodeInvalidLabel.Errorf("at most 64 labels are allowed")
	}
	for k, v := range labels {
		if !labelKey.MatchString(k) {
			return CodeInvalidLabel.Errorf("invalid label key %q", truncate(k))
		}
		if len(v) > 1024 || !utf8.ValidString(v) {
			return CodeInvalidLabel.Errorf("label %q: value must be UTF-8 of at most 1024 bytes", k)
		}
	}
	return nil
}

// truncate keeps error messages bounded when echoing untrusted input.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
