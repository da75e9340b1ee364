package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/environment"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// Observer receives what the HTTP layer measures (internal/metrics
// implements it with Prometheus). Every label it is given is bounded: route
// templates, configured environment names, action names and error codes
// declared in code, check names from validated policies. Artifact names,
// key names, actors and tokens are never passed.
type Observer interface {
	ObserveRequest(route, method string, status int, d time.Duration)
	// ObserveAction counts one audited action, also when the audit record
	// itself was left out (rate-limited unauthenticated refusals).
	ObserveAction(env, action string, outcome audit.Outcome, code string)
	ObserveGates(env string, r gates.Report)
	ObserveTransfer(env string, uploaded, downloaded int64)
}

type noObserver struct{}

func (noObserver) ObserveRequest(string, string, int, time.Duration)   {}
func (noObserver) ObserveAction(string, string, audit.Outcome, string) {}
func (noObserver) ObserveGates(string, gates.Report)                   {}
func (noObserver) ObserveTransfer(string, int64, int64)                {}

// measure times every request by its route template (c.FullPath(), never
// the raw path: artifact names are in paths, and the label must stay
// bounded) and counts body bytes of requests bound to an environment. It
// observes in a defer, so a download cut by panic(http.ErrAbortHandler) is
// still counted.
func (a *API) measure(c *gin.Context) {
	start := time.Now()
	var body *countingBody
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		body = &countingBody{ReadCloser: c.Request.Body}
		c.Request.Body = body
	}
	defer func() {
		a.Observer.ObserveRequest(c.FullPath(), c.Request.Method, c.Writer.Status(), time.Since(start))
		v, ok := c.Get(ctxRequest)
		if !ok {
			return
		}
		req := v.(*request)
		if req.env == nil {
			return // unauthenticated, or a route bound to no environment
		}
		var up int64
		if body != nil {
			up = body.n
		}
		a.Observer.ObserveTransfer(req.env.Name(), up, int64(max(c.Writer.Size(), 0)))
	}()
	c.Next()
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// observeAction counts an audited outcome in the environment the audit
// record goes to (nil: unbound). Called from handle and fail, the two places
// that see every success and refusal.
func (a *API) observeAction(in *environment.Environment, action string, outcome audit.Outcome, err error) {
	env, code := "", ""
	if in != nil {
		env = in.Name()
	}
	if err != nil {
		code = registry.AsError(err).Code
	}
	a.Observer.ObserveAction(env, action, outcome, code)
}

// observeReport records the checks of a gate report run for target env.
func (a *API) observeReport(env *environment.Environment, r *gates.Report) {
	if env != nil && r != nil {
		a.Observer.ObserveGates(env.Name(), *r)
	}
}

// maxRequestIDLength bounds a caller's X-Request-ID.
const maxRequestIDLength = 128

// requestID returns the caller's X-Request-ID when it is well formed (1 to
// 128 of [A-Za-z0-9._-], so it can go into logs, audit records and headers
// unescaped and cannot forge a log field), else a fresh random one.
func requestID(incoming string) string {
	if wellFormedRequestID(incoming) {
		return incoming
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func wellFormedRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
