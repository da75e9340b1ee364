package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
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
// Blob uploads are monolithic: POST opens an upload (or, with ?digest=,
// is the whole upload; with ?mount=, a mount), and PUT ?digest= on its
// Location carries the whole body, which streams once, verified, to the
// blob's final content-addressed key (UploadBlob, as the REST API's blob
// PUT). Nothing of an upload is stored before that PUT, so an upload
// session holds no state: its id only names it in the Location. Chunked
// uploads (PATCH) would need the bytes somewhere before their digest is
// known, and are not served.

// uploadID is the form of the upload ids POST hands out.
var uploadID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (a *API) ociPush(c *gin.Context) {
	p, err := a.ociBegin(c)
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
	req.action = "" // an upload that has not started writes nothing
	var id [16]byte
	_, _ = rand.Read(id[:])
	c.Header("Location", "/v2/"+p.Repository()+"/blobs/uploads/"+hex.EncodeToString(id[:]))
	c.Header("Docker-Upload-UUID", hex.EncodeToString(id[:]))
	c.Header("Range", "0-0")
	c.Status(http.StatusAccepted)
	return nil
}

// ociUploadFinish answers PUT …/blobs/uploads/<id>?digest=: the whole blob.
func (a *API) ociUploadFinish(c *gin.Context, req *request, p oci.Path) error {
	if !uploadID.MatchString(p.Reference) {
		return oci.CodeBlobUploadUnknown.Errorf("upload %q was not opened here", truncate(p.Reference, 80))
	}
	d := c.Query("digest")
	if d == "" {
		return oci.CodeDigestInvalid.Errorf("PUT of an upload needs ?digest=")
	}
	return a.ociStoreBlob(c, req, p, d)
}

// ociStoreBlob streams the request body to the blob d, verified.
func (a *API) ociStoreBlob(c *gin.Context, req *request, p oci.Path, d string) error {
	req.target = d
	dgst, err := oci.ParseDigest(d)
	if err != nil {
		return err
	}
	if !oci.Stored(dgst) {
		return oci.CodeDigestInvalid.Errorf("digest %s: stagegate stores sha256 digests only", dgst)
	}
	if _, err := a.Registry.UploadBlob(c.Request.Context(), req.env, dgst, c.Request.Body, c.Request.ContentLength); err != nil {
		return err
	}
	c.Header("Location", "/v2/"+p.Repository()+"/blobs/"+dgst.String())
	c.Header("Docker-Content-Digest", dgst.String())
	c.Status(http.StatusCreated)
	return nil
}

// ociPutManifest publishes the version a manifest PUT by semver tag names.
// The manifest's layers are the files (each titled with its path, as oras
// does), its artifactType the kind ("application/vnd.stagegate.<kind>.v1";
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
			return nil, "", oci.CodeManifestInvalid.Errorf("layer %d has no %s annotation: every layer is a file, named by its path", i, registry.AnnotationTitle)
		}
		files = append(files, registry.File{Path: path, Digest: l.Digest, Size: l.Size, MediaType: string(l.MediaType)})
	}
	return files, kind, nil
}
