// Package rollback will make an earlier release of a name current again in
// one environment by appending a new release (DESIGN.md §4). It is built by
// its own issue; the package exists so the layout is stable.
package rollback
