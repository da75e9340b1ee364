package httpapi

import (
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
)

func (a *API) promote(c *gin.Context, req *request) error {
	var body api.PromoteRequest
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req.target = body.Name + "@" + body.Version
	if body.DryRun {
		req.action = promotion.ActionDryRun
	}
	res, err := a.Promotions.Promote(c.Request.Context(), req.env, req.actor, promotion.Request{
		Name: body.Name, Version: body.Version, From: body.From, Reason: body.Reason, DryRun: body.DryRun,
	})
	// A refused promotion returns its report too: failures are what an
	// operator watches.
	a.observeReport(req.env, res.Report)
	if err != nil {
		return err
	}
	out := api.PromoteResponse[gates.Report]{Passed: true, DryRun: body.DryRun, Created: res.Created, Release: res.Release, Report: res.Report}
	if res.GateRun != nil {
		out.GateRun = &api.GateRunSummary{ID: res.GateRun.ID, PolicyDigest: res.GateRun.PolicyDigest, Passed: res.GateRun.Passed}
	}
	// The commit wrote its audit event in the release's transaction.
	req.audited = res.Release != nil && res.GateRun != nil
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	c.JSON(status, out)
	return nil
}

func (a *API) gateRun(c *gin.Context, req *request) error {
	run, err := a.Promotions.GateRun(c.Request.Context(), req.env, c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, run)
	return nil
}

// postArtifactPath serves POST …/artifacts/<name>/-/versions/<v>/approvals.
func (a *API) postArtifactPath(c *gin.Context, req *request) error {
	name, op, err := splitArtifactPath(c.Param("rest"))
	if err != nil {
		return err
	}
	if len(op) != 3 || op[0] != "versions" || op[2] != "approvals" {
		return registry.CodeNotFound.Errorf("no such route: POST /artifacts/<name>/-/versions/<version>/approvals")
	}
	req.target = name + "@" + op[1]
	var body api.ApprovalRequest
	if c.Request.ContentLength != 0 {
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
	}
	approval, err := a.Promotions.Approve(c.Request.Context(), req.env, req.actor, string(req.principal.Role), name, op[1], body.Comment)
	if err != nil {
		return err
	}
	req.audited = true
	c.JSON(http.StatusCreated, approval)
	return nil
}

// putEvidence serves PUT …/versions/<v>/evidence/<type> with the raw document.
func (a *API) putEvidence(c *gin.Context, req *request, name, version, typ string) error {
	req.action = promotion.ActionEvidenceAdd
	req.target = name + "@" + version
	if c.Request.ContentLength > gates.MaxEvidenceSize {
		return registry.CodeTooLarge.Errorf("evidence is over %d bytes", gates.MaxEvidenceSize)
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, gates.MaxEvidenceSize))
	if err != nil {
		return registry.CodeTooLarge.Errorf("evidence is over %d bytes or the upload broke", gates.MaxEvidenceSize)
	}
	doc, created, err := a.Promotions.AddEvidence(c.Request.Context(), req.env, req.actor, name, version, typ, data)
	if err != nil {
		return err
	}
	req.audited = true
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, api.EvidenceResponse{Created: created, Evidence: doc})
	return nil
}

// getPromotionPath serves the promotion-related reads under a version:
// evidence, attestation, and the name's releases.
func (a *API) getPromotionPath(c *gin.Context, req *request, name string, op []string) (bool, error) {
	ctx := c.Request.Context()
	switch {
	case len(op) == 1 && op[0] == "releases":
		return true, a.releaseHistory(c, req, name)
	case len(op) == 3 && op[0] == "versions" && op[2] == "evidence":
		docs, err := a.Promotions.ListEvidence(ctx, req.env, name, op[1])
		if err != nil {
			return true, err
		}
		c.JSON(http.StatusOK, api.EvidenceList{Evidence: docs})
		return true, nil
	case len(op) == 3 && op[0] == "versions" && op[2] == "attestation":
		if run := c.Query("gateRun"); run != "" {
			// The attestation of a rollback to the version, by its gate run.
			env, err := a.Rollbacks.Attestation(ctx, req.env, name, op[1], run)
			if err != nil {
				return true, err
			}
			c.Data(http.StatusOK, "application/json", env)
			return true, nil
		}
		env, err := a.Promotions.Attestation(ctx, req.env, name, op[1])
		if err != nil {
			return true, err
		}
		c.Data(http.StatusOK, "application/json", env)
		return true, nil
	}
	return false, nil
}

// evidenceType extracts <type> from "evidence/<type>".
func evidenceType(rest string) (string, bool) {
	typ, ok := strings.CutPrefix(rest, "evidence/")
	return typ, ok && typ != "" && !strings.Contains(typ, "/")
}
