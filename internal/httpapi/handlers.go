package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

func (a *API) whoami(c *gin.Context, req *request) error {
	c.JSON(http.StatusOK, api.Whoami{
		Environment:  req.principal.Environment,
		Role:         string(req.principal.Role),
		Actor:        req.principal.Actor,
		CredentialID: req.principal.CredentialID,
	})
	return nil
}

func (a *API) listEnvironments(c *gin.Context, req *request) error {
	names := a.Environments.Names()
	out := make([]api.EnvironmentSummary, len(names))
	for i, n := range names {
		out[i] = api.EnvironmentSummary{Name: n, Position: i, AcceptsPublish: i == 0}
	}
	c.JSON(http.StatusOK, api.EnvironmentList{Environments: out})
	return nil
}

func (a *API) listArtifacts(c *gin.Context, req *request) error {
	arts, err := a.Registry.ListArtifacts(c.Request.Context(), req.env)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, api.ArtifactList{Environment: req.env.Name(), Artifacts: arts})
	return nil
}

// getArtifactPath serves everything under /artifacts/<name>/-/…
func (a *API) getArtifactPath(c *gin.Context, req *request) error {
	ctx := c.Request.Context()
	if c.Param("rest") == "/" {
		return a.listArtifacts(c, req)
	}
	name, op, err := splitArtifactPath(c.Param("rest"))
	if err != nil {
		return err
	}
	if handled, err := a.getPromotionPath(c, req, name, op); handled {
		return err
	}
	switch {
	case len(op) == 1 && op[0] == "versions":
		versions, err := a.Registry.ListVersions(ctx, req.env, name)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, api.VersionList{Environment: req.env.Name(), Name: name, Versions: versions})
		return nil
	case len(op) == 1 && op[0] == "resolve":
		rec, err := a.Registry.Resolve(ctx, req.env, name, c.Query("constraint"))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, rec)
		return nil
	case len(op) == 2 && op[0] == "versions":
		rec, err := a.Registry.GetVersion(ctx, req.env, name, op[1])
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, rec)
		return nil
	case len(op) == 3 && op[0] == "versions":
		what, sub, _ := strings.Cut(op[2], "/")
		switch {
		case op[2] == "manifest":
			return a.serveManifest(c, req, name, op[1])
		case what == "files" && sub != "":
			return a.serveFile(c, req, name, op[1], sub)
		case what == "evidence" && sub != "":
			return a.serveEvidence(c, req, name, op[1], sub)
		}
	}
	return registry.CodeNotFound.Errorf("no such route")
}

func (a *API) serveManifest(c *gin.Context, req *request, name, version string) error {
	data, rec, err := a.Registry.Manifest(c.Request.Context(), req.env, name, version)
	if err != nil {
		return err
	}
	c.Header("X-Stagegate-Digest", rec.ManifestDigest.String())
	c.Data(http.StatusOK, "application/vnd.oci.image.manifest.v1+json", data)
	return nil
}

// serveFile streams a file, never handing a client the complete body of
// corrupt content (copyVerified): a small file that fails verification is a
// 500 before any byte, a large one is cut short of its Content-Length, which
// every HTTP client reports as a failed transfer.
func (a *API) serveFile(c *gin.Context, req *request, name, version, path string) error {
	rc, f, err := a.Registry.OpenFile(c.Request.Context(), req.env, name, version, path)
	if err != nil {
		return err
	}
	defer rc.Close()
	return a.serveVerified(c, req, rc, "file", f.Digest, f.Size, f.MediaType)
}

