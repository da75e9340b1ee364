// Package httpapi is stagegate's REST API under /v1. It is the only package
// that knows gin: handlers bind requests, call the domain with the
// environment and actor fixed at authentication, and map errors to status
// codes through one table.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/promotion"
	"github.com/stagegate/stagegate/registry"
	"github.com/stagegate/stagegate/rollback"
	"github.com/stagegate/stagegate/schemas"
)

// UnboundAudit records refusals that no configured environment can own:
// requests whose credential did not authenticate, or that named an
// environment that is not configured.
type UnboundAudit interface {
	AppendUnboundAudit(ctx context.Context, ev audit.Event) (int64, error)
}

// API holds the dependencies of the HTTP layer.
type API struct {
	// Environments are the configured environments; a request is bound to
	// the one its credential names, once, in handle.
	Environments *environment.List
	Registry     *registry.Service
	Promotions   *promotion.Service
	Rollbacks    *rollback.Service
	Auth         *auth.Authenticator
	Unbound      UnboundAudit
	// AlertmanagerSecret returns the secret that authenticates an
	// environment's Alertmanager hook ("" or nil: the hook is off).
	AlertmanagerSecret func(env *environment.Environment) string
	// Keys returns the key administration of an environment.
	Keys   func(env *environment.Environment) auth.KeyAdmin
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	Now    func() time.Time
	// Observer receives request, action, gate and transfer measurements
	// (nil: none). MetricsHandler, when set, is served unauthenticated at
	// /metrics, as Prometheus exporters are; nil leaves /metrics to a
	// separate listener, and this router answers 404 there.
	Observer       Observer
	MetricsHandler http.Handler
	// UI, when set, serves /ui/ (internal/dashboard). It is mounted behind
	// NoRoute, not as routes: its pages are not API operations, and it
	// reaches the API only through this handler, with the person's keys.
	UI http.Handler
	// KeyLimits bound each credential's request rate and uploads in
	// flight (ratelimit.go); the zero value limits nothing.
	KeyLimits KeyLimits

	cosign    *cosignMemory // cosign manifests and blobs recently built (ocicosign.go)
	refusals  *refusalBudget
	throttled *refusalBudget // audit rows of rate_limited refusals
	limiter   *keyLimiter
}

// maxJSONBody bounds JSON request bodies (a publish lists at most
// MaxFiles files; 10k entries fit well inside this).
const maxJSONBody = 16 << 20

