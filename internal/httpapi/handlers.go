package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

func (a *API) whoami(c *gin.Context, req *request) error {
	c.JSON(http.StatusOK, gin.H{
		"environment":  req.principal.Environment,
		"role":         req.principal.Role,
		"actor":        req.principal.Actor,
		"credentialId": req.principal.CredentialID,
	})
	return nil
}

func (a *API) listEnvironments(c *gin.Context, req *request) error {
	names := a.Registry.EnvironmentNames()
	out := make([]gin.H, len(names))
	for i, n := range names {
		out[i] = gin.H{"name": n, "position": i, "acceptsPublish": i == 0}
	}
	c.JSON(http.StatusOK, gin.H{"environments": out})
	return nil
}

func (a *API) listArtifacts(c *gin.Context, req *request) error {
	arts, err := a.Registry.ListArtifacts(c.Request.Context(), req.env)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"environment": req.env, "artifacts": arts})
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
		c.JSON(http.StatusOK, gin.H{"environment": req.env, "name": name, "versions": versions})
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
		}
	}
	return registry.Errorf(registry.NotFound, registry.CodeNotFound, "no such route")
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

// serveFile streams a file. The store's reader verifies the digest; when it
// detects corruption at the end, the connection is cut so the client never
// sees a clean response (clients verify the digest header as well).
func (a *API) serveFile(c *gin.Context, req *request, name, version, path string) error {
	rc, f, err := a.Registry.OpenFile(c.Request.Context(), req.env, name, version, path)
	if err != nil {
		return err
	}
	defer rc.Close()
	c.Header("X-Stagegate-Digest", f.Digest.String())
	c.Header("Content-Length", strconv.FormatInt(f.Size, 10))
	c.Header("Content-Type", f.MediaType)
	c.Status(http.StatusOK)
	if c.Request.Method == http.MethodHead {
		return nil
	}
	if _, err := copyBuffer(c.Writer, rc); err != nil {
		a.Logger.Error("file download aborted", "request_id", req.actor.RequestID, "digest", f.Digest.String(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// publishBody is the JSON of PUT /artifacts/<name>/-/versions/<version>.
type publishBody struct {
	Kind         string                 `json:"kind"`
	Files        []registry.File        `json:"files"`
	Labels       map[string]string      `json:"labels,omitempty"`
	SourceCommit string                 `json:"sourceCommit,omitempty"`
	CISignatures []registry.CISignature `json:"ciSignatures,omitempty"`
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
		return registry.Errorf(registry.NotFound, registry.CodeNotFound, "no such route: PUT /artifacts/<name>/-/versions/<version>[/evidence/<type>]")
	}
	req.target = name + "@" + op[1]
	var body publishBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	res, err := a.Registry.Publish(c.Request.Context(), req.env, req.actor, registry.PublishRequest{
		Name: name, Version: op[1], Kind: body.Kind, Files: body.Files, Labels: body.Labels, SourceCommit: body.SourceCommit,
		CISignatures: body.CISignatures,
	})
	if err != nil {
		return err
	}
	req.audited = true
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	c.JSON(status, gin.H{"created": res.Created, "version": res.Record})
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
	c.JSON(status, gin.H{"digest": dgst.String(), "created": created})
	return nil
}

func (a *API) queryAudit(c *gin.Context, req *request) error {
	f := audit.Filter{
		Action:    c.Query("action"),
		Target:    c.Query("target"),
		Actor:     c.Query("actor"),
		Outcome:   audit.Outcome(c.Query("outcome")),
		RequestID: c.Query("requestId"),
	}
	var err error
	if f.Since, err = queryTime(c, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return err
	}
	if f.BeforeID, err = queryInt(c, "before"); err != nil {
		return err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	switch f.Outcome {
	case "", audit.Success, audit.Denied, audit.Failed:
	default:
		return registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "outcome: want success, denied or failed")
	}
	events, err := a.Audit.Query(c.Request.Context(), req.env, f)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"environment": req.env, "events": events})
	return nil
}

func queryTime(c *gin.Context, key string) (time.Time, error) {
	v := c.Query(key)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "%s: want an RFC 3339 time", key)
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
		return 0, registry.Errorf(registry.Invalid, registry.CodeInvalidRequest, "%s: want a non-negative integer", key)
	}
	return n, nil
}

type createKeyBody struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (a *API) createKey(c *gin.Context, req *request) error {
	var body createKeyBody
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req.target = body.Name
	role, err := auth.ParseRole(body.Role)
	if err != nil {
		return err
	}
	token, key, err := auth.CreateKey(c.Request.Context(), a.Keys(req.env), req.env, body.Name, role, req.actor, a.Now())
	if err != nil {
		return err
	}
	req.audited = true
	c.JSON(http.StatusCreated, gin.H{"key": key, "token": token})
	return nil
}

func (a *API) listKeys(c *gin.Context, req *request) error {
	keys, err := a.Keys(req.env).ListKeys(c.Request.Context())
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"environment": req.env, "keys": keys})
	return nil
}

func (a *API) revokeKey(c *gin.Context, req *request) error {
	req.target = c.Param("id")
	if err := auth.RevokeKey(c.Request.Context(), a.Keys(req.env), req.env, c.Param("id"), req.actor, a.Now()); err != nil {
		return err
	}
	req.audited = true
	c.Status(http.StatusNoContent)
	return nil
}

func (a *API) publicKey(c *gin.Context) {
	pem, keyID, ok := a.PublicKey(c.Param("env"))
	if !ok {
		a.writeError(c, registry.Errorf(registry.NotFound, registry.CodeNotFound, "unknown environment %q", truncate(c.Param("env"), 40)))
		return
	}
	c.Header("X-Stagegate-Key-Id", keyID)
	c.Data(http.StatusOK, "application/x-pem-file", pem)
}
