//go:build linux

package filesystem

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openAnonymous creates a file with no name in dir (O_TMPFILE): nothing
// to remove if the write fails or the process dies, and no directory entry
// created and deleted per Put.
func openAnonymous(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(anonymous)")), nil
}

// linkAnonymous gives f, from openAnonymous, the name p; it fails with
// EEXIST when p is taken, like link(2).
func linkAnonymous(f *os.File, p string) error {
	if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: p, Err: err}
	}
	return nil
}
