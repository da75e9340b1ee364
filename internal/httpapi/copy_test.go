package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// verifying mimics the blob store's reader: it yields data and ends with
// io.EOF when good, or with a mismatch error alongside the last bytes.
type verifying struct {
	r       io.Reader
	corrupt bool
}

var errMismatch = errors.New("digest mismatch")

func (v *verifying) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10] // stores return short reads
	}
	n, err := v.r.Read(p)
	if err == io.EOF && v.corrupt {
		return n, errMismatch
	}
	return n, err
}

func TestCopyVerified(t *testing.T) {
	sizes := []int{0, 1, 4096, copyChunk - 1, copyChunk, copyChunk + 1, 3*copyChunk + 5}
	for _, size := range sizes {
		for _, corrupt := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/corrupt=%v", size, corrupt), func(t *testing.T) {
				data := bytes.Repeat([]byte{'x'}, size)
				var out bytes.Buffer
				n, err := copyVerified(&out, &verifying{r: bytes.NewReader(data), corrupt: corrupt})
				if n != int64(out.Len()) {
					t.Fatalf("reported %d bytes, wrote %d", n, out.Len())
				}
				if !corrupt {
					if err != nil || !bytes.Equal(out.Bytes(), data) {
						t.Fatalf("good content: %d bytes, err %v", out.Len(), err)
					}
					return
				}
				if !errors.Is(err, errMismatch) {
					t.Fatalf("corrupt content: err %v, want the mismatch", err)
				}
				if size <= copyChunk && (out.Len() != 0 || !errors.Is(err, errNothingWritten)) {
					t.Fatalf("small corrupt content: wrote %d bytes (err %v), want none before verification", out.Len(), err)
				}
				if size > 0 && out.Len() > size-min(size, copyChunk) {
					t.Fatalf("corrupt content: wrote %d of %d bytes, want at least one chunk held back", out.Len(), size)
				}
			})
		}
	}
}
