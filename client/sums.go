package client

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxSumsLine bounds one line of a checksum file: a digest, a separator
// and a path.
const maxSumsLine = 64 + 2 + 4096

// ApplySHA256Sums sets the digest of every file in files that sums lists,
// so that Push sends it without hashing it first: a CI step that already
// computed `sha256sum` of a large model saves reading it twice. sums is in
// the format `sha256sum` writes and `sha256sum -c` reads: a lower- or
// upper-case hex digest, a space, a space or '*', and the path as given on
// the command line; paths are compared after filepath.Clean, so "./m.bin"
// and "m.bin" are one file. Lines naming files that are not pushed are
// ignored (a checksum file usually covers a whole build); pushed files it
// does not name are hashed as before. A digest that does not match the
// bytes costs nothing but the upload: the server refuses it
// (digest_mismatch) and stores nothing.
func ApplySHA256Sums(files []LocalFile, sums io.Reader) error {
	known, err := parseSHA256Sums(sums)
	if err != nil {
		return err
	}
	for i := range files {
		if d, ok := known[filepath.Clean(files[i].Disk)]; ok {
			files[i].Digest = d
		}
	}
	return nil
}

// parseSHA256Sums reads a sha256sum file into digests by cleaned path.
func parseSHA256Sums(r io.Reader) (map[string]v1.Hash, error) {
	out := map[string]v1.Hash{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSumsLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < 64+2+1 || (line[65] != ' ' && line[65] != '*') || line[64] != ' ' {
			return nil, fmt.Errorf("checksum line %d: want `<sha256 hex>  <path>` as sha256sum writes it", n)
		}
		d, err := v1.NewHash("sha256:" + strings.ToLower(line[:64]))
		if err != nil {
			return nil, fmt.Errorf("checksum line %d: %w", n, err)
		}
		path := filepath.Clean(line[66:])
		if prev, dup := out[path]; dup && prev != d {
			return nil, fmt.Errorf("checksum line %d: %s is listed twice with different digests", n, line[66:])
		}
		out[path] = d
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading checksums: %w", err)
	}
	return out, nil
}
