package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/registry"
)

// serveEvidence serves GET …/versions/<v>/evidence/<type>[?digest=]: the
// document as it was attached, under the media type recorded with it. A
// version may carry several documents of one type (each upload is kept, and
// the gates judge them all); ?digest= picks one of those the listing names,
// and without it the newest is served, the one a PUT just attached.
//
// It streams like a file download (serveFile): the stored bytes are checked
// against the digest recorded at attach time, and a document that fails is
// never handed out whole. Evidence is small (gates.MaxEvidenceSize), so in
// practice a mismatch is a 500 before the first byte.
func (a *API) serveEvidence(c *gin.Context, req *request, name, version, typ string) error {
	ctx := c.Request.Context()
	docs, err := a.Promotions.ListEvidence(ctx, req.env, name, version)
	if err != nil {
		return err
	}
	want := c.Query("digest")
	if want != "" {
		if _, err := registry.ParseDigest(want); err != nil {
			return err
		}
	}
	var doc *registry.Evidence
	for i := range docs { // oldest first: the last match is the newest
		if docs[i].Type == typ && (want == "" || docs[i].Digest.String() == want) {
			doc = &docs[i]
		}
	}
	if doc == nil {
		what := typ
		if want != "" {
			what += " " + want
		}
		return registry.CodeEvidenceNotFound.Errorf("%s@%s has no %s evidence in %s", name, version, truncate(what, 120), req.env.Name())
	}
	rc, _, err := req.env.Blobs().OpenBlob(ctx, doc.Digest)
	if err != nil {
		return registry.StorageError("opening evidence "+doc.Digest.String(), err)
	}
	defer rc.Close()
	return a.serveVerified(c, req, rc, "evidence", doc.Digest, doc.Size, doc.MediaType)
}
