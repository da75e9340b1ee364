package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// The OCI Distribution API, /v2/<environment>/<name>/…: every environment's
// versions as OCI manifests and blobs, for crane, oras, skopeo, docker and
// cosign. A request goes through handle like any REST request — the same
// API keys, the same environment binding (the repository's first segment is
// the environment, which the credential must be bound to), the same audit of
// refusals — and only its errors are written in the OCI envelope.

const (
	// ctxOCIEndpoint marks a request of the OCI API: writeError then
	// answers in the OCI error envelope, naming what the endpoint looks for.
	ctxOCIEndpoint = "stagegate.ociEndpoint"
	// ociChallenge is the 401 challenge. Basic, because it is the scheme
	// every registry client answers with a stored credential without a
	// token service: docker login, crane auth login and oras login all save
	// a username and password and send them as Basic on this challenge,
	// and the API key is the password. A Bearer challenge would send them
	// to a token endpoint first (the docker token flow), which stagegate
	// does not need: the API key already is a bearer token, and it is
	// accepted as one too.
	ociChallenge = `Basic realm="stagegate"`
	// ociAPIVersion is the header docker clients look for on /v2/.
	ociAPIVersion = "registry/2.0"
)

// ociRoutes registers the OCI API. One wildcard per method: repository
// names contain '/', which gin's parameters cannot span, so oci.ParsePath
// takes the path apart.
func (a *API) ociRoutes(r *gin.Engine) {
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(m, "/v2/*path", a.ociRead)
	}
	// Pushes go into the first environment only (ociPush). Releases leave
	// an environment only by rollback, so DELETE answers UNSUPPORTED once
	// the caller is authenticated and bound: an anonymous or foreign
	// caller learns nothing more than from a read.
	for _, m := range []string{http.MethodPut, http.MethodPost} {
		r.Handle(m, "/v2/*path", a.ociPush)
	}
	r.Handle(http.MethodPatch, "/v2/*path", a.ociPush)
	r.Handle(http.MethodDelete, "/v2/*path", a.ociUnsupported(auth.PermRead))
}

// ociBegin prepares a request of the OCI API for handle: it marks it, takes
// the path apart and names the environment to bind. A path that does not
// parse is answered after authentication, so that only a caller with a key
// learns why.
func (a *API) ociBegin(c *gin.Context) (oci.Path, error) {
	c.Header("Docker-Distribution-API-Version", ociAPIVersion)
	ociCredential(c.Request)
	p, err := oci.ParsePath(c.Param("path"))
	c.Set(ctxOCIEndpoint, p.Endpoint)
	if err == nil && p.Env != "" {
		// handle binds the environment the route names through :env.
		c.Params = append(c.Params, gin.Param{Key: "env", Value: p.Env})
	}
	return p, err
}

// ociCredential lets registry clients authenticate the way they can: HTTP
// Basic with the API key as the password (any username) is rewritten into
// the Bearer form that handle authenticates, so both schemes reach the
// one authentication path.
func ociCredential(r *http.Request) {
	if _, password, ok := r.BasicAuth(); ok {
		r.Header.Set("Authorization", "Bearer "+password)
	}
}

// ociRead serves GET and HEAD.
func (a *API) ociRead(c *gin.Context) {
	p, err := a.ociBegin(c)
	if err != nil {
		a.handle("", "", func(*gin.Context, *request) error { return err })(c)
		return
	}
	var h handlerFunc
	perm := auth.PermRead
	switch p.Endpoint {
	case oci.Base:
		// The version check: any valid credential, no environment.
		perm, h = "", func(c *gin.Context, _ *request) error {
			if c.Request.Method == http.MethodHead {
				c.Status(http.StatusOK)
			} else {
				c.JSON(http.StatusOK, gin.H{})
			}
			return nil
		}
	case oci.Catalog:
		h = a.ociCatalog
	case oci.Tags:
		h = func(c *gin.Context, req *request) error { return a.ociTags(c, req, p) }
	case oci.Manifest:
		h = func(c *gin.Context, req *request) error { return a.ociManifest(c, req, p) }
	case oci.Blob:
		h = func(c *gin.Context, req *request) error { return a.ociBlob(c, req, p) }
	case oci.Referrers:
		h = func(c *gin.Context, req *request) error { return a.ociReferrers(c, req, p) }
	case oci.Upload:
		// An upload's status: a publisher's question, answered with the
		// pushes' rules.
		a.ociPushPath(c, p, nil)
		return
	default:
		h = func(c *gin.Context, _ *request) error {
			return oci.CodeUnsupported.Errorf("%s is not served on %s", c.Request.Method, p.Endpoint)
		}
	}
	a.handle(perm, "", h)(c)
}