// Handler builds the gin engine.
func (a *API) Handler() http.Handler {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	a.refusals = newRefusalBudget()
	a.cosign = &cosignMemory{}
	a.throttled = newRefusalBudget()
	a.limiter = newKeyLimiter(a.KeyLimits)
	if a.Observer == nil {
		a.Observer = noObserver{}
	}
	if gin.Mode() == gin.DebugMode {
		// Requests are logged by requestContext through slog; gin's debug
		// output (route tables, warnings) would only clutter stdout.
		gin.SetMode(gin.ReleaseMode)
	}
	r := gin.New()
	// recovered logs panics through slog; gin's own unstructured print of
	// them (and of deliberate aborts) would interleave with the JSON logs.
	r.Use(a.measure, a.requestContext, gin.CustomRecoveryWithWriter(io.Discard, a.recovered))
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		if p := c.Request.URL.Path; a.UI != nil && (p == "/ui" || strings.HasPrefix(p, "/ui/")) {
			a.UI.ServeHTTP(c.Writer, c.Request) // the dashboard: HTML pages, not API routes
			return
		}
		a.writeError(c, registry.CodeNotFound.Errorf("no such route"))
	})
	r.NoMethod(func(c *gin.Context) {
		a.writeError(c, registry.CodeMethodNotAllowed.Errorf("%s is not allowed on this route", c.Request.Method))
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	if a.MetricsHandler != nil {
		r.GET("/metrics", gin.WrapH(a.MetricsHandler))
	}

	v1 := r.Group("/v1")
	// Public keys are public: consumers verify offline with them, and
	// knowing prod's public key grants nothing.
	v1.GET("/environments/:env/public-key", a.publicKeys())
	// So is the API description: clients generate code from it before they hold a key.
	v1.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", schemas.OpenAPI()) })
	v1.GET("/whoami", a.handle("", "", a.whoami))
	v1.GET("/environments", a.handle("", "", a.listEnvironments))
	v1.GET("/audit", a.handle(auth.PermRead, "", a.queryAudit))
	env := v1.Group("/environments/:env")
	env.GET("/artifacts", a.handle(auth.PermRead, "", a.listArtifacts))
	env.GET("/artifacts/*rest", a.handle(auth.PermRead, "", a.getArtifactPath))
	env.HEAD("/artifacts/*rest", a.handle(auth.PermRead, "", a.getArtifactPath))
	env.PUT("/artifacts/*rest", a.handle(auth.PermPublish, audit.ActionPublish, a.putArtifactPath))
	env.POST("/artifacts/*rest", a.handle(auth.PermApprove, promotion.ActionApprove, a.postArtifactPath))
	env.POST("/promotions", a.handle(auth.PermPromote, promotion.ActionPromote, a.promote))
	env.POST("/rollbacks", a.handle(auth.PermRollback, rollback.ActionRollback, a.rollback))
	env.GET("/releases", a.handle(auth.PermRead, "", a.releasesAt))
	// Authenticated by the environment's hook secret, not by an API key.
	env.POST("/hooks/alertmanager", a.alertmanagerHook)
	env.GET("/gate-runs/:id", a.handle(auth.PermRead, "", a.gateRun))
	v1.GET("/gate-runs/:id", a.handle(auth.PermRead, "", a.gateRun))
	env.HEAD("/blobs/:digest", a.handle(auth.PermRead, "", a.headBlob))
	env.PUT("/blobs/:digest", a.handle(auth.PermPublish, audit.ActionBlobUpload, a.uploadSlot(a.putBlob)))
	env.GET("/audit", a.handle(auth.PermRead, "", a.queryAudit))
	env.GET("/audit/export", a.handle(auth.PermRead, "", a.exportAudit))
	env.GET("/audit/checkpoint", a.handle(auth.PermRead, "", a.auditCheckpoint))
	env.GET("/keys", a.handle(auth.PermManageKeys, "", a.listKeys))
	env.POST("/keys", a.handle(auth.PermManageKeys, audit.ActionKeyCreate, a.createKey))
	env.DELETE("/keys/:id", a.handle(auth.PermManageKeys, audit.ActionKeyRevoke, a.revokeKey))
	// The OCI Distribution API (oci.go): the same keys and environments,
	// for registry clients.
	a.ociRoutes(r)
	return r
}

// request is what a handler knows about its caller.
type request struct {
	// env is the environment the credential is bound to; nil on routes
	// that take no permission, so they cannot reach any environment.
	env       *environment.Environment
	principal auth.Principal
	actor     audit.Actor
	action    string // the audited action ("" for reads); a handler may refine it
	target    string // set by the handler for audit records
	audited   bool   // the handler recorded its success itself (transactionally)
	// auditIn is where a refusal is recorded: the environment the request
	// targeted when it is a configured one, else nil (unbound).
	auditIn *environment.Environment
}

type handlerFunc func(c *gin.Context, req *request) error

const (
	ctxRequestID = "stagegate.requestID"
	ctxRequest   = "stagegate.request"
)

// handle wraps a handler with authentication, environment binding,
// authorisation and the single error/audit path. perm "" means any
// authenticated caller and binds no environment; action "" marks a read
// (successes are not audited).
//
// Binding: the credential names one environment, which becomes req.env. A
// route whose URL names another environment is refused before the handler
// runs (wrong_environment), and that refusal is filed in the audit trail of
// the environment that was targeted, so its owners see attempts against it.
func (a *API) handle(perm auth.Permission, action string, h handlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		reqID := c.GetString(ctxRequestID)
		req := &request{action: action}
		c.Set(ctxRequest, req)
		urlEnv := c.Param("env")
		if urlEnv != "" {
			req.auditIn, _ = a.Environments.Bind(urlEnv)
		}
		p, err := a.Auth.Authenticate(c.Request.Context(), c.GetHeader("Authorization"))
		if err == nil {
			var ok bool
			if req.env, ok = a.Environments.Bind(p.Environment); !ok {
				// A key of an environment that is no longer configured.
				err = registry.CodeUnauthenticated.Errorf("invalid or revoked API key")
			}
		}
		if err != nil {
			req.env = nil
			req.actor = audit.Actor{Name: "anonymous", RequestID: reqID}
			a.fail(c, req, audit.ActionAuthenticate, err)
			return
		}
		req.principal = p
		req.actor = audit.Actor{Name: p.Actor, CredentialID: p.CredentialID, RequestID: reqID,
			Owner: p.Owner, KeyCreatedBy: p.CreatedByOwner}
		if req.auditIn == nil && urlEnv == "" {
			req.auditIn = req.env
		}
		// Before authorisation: a key hammering routes it may not use is
		// throttled all the same.
		if err := a.limiter.admit(p, a.Now()); err != nil {
			a.fail(c, req, req.action, err)
			return
		}
		if perm == "" {
			req.env = nil
		} else {
			if urlEnv == "" {
				// Routes without {env} act on the credential's own environment.
				urlEnv = req.env.Name()
			}
			if err := p.Authorize(urlEnv, perm); err != nil {
				a.fail(c, req, audit.ActionAuthorize, err)
				return
			}
		}
		if err := h(c, req); err != nil {
			a.fail(c, req, req.action, err)
			return
		}
		if req.action != "" {
			a.observeAction(req.auditIn, req.action, audit.Success, nil)
		}
		if req.action != "" && !req.audited {
			a.record(c, req.auditIn, req.actor.Event(req.auditIn.Name(), req.action, req.target, audit.Success))
		}
	}
}