// serveVerified streams a stored blob of a file or evidence document
// (what: "file", "evidence") through copyVerified. A blob that fails
// before the first byte is a JSON error; one that fails after is an
// aborted response, which every HTTP client reports as a failed transfer,
// so corrupt bytes are never delivered as a whole.
func (a *API) serveVerified(c *gin.Context, req *request, rc io.Reader, what string, digest v1.Hash, size int64, mediaType string) error {
	c.Header("X-Stagegate-Digest", digest.String())
	c.Header("Content-Length", strconv.FormatInt(size, 10))
	c.Header("Content-Type", mediaType)
	c.Status(http.StatusOK)
	if c.Request.Method == http.MethodHead {
		return nil
	}
	if _, err := copyVerified(c.Writer, rc); err != nil {
		if errors.Is(err, errNothingWritten) {
			c.Writer.Header().Del("Content-Length")
			c.Writer.Header().Del("X-Stagegate-Digest")
			// The error body is JSON, not the blob's media type (gin keeps
			// a Content-Type that is already set).
			c.Writer.Header().Del("Content-Type")
			return registry.StorageError("reading "+what+" "+digest.String(), err)
		}
		if errors.Is(err, registry.ErrDigestMismatch) {
			a.Logger.Error(what+" download cut: stored content does not match its digest", "request_id", req.actor.RequestID,
				"environment", req.env.Name(), "digest", digest.String(), "err", err)
		} else {
			a.Logger.Warn(what+" download aborted", "request_id", req.actor.RequestID, "digest", digest.String(), "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (a *API) putArtifactPath(c *gin.Context, req *request) error {
	name, op, err := splitArtifactPath(c.Param("rest"))
	if err != nil {
		return err
	}
	if len(op) == 3 && op[0] == "versions" {
		if typ, ok := evidenceType(op[2]); ok {
			return a.putEvidence(c, req, name, op[1], typ)
		}
	}
	if len(op) != 2 || op[0] != "versions" {
		return registry.CodeNotFound.Errorf("no such route: PUT /artifacts/<name>/-/versions/<version>[/evidence/<type>]")
	}
	req.target = name + "@" + op[1]
	var body api.PublishRequest
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	res, err := a.Registry.Publish(c.Request.Context(), req.env, req.actor, registry.PublishRequest{
		Name: name, Version: op[1], Kind: body.Kind, Files: body.Files, Labels: body.Labels, SourceCommit: body.SourceCommit,
		CISignatures: body.CISignatures, Contents: body.Contents,
	})
	if err != nil {
		return err
	}
	req.audited = true
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	c.JSON(status, api.PublishResponse{Created: res.Created, Version: res.Record})
	return nil
}

func (a *API) headBlob(c *gin.Context, req *request) error {
	dgst, err := registry.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	size, err := a.Registry.StatBlob(c.Request.Context(), req.env, dgst)
	if err != nil {
		return err
	}
	c.Header("Content-Length", strconv.FormatInt(size, 10))
	c.Header("X-Stagegate-Digest", dgst.String())
	c.Status(http.StatusOK)
	return nil
}

// putBlob streams the request body straight to the blob's final key,
// verifying the digest on the way (DESIGN §2 "stream once").
func (a *API) putBlob(c *gin.Context, req *request) error {
	req.target = c.Param("digest")
	dgst, err := registry.ParseDigest(c.Param("digest"))
	if err != nil {
		return err
	}
	created, err := a.Registry.UploadBlob(c.Request.Context(), req.env, dgst, c.Request.Body, c.Request.ContentLength)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, api.BlobUploadResponse{Digest: dgst, Created: created})
	return nil
}

func queryTime(c *gin.Context, key string) (time.Time, error) {
	v := c.Query(key)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, registry.CodeInvalidRequest.Errorf("%s: want an RFC 3339 time", key)
	}
	return t, nil
}

func queryInt(c *gin.Context, key string) (int64, error) {
	v := c.Query(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, registry.CodeInvalidRequest.Errorf("%s: want a non-negative integer", key)
	}
	return n, nil
}

func (a *API) createKey(c *gin.Context, req *request) error {
	var body api.CreateKeyRequest
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req.target = body.Name
	role, err := auth.ParseRole(body.Role)
	if err != nil {
		return err
	}
	// The caller's own owner is recorded as the minter: the owner it writes
	// on the new key is its say-so, which the approvals check must know.
	spec := auth.KeySpec{Name: body.Name, Role: role, Owner: body.Owner, CreatedByOwner: req.principal.Owner}
	token, key, err := auth.CreateKey(c.Request.Context(), a.Keys(req.env), req.env.Name(), spec, req.actor, a.Now())
	if err != nil {
		return err
	}
	req.audited = true
	c.JSON(http.StatusCreated, api.CreateKeyResponse{Key: wireKey(key), Token: token})
	return nil
}

func (a *API) listKeys(c *gin.Context, req *request) error {
	keys, err := a.Keys(req.env).ListKeys(c.Request.Context())
	if err != nil {
		return err
	}
	out := make([]api.Key, len(keys))
	for i, k := range keys {
		out[i] = wireKey(k)
	}
	c.JSON(http.StatusOK, api.KeyList{Environment: req.env.Name(), Keys: out})
	return nil
}

func wireKey(k auth.Key) api.Key {
	return api.Key{ID: k.ID, Name: k.Name, Environment: k.Environment, Role: string(k.Role), Owner: k.Owner,
		CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, CreatedByOwner: k.CreatedByOwner, RevokedAt: k.RevokedAt}
}

func (a *API) revokeKey(c *gin.Context, req *request) error {
	req.target = c.Param("id")
	if err := auth.RevokeKey(c.Request.Context(), a.Keys(req.env), req.env.Name(), c.Param("id"), req.actor, a.Now()); err != nil {
		return err
	}
	req.audited = true
	c.Status(http.StatusNoContent)
	return nil
}

// publicKeys serves each environment's public key. Public keys are public:
// consumers verify offline with them, and knowing prod's grants nothing, so
// the route takes no credential. The table is built once, here.
func (a *API) publicKeys() gin.HandlerFunc {
	type publicKey struct {
		pem   []byte
		keyID string
	}
	keys := map[string]publicKey{}
	for _, e := range a.Environments.All() {
		keys[e.Name()] = publicKey{pem: e.Signer().PublicKeyPEM(), keyID: e.Signer().KeyID()}
	}
	return func(c *gin.Context) {
		k, ok := keys[c.Param("env")]
		if !ok {
			a.writeError(c, registry.CodeNotFound.Errorf("unknown environment %q", truncate(c.Param("env"), 40)))
			return
		}
		c.Header("X-Stagegate-Key-Id", k.keyID)
		c.Data(http.StatusOK, "application/x-pem-file", k.pem)
	}
}
