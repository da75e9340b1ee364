package httpapi

import (
	"errors"
	"io"
)

// copyChunk is the unit in which bodies stream: large model files move with
// fewer syscalls than io.Copy's 32 KiB default, and memory stays bounded at
// two chunks per download.
const copyChunk = 1 << 20

// errNothingWritten reports a verification failure detected before the
// first byte of the body went out, so the handler can still answer with an
// error status.
var errNothingWritten = errors.New("httpapi: body failed verification before the first byte")

// copyVerified copies src, a reader that verifies its content and reports a
// mismatch instead of io.EOF at the end, to dst while always holding back the
// last chunk read until src has ended cleanly. A client therefore never
// receives the complete body of corrupt content: bodies up to one chunk are
// verified before their first byte (the error wraps errNothingWritten), and
// a larger body is cut at least one chunk short of its declared length, so a
// plain HTTP client sees a truncated transfer, not a clean 200.
func copyVerified(dst io.Writer, src io.Reader) (written int64, err error) {
	held, next := make([]byte, 0, copyChunk), make([]byte, copyChunk)
	for {
		n, err := io.ReadFull(src, next)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			// src ended cleanly: its content verified.
			for _, b := range [][]byte{held, next[:n]} {
				m, werr := dst.Write(b)
				written += int64(m)
				if werr != nil {
					return written, werr
				}
			}
			return written, nil
		default:
			if written == 0 {
				return 0, errors.Join(errNothingWritten, err)
			}
			return written, err
		}
		if len(held) > 0 {
			m, werr := dst.Write(held)
			written += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		held, next = next[:n], held[:cap(held)]
	}
}
