package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// Pushing over the OCI API, into the first environment only: blob uploads
// and a manifest PUT by a semver tag, which is a publish.
//
// A monolithic upload (POST ?digest=, or POST then one PUT ?digest= with
// the whole body, as oras does) streams once, verified, to the blob's
// final content-addressed key (UploadBlob, as the REST API's blob PUT).
// A chunked upload (POST, PATCH…, PUT ?digest=, as crane and docker do)
// streams its chunks to the upload's keys; when the PUT names the digest
// they become the blob where they lie, or, for a small blob, are written
// whole to its key (package oci, upload.go).

func (a *API) ociPush(c *gin.Context) {
	p, err := a.ociBegin(c)
	a.ociPushPath(c, p, err)
}

// ociPushPath serves a push request whose path ociBegin parsed (err: why
// it did not parse), and the status of an upload (GET, HEAD).
func (a *API) ociPushPath(c *gin.Context, p oci.Path, err error) {
	if err != nil {
		a.handle("", "", func(*gin.Context, *request) error { return err })(c)
		return
	}
	action, perm := audit.ActionBlobUpload, auth.PermPublish
	var h handlerFunc
	switch {
	case p.Endpoint == oci.UploadStart && c.Request.Method == http.MethodPost:
		// Blob uploads share the per-key cap on uploads in flight with the REST API.
		h = a.uploadSlot(func(c *gin.Context, req *request) error { return a.ociUploadStart(c, req, p) })
	case p.Endpoint == oci.Upload && c.Request.Method == http.MethodPut:
		h = a.uploadSlot(func(c *gin.Context, req *request) error { return a.ociUploadFinish(c, req, p) })
	case p.Endpoint == oci.Upload && c.Request.Method == http.MethodPatch:
		h = a.uploadSlot(func(c *gin.Context, req *request) error { return a.ociUploadChunk(c, req, p) })
	case p.Endpoint == oci.Upload && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead):
		action = ""
		h = func(c *gin.Context, req *request) error { return a.ociUploadStatus(c, req, p) }
	case p.Endpoint == oci.Manifest && c.Request.Method == http.MethodPut:
		action = audit.ActionPublish
		h = func(c *gin.Context, req *request) error { return a.ociPutManifest(c, req, p) }
	default:
		action = ""
		if p.Env == "" {
			perm = auth.PermRead
		}
		h = func(c *gin.Context, _ *request) error {
			return oci.CodeUnsupported.Errorf("%s is not served on %s", c.Request.Method, p.Endpoint)
		}
	}
	a.handle(perm, action, func(c *gin.Context, req *request) error {
		if !req.env.AcceptsPublish() {
			// Releases enter other environments by promotion only.
			return oci.CodeUnsupported.Errorf("environment %q takes no pushes: push into %q and promote", req.env.Name(), a.Environments.First().Name())
		}
		return h(c, req)
	})(c)
}

// ociUploadStart answers POST …/blobs/uploads/: a monolithic upload with
// ?digest=, a mount with ?mount=, else the Location for the PUT.
func (a *API) ociUploadStart(c *gin.Context, req *request, p oci.Path) error {
	if d := c.Query("digest"); d != "" {
		return a.ociStoreBlob(c, req, p, d)
	}
	if m := c.Query("mount"); m != "" {
		req.target = m
		dgst, err := oci.ParseDigest(m)
		if err != nil {
			return err
		}
		// Blobs belong to the environment, so every blob stored in it is
		// already "in" every repository of it: a mount is a lookup. The
		// from repository needs no check: the caller may read all of the
		// environment, and no other environment's blobs are reachable.
		if oci.Stored(dgst) {
			if _, err := a.Registry.StatBlob(c.Request.Context(), req.env, dgst); err == nil {
				req.action = "" // nothing was uploaded: not an audited write
				c.Header("Location", "/v2/"+p.Repository()+"/blobs/"+dgst.String())
				c.Header("Docker-Content-Digest", dgst.String())
				c.Status(http.StatusCreated)
				return nil
			} else if registry.KindOf(err) != registry.NotFound {
				return err
			}
		}
		// Not there: an ordinary upload, as the spec says.
	}
	req.action = "" // an upload that has not received a blob is not an audited write
	up, err := oci.StartUpload(c.Request.Context(), req.env)
	if err != nil {
		return err
	}
	ociUploadAnswer(c, p, up, http.StatusAccepted)
	return nil
}

// ociUploadAnswer writes where an upload stands: its Location (which
// carries the offset reached, for the next request), Range and id.
func ociUploadAnswer(c *gin.Context, p oci.Path, up oci.UploadPosition, status int) {
	c.Header("Location", "/v2/"+p.Repository()+"/blobs/uploads/"+up.ID+"?offset="+strconv.FormatInt(up.Offset, 10))
	c.Header("Docker-Upload-UUID", up.ID)
	c.Header("Range", oci.RangeHeader(up.Offset))
	c.Header("Content-Length", "0")
	c.Status(status)
}

