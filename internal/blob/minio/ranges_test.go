package minio

import (
	"slices"
	"testing"
)

// TestCopyRanges: every range lies in one source, the ranges cover every
// byte in order, and each but the last holds at least minPartSize.
func TestCopyRanges(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		sizes    []int64
		partSize int64
		want     []copyRange
	}{
		{"one source, even", []int64{20 * mib}, 10 * mib, []copyRange{{0, 0, 10 * mib}, {0, 10 * mib, 10 * mib}}},
		{"one source, short tail", []int64{21 * mib}, 10 * mib, []copyRange{{0, 0, 10 * mib}, {0, 10 * mib, 10 * mib}, {0, 20 * mib, mib}}},
		{"short tail of a first source joins its last range", []int64{21 * mib, 3}, 10 * mib,
			[]copyRange{{0, 0, 10 * mib}, {0, 10 * mib, 11 * mib}, {1, 0, 3}}},
		{"two whole sources", []int64{5 * mib, 5 * mib}, 64 * mib, []copyRange{{0, 0, 5 * mib}, {1, 0, 5 * mib}}},
		{"a source of exactly one range", []int64{10 * mib, 7}, 10 * mib, []copyRange{{0, 0, 10 * mib}, {1, 0, 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sources []copySource
			for _, n := range tt.sizes {
				sources = append(sources, copySource{size: n})
			}
			got := copyRanges(sources, tt.partSize)
			if !slices.Equal(got, tt.want) {
				t.Errorf("copyRanges = %v, want %v", got, tt.want)
			}
			for i, r := range got[:len(got)-1] {
				if r.length < minPartSize {
					t.Errorf("range %d of %d bytes is below the S3 minimum", i, r.length)
				}
			}
		})
	}
}
