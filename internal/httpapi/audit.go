package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

// auditFilter reads the filters that the query and the export share.
func auditFilter(c *gin.Context) (audit.Filter, error) {
	f := audit.Filter{
		Action:    c.Query("action"),
		Target:    c.Query("target"),
		Actor:     c.Query("actor"),
		Outcome:   audit.Outcome(c.Query("outcome")),
		RequestID: c.Query("requestId"),
	}
	if v := c.Query("name"); v != "" {
		name, err := registry.ParseName(v)
		if err != nil {
			return f, err
		}
		f.Name = name
	}
	if v := c.Query("version"); v != "" {
		// Events store the canonical version, so v1.2.0 finds 1.2.0.
		ver, err := registry.ParseVersion(v)
		if err != nil {
			return f, err
		}
		f.Version = ver.Canonical
	}
	var err error
	if f.Since, err = queryTime(c, "since"); err != nil {
		return f, err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return f, err
	}
	switch f.Outcome {
	case "", audit.Success, audit.Denied, audit.Failed:
	default:
		return f, registry.CodeInvalidRequest.Errorf("outcome: want success, denied or failed")
	}
	return f, nil
}

func (a *API) queryAudit(c *gin.Context, req *request) error {
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	if f.BeforeID, err = queryInt(c, "before"); err != nil {
		return err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(min(limit, audit.MaxLimit))
	events, err := req.env.Metadata().QueryAudit(c.Request.Context(), f)
	if err != nil {
		return err
	}
	out := api.AuditEventList{Environment: req.env.Name(), Events: events}
	if len(events) > 0 && len(events) == f.EffectiveLimit() {
		out.Next = strconv.FormatInt(events[len(events)-1].ID, 10)
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// exportAudit streams the environment's events as JSON Lines, oldest
// first, reading the database in batches as the client consumes them.
// Until the first event is written a failure is an ordinary JSON error;
// after it the stream is cut without its final chunk, so that the client
// sees a failed transfer rather than a shorter export.
func (a *API) exportAudit(c *gin.Context, req *request) error {
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	var (
		w       = bufio.NewWriterSize(c.Writer, 32<<10) // a write deadline covers at most 64 KiB
		enc     = json.NewEncoder(w)
		started bool
		count   int
	)
	start := func() {
		if !started {
			started = true
			c.Header("Content-Type", api.AuditExportMediaType)
			c.Header("X-Content-Type-Options", "nosniff")
			c.Status(http.StatusOK)
		}
	}
	err = req.env.Metadata().ExportAudit(c.Request.Context(), f, func(ev audit.Event) error {
		start()
		count++
		return enc.Encode(ev)
	})
	if err == nil {
		start()
		err = w.Flush()
	}
	if err != nil && !started {
		return err
	}
	if err != nil {
		a.Logger.Warn("audit export cut", "request_id", req.actor.RequestID, "environment", req.env.Name(),
			"events_written", count, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// auditCheckpoint signs the head of the environment's audit chain with
// the environment's key.
func (a *API) auditCheckpoint(c *gin.Context, req *request) error {
	head, err := req.env.Metadata().AuditHead(c.Request.Context())
	if err != nil {
		return err
	}
	cp := audit.NewCheckpoint(req.env.Name(), head, a.Now())
	payload := cp.Payload()
	sig, err := req.env.Signer().SignBlob(payload)
	if err != nil {
		return registry.CodeInternal.Errorf("signing failed").WithCause(err)
	}
	c.JSON(http.StatusOK, api.AuditCheckpoint{Checkpoint: cp, Payload: payload, Signature: sig, KeyID: req.env.Signer().KeyID()})
	return nil
}