// uploadOffset reads the offset an upload's Location carries (0 when a
// client dropped it: the upload's first request).
func uploadOffset(c *gin.Context) (int64, error) {
	o := c.Query("offset")
	if o == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(o, 10, 64)
	if err != nil || n < 0 {
		return 0, oci.CodeBlobUploadInvalid.Errorf("offset %q is not a byte count: use the Location of the upload's last answer", truncate(o, 40))
	}
	return n, nil
}

// ociUploadChunk answers PATCH …/blobs/uploads/<id>: one chunk, with a
// Content-Range or streamed to its end.
func (a *API) ociUploadChunk(c *gin.Context, req *request, p oci.Path) error {
	req.action = "" // staged bytes are no blob yet; the PUT that stores one is audited
	offset, err := uploadOffset(c)
	if err != nil {
		return err
	}
	start, size, err := oci.ParseContentRange(c.GetHeader("Content-Range"))
	if err != nil {
		return err
	}
	if cl := c.Request.ContentLength; cl >= 0 {
		if size >= 0 && size != cl {
			return oci.CodeBlobUploadInvalid.Errorf("Content-Range names %d bytes, Content-Length %d", size, cl)
		}
		size = cl
	}
	up, err := oci.AppendUpload(c.Request.Context(), req.env, p.Reference, offset, start, c.Request.Body, size, a.Registry.Limits().MaxFileSize)
	if err != nil {
		return err
	}
	ociUploadAnswer(c, p, up, http.StatusAccepted)
	return nil
}

// ociUploadStatus answers GET …/blobs/uploads/<id>: where it stands.
func (a *API) ociUploadStatus(c *gin.Context, req *request, p oci.Path) error {
	offset, err := uploadOffset(c)
	if err != nil {
		return err
	}
	if err := oci.CheckUpload(c.Request.Context(), req.env, p.Reference, offset); err != nil {
		return err
	}
	ociUploadAnswer(c, p, oci.UploadPosition{ID: p.Reference, Offset: offset}, http.StatusNoContent)
	return nil
}

// ociUploadFinish answers PUT …/blobs/uploads/<id>?digest=, with the
// upload's last chunk or its whole body. An upload with no chunk yet whose
// PUT carries the body is monolithic: it streams once to the blob's key.
func (a *API) ociUploadFinish(c *gin.Context, req *request, p oci.Path) error {
	ctx := c.Request.Context()
	d := c.Query("digest")
	if d == "" {
		return oci.CodeDigestInvalid.Errorf("PUT of an upload needs ?digest=")
	}
	dgst, err := blobDigest(req, d)
	if err != nil {
		return err
	}
	offset, err := uploadOffset(c)
	if err != nil {
		return err
	}
	start, _, err := oci.ParseContentRange(c.GetHeader("Content-Range"))
	if err != nil {
		return err
	}
	body, hasBody, err := requestBody(c)
	if err != nil {
		return err
	}
	if offset == 0 && hasBody && start <= 0 {
		// Monolithic: the upload must exist before its body is stored
		// (the chunked paths below check it themselves).
		if err := oci.CheckUpload(ctx, req.env, p.Reference, offset); err != nil {
			return err
		}
		if err := a.ociStoreBlobFrom(c, req, p, dgst, body, c.Request.ContentLength); err != nil {
			return err
		}
		oci.DiscardUpload(context.WithoutCancel(ctx), req.env, p.Reference, 0)
		return nil
	}
	if hasBody {
		up, err := oci.AppendUpload(ctx, req.env, p.Reference, offset, start, body, c.Request.ContentLength, a.Registry.Limits().MaxFileSize)
		if err != nil {
			return err
		}
		offset = up.Offset
	}
	content, size, err := oci.FinishUpload(ctx, req.env, p.Reference, offset, dgst)
	if err != nil {
		return err
	}
	if content == nil {
		// Kept where its chunks lie (stream-once): stored already.
		ociBlobCreated(c, p, dgst)
		return nil
	}
	defer content.Close()
	if err := a.ociStoreBlobFrom(c, req, p, dgst, content, size); err != nil {
		return err
	}
	oci.DiscardUpload(context.WithoutCancel(ctx), req.env, p.Reference, offset)
	return nil
}

// requestBody tells an empty PUT (the usual end of a chunked upload) from
// one with bytes, also when the length is not announced.
func requestBody(c *gin.Context) (io.Reader, bool, error) {
	switch cl := c.Request.ContentLength; {
	case cl == 0:
		return nil, false, nil
	case cl > 0:
		return c.Request.Body, true, nil
	}
	br := bufio.NewReader(c.Request.Body)
	if _, err := br.Peek(1); err == io.EOF {
		return nil, false, nil
	} else if err != nil {
		return nil, false, registry.CodeIncompleteBody.Errorf("reading the body: %v", err)
	}
	return br, true, nil
}

// ociStoreBlob streams the request body to the blob d, verified.
func (a *API) ociStoreBlob(c *gin.Context, req *request, p oci.Path, d string) error {
	dgst, err := blobDigest(req, d)
	if err != nil {
		return err
	}
	return a.ociStoreBlobFrom(c, req, p, dgst, c.Request.Body, c.Request.ContentLength)
}

