package registry

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Reads the OCI Distribution API needs beyond the REST API's: a manifest
// addressed by its digest, and a blob addressed by its digest alone.

// VersionByManifest returns the version of name in e whose manifest has
// digest dgst; none is version_not_found. A manifest is only ever found
// under the name it was published as, so a digest cannot be read through
// another name.
func (s *Service) VersionByManifest(ctx context.Context, e Env, name string, dgst v1.Hash) (VersionRecord, error) {
	versions, err := s.ListVersions(ctx, e, name)
	if err != nil {
		return VersionRecord{}, err
	}
	for _, v := range versions {
		if v.ManifestDigest == dgst {
			return v, nil
		}
	}
	return VersionRecord{}, CodeVersionNotFound.Errorf("no version of %s in %s has manifest %s", name, e.Name(), dgst)
}

// OpenBlob streams the blob dgst of e's bucket. The reader verifies the
// digest as it goes and fails at the end instead of io.EOF when the stored
// bytes are corrupt. A missing blob is not_found.
func (s *Service) OpenBlob(ctx context.Context, e Env, dgst v1.Hash) (io.ReadCloser, int64, error) {
	rc, size, err := e.Blobs().OpenBlob(ctx, dgst)
	if errors.Is(err, ErrObjectNotFound) {
		return nil, 0, CodeNotFound.Errorf("blob %s is not stored in %s", dgst, e.Name())
	}
	if err != nil {
		return nil, 0, StorageError("opening "+dgst.String(), err)
	}
	return rc, size, nil
}