// fail writes err and audits the refusal. Every mutation refusal and every
// authentication or authorisation refusal is recorded; a read that finds
// nothing is not a refusal.
func (a *API) fail(c *gin.Context, req *request, action string, err error) {
	status := a.writeError(c, err)
	if action == "" {
		if status != http.StatusUnauthorized && status != http.StatusForbidden {
			return
		}
		action = audit.ActionRead
	}
	outcome := audit.Denied
	if status >= 500 {
		outcome = audit.Failed
	}
	envName := ""
	if req.auditIn != nil {
		envName = req.auditIn.Name()
	}
	ev := req.actor.Event(envName, action, req.target, outcome)
	ev.ErrorCode = registry.AsError(err).Code
	if req.principal.Environment != "" && req.principal.Environment != envName {
		ev.Details = map[string]string{"credentialEnvironment": req.principal.Environment}
	}
	ev.Details = withGateRun(withRoute(ev.Details, c), err)
	a.observeAction(req.auditIn, action, outcome, err)
	if action == audit.ActionAuthenticate && !a.refusals.admit(ev.Details) {
		return
	}
	// A throttled key would otherwise write an audit row per refused
	// request, the flood the limit exists to stop.
	if ev.ErrorCode == registry.CodeRateLimited.Name && !a.throttled.admit(ev.Details) {
		return
	}
	a.record(c, req.auditIn, ev)
}

func withRoute(d map[string]string, c *gin.Context) map[string]string {
	if d == nil {
		d = map[string]string{}
	}
	d["method"] = c.Request.Method
	d["path"] = truncate(c.Request.URL.Path, 300)
	return d
}

// record appends ev to env's audit trail, or to the unbound trail when no
// configured environment owns it.
func (a *API) record(c *gin.Context, env *environment.Environment, ev audit.Event) {
	if ev.Time.IsZero() {
		ev.Time = a.Now().UTC()
	}
	// The audit write must not be lost because the client went away.
	ctx := context.WithoutCancel(c.Request.Context())
	var err error
	if env != nil {
		_, err = env.Metadata().AppendAudit(ctx, ev)
	} else {
		_, err = a.Unbound.AppendUnboundAudit(ctx, ev)
	}
	if err != nil {
		a.Logger.Error("audit append failed", "request_id", ev.RequestID, "action", ev.Action, "err", err)
	}
}

// writeError writes the JSON error envelope and returns the status.
func (a *API) writeError(c *gin.Context, err error) int {
	setRetryAfter(c, err)
	if endpoint, ok := c.Get(ctxOCIEndpoint); ok {
		// An OCI API request: registry clients read the OCI envelope.
		return a.writeOCIError(c, err, endpoint.(oci.Endpoint))
	}
	status, body := wireError(err)
	if status >= 500 {
		a.Logger.Error("request failed", "request_id", c.GetString(ctxRequestID), "code", body.Error.Code, "err", err)
	}
	if c.Request.Method == http.MethodHead {
		c.Status(status)
	} else {
		c.JSON(status, body)
	}
	c.Abort()
	return status
}

func (a *API) recovered(c *gin.Context, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	a.Logger.Error("panic", "request_id", c.GetString(ctxRequestID), "panic", v)
	a.writeError(c, errors.New("panic"))
}

// requestContext assigns a request id and logs the request.
func (a *API) requestContext(c *gin.Context) {
	id := requestID(c.GetHeader("X-Request-ID"))
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	start := a.Now()
	c.Next()
	a.Logger.Info("request", "request_id", id, "method", c.Request.Method, "path", c.Request.URL.Path,
		"status", c.Writer.Status(), "env", c.Param("env"), "duration_ms", a.Now().Sub(start).Milliseconds())
}

func (a *API) readyz(c *gin.Context) {
	if a.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
		defer cancel()
		if err := a.Ready(ctx); err != nil {
			a.Logger.Warn("not ready", "err", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// decodeJSON decodes a bounded JSON body strictly.
func decodeJSON(c *gin.Context, v any) error {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var domain *registry.Error
		if errors.As(err, &domain) {
			// A field's own decoder refused its value with a specific code.
			return domain
		}
		if errors.As(err, &tooBig) {
			return registry.CodeTooLarge.Errorf("request body is over %d bytes", maxJSONBody)
		}
		return registry.CodeInvalidRequest.Errorf("invalid JSON body: %s", truncate(err.Error(), 200))
	}
	if _, err := dec.Token(); err != io.EOF {
		return registry.CodeInvalidRequest.Errorf("invalid JSON body: trailing data")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// splitArtifactPath splits "/<name>/-/<rest>" — "-" can never be a name
// segment, so it separates the (slash-containing) name from the operation.
func splitArtifactPath(p string) (name string, op []string, err error) {
	p = strings.TrimPrefix(p, "/")
	name, rest, ok := strings.Cut(p, "/-/")
	if !ok || name == "" {
		return "", nil, registry.CodeNotFound.Errorf("no such route: want /artifacts/<name>/-/versions[/<version>[/files/<path>]] or /artifacts/<name>/-/resolve")
	}
	return name, strings.SplitN(rest, "/", 3), nil
}