// blobDigest reads the digest an upload names, the request's target.
func blobDigest(req *request, d string) (v1.Hash, error) {
	req.target = d
	dgst, err := oci.ParseDigest(d)
	if err != nil {
		return v1.Hash{}, err
	}
	if !oci.Stored(dgst) {
		return v1.Hash{}, oci.CodeDigestInvalid.Errorf("digest %s: stagegate stores sha256 digests only", dgst)
	}
	return dgst, nil
}

// ociStoreBlobFrom streams r (size bytes, -1 unknown) to the blob dgst,
// verified, and answers 201.
func (a *API) ociStoreBlobFrom(c *gin.Context, req *request, p oci.Path, dgst v1.Hash, r io.Reader, size int64) error {
	if _, err := a.Registry.UploadBlob(c.Request.Context(), req.env, dgst, r, size); err != nil {
		return err
	}
	ociBlobCreated(c, p, dgst)
	return nil
}

// ociBlobCreated answers an upload that stored the blob dgst.
func ociBlobCreated(c *gin.Context, p oci.Path, dgst v1.Hash) {
	c.Header("Location", "/v2/"+p.Repository()+"/blobs/"+dgst.String())
	c.Header("Docker-Content-Digest", dgst.String())
	c.Status(http.StatusCreated)
}

// ociPutManifest publishes the version a manifest PUT by semver tag names.
// The manifest's layers are the files (each titled with its path, as oras
// does; an untitled layer, as in an image crane or docker pushes, is the
// file layer-<nnnn> by its place), its artifactType the kind ("application/vnd.stagegate.<kind>.v1";
// anything else is generic). stagegate stores the version in its own
// manifest form (its config blob, layers sorted by path), so the stored
// digest is not the pushed one: the answer's Location names the stored
// manifest, and it carries no Docker-Content-Digest, which a client would
// compare with the digest of what it sent.
func (a *API) ociPutManifest(c *gin.Context, req *request, p oci.Path) error {
	ref, err := oci.ParseReference(p.Reference)
	if err != nil {
		return err
	}
	if ref.IsDigest() {
		return oci.CodeUnsupported.Errorf("push a manifest by a semantic-version tag, not by digest: a version is a publish")
	}
	req.target = p.Name + "@" + ref.Tag
	if _, err := registry.ParseVersion(ref.Tag); err != nil {
		return oci.CodeTagInvalid.Errorf("tag %q is not a semantic version: tags are versions, and versions are immutable", truncate(ref.Tag, 80))
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, registry.MaxManifestSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return registry.CodeTooLarge.Errorf("manifest is over %d bytes", registry.MaxManifestSize)
		}
		return registry.CodeIncompleteBody.Errorf("reading the manifest: %v", err)
	}
	files, kind, err := ociManifestFiles(data)
	if err != nil {
		return err
	}
	res, err := a.Registry.Publish(c.Request.Context(), req.env, req.actor, registry.PublishRequest{
		Name: p.Name, Version: ref.Tag, Kind: string(kind), Files: files,
	})
	if err != nil {
		return err
	}
	req.audited = true
	c.Header("Location", "/v2/"+p.Repository()+"/manifests/"+res.Record.ManifestDigest.String())
	c.Status(http.StatusCreated)
	return nil
}

// ociManifestFiles reads the files and kind of a pushed OCI image manifest.
func ociManifestFiles(data []byte) ([]registry.File, registry.Kind, error) {
	var m v1.Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, "", oci.CodeManifestInvalid.Errorf("the manifest is not JSON: %s", truncate(err.Error(), 200))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", oci.CodeManifestInvalid.Errorf("data after the manifest's JSON value")
	}
	if m.SchemaVersion != 2 || (m.MediaType != "" && m.MediaType != types.OCIManifestSchema1) {
		return nil, "", oci.CodeManifestInvalid.Errorf("only OCI image manifests (%s) are published; got media type %q", types.OCIManifestSchema1, truncate(string(m.MediaType), 100))
	}
	if m.Subject != nil {
		return nil, "", oci.CodeManifestInvalid.Errorf("manifests with a subject (referrers) are not stored: stagegate signs and attests versions itself")
	}
	kind := registry.KindGeneric
	if at, ok := strings.CutPrefix(m.ArtifactType, "application/vnd.stagegate."); ok {
		if k, err := registry.ParseKind(strings.TrimSuffix(at, ".v1")); err == nil && strings.HasSuffix(at, ".v1") {
			kind = k
		}
	}
	files := make([]registry.File, 0, len(m.Layers))
	for i, l := range m.Layers {
		path := l.Annotations[registry.AnnotationTitle]
		if path == "" {
			// An image's layers (crane, docker) have no title: each is a
			// file named by its place in the image.
			path = fmt.Sprintf("layer-%04d", i)
		}
		files = append(files, registry.File{Path: path, Digest: l.Digest, Size: l.Size, MediaType: string(l.MediaType)})
	}
	return files, kind, nil
}
