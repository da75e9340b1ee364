package oci

import (
	"slices"
	"strconv"
)

// MaxPage bounds one page of a tag list or catalog: a larger n is answered
// with at most MaxPage entries and a Link to the rest, as the spec allows.
const MaxPage = 1000

// ParsePageSize parses the n query parameter: "" means no limit (-1).
func ParsePageSize(n string) (int, error) {
	if n == "" {
		return -1, nil
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0, CodePaginationInvalid.Errorf("n=%q: want a non-negative integer", truncate(n))
	}
	return v, nil
}

// Page returns the entries of names (sorted in place, byte order, which
// is the order the spec's pagination uses) that come after last, at most n
// of them (n < 0: every one, up to MaxPage when more is then reported),
// and whether more entries follow.
func Page(names []string, n int, last string) (page []string, more bool) {
	slices.Sort(names)
	names = slices.Compact(names)
	start := 0
	if last != "" {
		start, _ = slices.BinarySearch(names, last)
		if start < len(names) && names[start] == last {
			start++
		}
	}
	rest := names[start:]
	limit := n
	if limit < 0 {
		// No n: every entry, as the spec asks; the store bounds how many.
		return append([]string{}, rest...), false
	}
	if limit > MaxPage {
		limit = MaxPage
	}
	if len(rest) > limit {
		return append([]string{}, rest[:limit]...), true
	}
	return append([]string{}, rest...), false
}