func (a *API) ociUnsupported(perm auth.Permission) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.ociBegin(c)
		if err != nil {
			a.handle("", "", func(*gin.Context, *request) error { return err })(c)
			return
		}
		need := perm
		if p.Env == "" {
			// _catalog and /v2/ act on the credential's own environment.
			need = auth.PermRead
		}
		a.handle(need, "", func(c *gin.Context, _ *request) error {
			if c.Request.Method == http.MethodDelete {
				return oci.CodeUnsupported.Errorf("nothing is deleted over the OCI API: versions are immutable, and a release leaves an environment only by rollback")
			}
			return oci.CodeUnsupported.Errorf("chunked uploads (PATCH) are not served: upload a blob in one PUT (POST, then PUT ?digest= with the whole body)")
		})(c)
	}
}

// writeOCIError writes err in the OCI error envelope and returns the status.
func (a *API) writeOCIError(c *gin.Context, err error, endpoint oci.Endpoint) int {
	e := oci.Wire(err, endpoint)
	if e.Status >= 500 {
		a.Logger.Error("request failed", "request_id", c.GetString(ctxRequestID), "code", e.Code.Name, "err", err)
	}
	if e.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", ociChallenge)
	}
	if c.Request.Method == http.MethodHead {
		c.Status(e.Status)
	} else {
		c.JSON(e.Status, e.Body())
	}
	c.Abort()
	return e.Status
}

func (a *API) ociCatalog(c *gin.Context, req *request) error {
	n, err := oci.ParsePageSize(c.Query("n"))
	if err != nil {
		return err
	}
	arts, err := a.Registry.ListArtifacts(c.Request.Context(), req.env)
	if err != nil {
		return err
	}
	repos := make([]string, len(arts))
	for i, art := range arts {
		repos[i] = req.env.Name() + "/" + art.Name
	}
	page, more := oci.Page(repos, n, c.Query("last"))
	if more {
		ociNextLink(c, "/v2/_catalog", n, page[len(page)-1])
	}
	ociJSON(c, http.StatusOK, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
	return nil
}

func (a *API) ociTags(c *gin.Context, req *request, p oci.Path) error {
	n, err := oci.ParsePageSize(c.Query("n"))
	if err != nil {
		return err
	}
	versions, err := a.ociVersions(c, req, p)
	if err != nil {
		return err
	}
	tags := make([]string, len(versions))
	for i, v := range versions {
		tags[i] = v.Version
	}
	page, more := oci.Page(tags, n, c.Query("last"))
	if more {
		ociNextLink(c, "/v2/"+p.Repository()+"/tags/list", n, page[len(page)-1])
	}
	ociJSON(c, http.StatusOK, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{p.Repository(), page})
	return nil
}

// ociVersions lists the versions of p's name; a name without any is
// NAME_UNKNOWN.
func (a *API) ociVersions(c *gin.Context, req *request, p oci.Path) ([]registry.VersionRecord, error) {
	versions, err := a.Registry.ListVersions(c.Request.Context(), req.env, p.Name)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, oci.CodeNameUnknown.Errorf("repository %s is not known in %s", p.Repository(), req.env.Name())
	}
	return versions, nil
}

