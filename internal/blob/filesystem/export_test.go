package filesystem

// WithoutAnonymous makes d write every Put through a named temp file, the
// path of systems without O_TMPFILE, so that tests cover both.
func WithoutAnonymous(d *Driver) *Driver {
	d.anonymous = false
	return d
}

// Anonymous reports whether d writes Puts through unnamed files.
func Anonymous(d *Driver) bool { return d.anonymous }
