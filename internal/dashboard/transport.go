package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/stagegate/stagegate/client"
)

// apiBase is the origin the in-process client names; no request leaves
// the process, so it is never resolved.
const apiBase = "http://stagegate.internal"

// maxAPIResponse bounds what one in-process API answer may buffer. The
// dashboard reads JSON documents (pages of listings, a gate report); files
// and exports are streamed to the browser without it.
const maxAPIResponse = 32 << 20

// inProcess is an http.RoundTripper that hands requests to the API
// handler directly: the same authentication, binding, authorisation and
// audit as a request over the network, without a socket.
type inProcess struct{ h http.Handler }

type (
	requestIDKey  struct{}
	remoteAddrKey struct{}
)

func (t inProcess) RoundTrip(r *http.Request) (resp *http.Response, err error) {
	if t.h == nil {
		return nil, errors.New("dashboard: no API handler")
	}
	r = r.Clone(r.Context())
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok && id != "" {
		// The API logs and audits its half under the page's request id.
		r.Header.Set("X-Request-ID", id)
	}
	// And sees the browser's address, as it would over the network.
	r.RemoteAddr, _ = r.Context().Value(remoteAddrKey{}).(string)
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	defer func() {
		// The API aborts a response it cannot finish (http.ErrAbortHandler).
		if v := recover(); v != nil {
			resp, err = nil, fmt.Errorf("dashboard: API request aborted: %v", v)
		}
	}()
	t.h.ServeHTTP(rec, r)
	if rec.tooBig {
		return nil, fmt.Errorf("dashboard: API answer over %d bytes", maxAPIResponse)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status:        strconv.Itoa(rec.status) + " " + http.StatusText(rec.status),
		StatusCode:    rec.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rec.header,
		Body:          io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()),
		Request:       r,
	}, nil
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	tooBig bool
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(p) > maxAPIResponse {
		w.tooBig = true
		return 0, errors.New("dashboard: API answer too large")
	}
	return w.body.Write(p)
}

// client is the API client of one of the person's keys.
func (d *Dashboard) client(key string) *client.Client {
	// A page is one attempt: the person can reload; a retried promotion
	// behind their back would be a surprise.
	return client.New(apiBase, key, d.hc).WithRetry(client.NoRetry())
}

// withRequestID carries the page's request id (set by the API router in
// front of the dashboard) and the browser's address into the API calls
// the page makes.
func withRequestID(r *http.Request, w http.ResponseWriter) context.Context {
	ctx := context.WithValue(r.Context(), remoteAddrKey{}, r.RemoteAddr)
	if id := w.Header().Get("X-Request-ID"); id != "" {
		ctx = context.WithValue(ctx, requestIDKey{}, id)
	}
	return ctx
}