func ociNextLink(c *gin.Context, path string, n int, last string) {
	q := url.Values{"last": {last}}
	if n >= 0 {
		q.Set("n", strconv.Itoa(min(n, oci.MaxPage)))
	}
	c.Header("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

// ociJSON writes v with an explicit media type (gin's c.JSON appends a
// charset, which OCI clients compare against manifest media types).
func ociJSON(c *gin.Context, status int, mediaType string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own, marshalable types reach here
	}
	c.Header("Content-Length", strconv.Itoa(len(data)))
	if c.Request.Method == http.MethodHead {
		c.Header("Content-Type", mediaType)
		c.Status(status)
		return
	}
	c.Data(status, mediaType, data)
}

// ociManifest serves a manifest by tag (a version; "v1.2.0" and "1.2.0"
// are the same one) or by digest, as its exact stored bytes.
func (a *API) ociManifest(c *gin.Context, req *request, p oci.Path) error {
	ctx := c.Request.Context()
	ref, err := oci.ParseReference(p.Reference)
	if err != nil {
		return err
	}
	version := ref.Tag
	if ref.IsDigest() {
		if !oci.Stored(ref.Digest) {
			return oci.CodeManifestUnknown.Errorf("manifest %s: stagegate stores sha256 digests only", ref.Digest)
		}
		if _, err := a.ociVersions(c, req, p); err != nil {
			return err
		}
		rec, err := a.Registry.VersionByManifest(ctx, req.env, p.Name, ref.Digest)
		if registry.KindOf(err) == registry.NotFound {
			// Not a version: perhaps one of its cosign manifests.
			data, isManifest, found, cerr := a.findCosign(ctx, c, req, p, ref.Digest)
			if cerr != nil {
				return cerr
			}
			if found && isManifest {
				writeCosignManifest(c, oci.CosignManifest{Manifest: data, Digest: ref.Digest})
				return nil
			}
		}
		if err != nil {
			return err
		}
		version = rec.Version
	} else if subject, kind, ok := oci.ParseCosignTag(ref.Tag); ok {
		return a.ociCosignManifestByTag(c, req, p, subject, kind)
	} else if _, err := registry.ParseVersion(ref.Tag); err != nil {
		// Tags are versions: a tag that is no version names nothing.
		return oci.CodeManifestUnknown.Errorf("%s:%s: tags are semantic versions, and %q is none", p.Repository(), ref.Tag, ref.Tag)
	}
	data, rec, err := a.Registry.Manifest(ctx, req.env, p.Name, version)
	if err != nil {
		if registry.KindOf(err) == registry.NotFound {
			if _, nerr := a.ociVersions(c, req, p); nerr != nil {
				return nerr
			}
		}
		return err
	}
	var head struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(data, &head) != nil || head.MediaType == "" {
		return registry.CodeInternal.Errorf("stored manifest %s has no mediaType", rec.ManifestDigest)
	}
	writeContent(c, rec.ManifestDigest, head.MediaType, data)
	return nil
}

// writeContent answers a GET or HEAD with content held whole in memory
// (a manifest, a built cosign blob), addressed by its digest.
func writeContent(c *gin.Context, dgst v1.Hash, mediaType string, data []byte) {
	c.Header("Docker-Content-Digest", dgst.String())
	c.Header("ETag", `"`+dgst.String()+`"`)
	c.Header("Content-Length", strconv.Itoa(len(data)))
	c.Header("Content-Type", mediaType)
	c.Status(http.StatusOK)
	if c.Request.Method != http.MethodHead {
		_, _ = c.Writer.Write(data)
	}
}

// ociBlob streams a blob of the environment, verified as the file route
// does (copyVerified): a client never receives the whole body of corrupt
// content. Blobs belong to the environment, not to a name, and are served
// under any valid name: the credential may read every name there, so
// nothing is disclosed, and a client pushing a new name finds the blobs it
// uploaded before its manifest.
func (a *API) ociBlob(c *gin.Context, req *request, p oci.Path) error {
	dgst, err := oci.ParseDigest(p.Reference)
	if err != nil {
		return err
	}
	if !oci.Stored(dgst) {
		return oci.CodeBlobUnknown.Errorf("blob %s: stagegate stores sha256 digests only", dgst)
	}
	rc, size, err := a.Registry.OpenBlob(c.Request.Context(), req.env, dgst)
	if registry.KindOf(err) == registry.NotFound && p.Name != "" {
		// Not stored: perhaps the config or payload of one of the name's
		// cosign manifests, which are built, not stored.
		data, isManifest, found, cerr := a.findCosign(c.Request.Context(), c, req, p, dgst)
		if cerr != nil {
			return cerr
		}
		if found && !isManifest {
			writeCosignBlob(c, dgst, data)
			return nil
		}
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	c.Header("Docker-Content-Digest", dgst.String())
	c.Header("ETag", `"`+dgst.String()+`"`)
	c.Header("Accept-Ranges", "bytes")
	c.Header("Content-Type", "application/octet-stream")
	start, length, partial, ok := parseRange(c.GetHeader("Range"), size)
	if !ok {
		c.Header("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		return &oci.Error{Code: oci.CodeBlobUnknown, Status: http.StatusRequestedRangeNotSatisfiable,
			Message: "the range is outside the blob of " + strconv.FormatInt(size, 10) + " bytes"}
	}
	c.Header("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		c.Header("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+length-1, 10)+"/"+strconv.FormatInt(size, 10))
	}
	if c.Request.Method == http.MethodHead {
		c.Status(status)
		return nil
	}
	if partial {
		err = copyVerifiedRange(c, status, rc, start, length)
	} else {
		c.Status(status)
		_, err = copyVerified(c.Writer, rc)
	}
	if err != nil {
		if errors.Is(err, errNothingWritten) {
			for _, h := range []string{"Content-Length", "Content-Range", "Content-Type", "Accept-Ranges", "Docker-Content-Digest", "ETag"} {
				c.Writer.Header().Del(h)
			}
			return registry.StorageError("reading "+dgst.String(), err)
		}
		if errors.Is(err, registry.ErrDigestMismatch) {
			a.Logger.Error("blob download cut: stored content does not match its digest", "request_id", req.actor.RequestID,
				"environment", req.env.Name(), "digest", dgst.String(), "err", err)
		} else {
			a.Logger.Warn("blob download aborted", "request_id", req.actor.RequestID, "digest", dgst.String(), "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// parseRange reads a single byte range of a blob of size bytes. ok is
// false for a range that is well-formed but unsatisfiable (416); a header
// that is absent, malformed or asks for several ranges is served whole
// (partial false), which RFC 9110 allows.
func parseRange(h string, size int64) (start, length int64, partial, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size, false, true
	}
	if first == "" {
		// A suffix range: the last n bytes.
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, size, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, size, false, true
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, size, false, true
		}
		e = min(e, size-1)
	}
	if s >= size {
		return 0, 0, false, false
	}
	return s, e - s + 1, true, true
}

// copyVerifiedRange serves bytes [start, start+length) of src, a reader
// that verifies the whole blob at its end. The storage API reads blobs
// whole, so the range is cut from the full stream, and its last byte is
// held back until the rest of the blob has been read and verified: a
// client never receives a complete range of corrupt content. The cost is
// reading the blob to its end on the server for every range.
func copyVerifiedRange(c *gin.Context, status int, src io.Reader, start, length int64) error {
	if _, err := io.CopyN(io.Discard, src, start); err != nil {
		return errors.Join(errNothingWritten, err)
	}
	body := io.LimitReader(src, length-1)
	c.Status(status)
	if _, err := copyVerified(c.Writer, body); err != nil {
		return err
	}
	var last [1]byte
	if _, err := io.ReadFull(src, last[:]); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return err
	}
	_, err := c.Writer.Write(last[:])
	return err
}
