package httpapi

import "io"

// copyBuffer copies with a 1 MiB buffer: large model files stream with
// fewer syscalls than io.Copy's 32 KiB default, and memory stays bounded.
func copyBuffer(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	return io.CopyBuffer(dst, src, buf)
}
