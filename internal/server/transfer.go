package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// transferPolicy is how slow a client may be before its transfer is cut.
type transferPolicy struct {
	// minUploadRate is in bytes per second; 0 turns the body rule off.
	minUploadRate int64
	// rateWindow is the span minUploadRate is averaged over, counted in
	// time spent waiting for the client (see rateMeter), and the longest one
	// read of a body may wait.
	rateWindow time.Duration
	// writeStall is how long one write of a response may wait for the
	// client to accept bytes.
	writeStall time.Duration
}

// transferLimits cuts request bodies that arrive too slowly and responses
// the client stops accepting, without bounding the total time of either:
// a multi-GiB model moving at a healthy rate takes as long as it takes,
// while a client dribbling bytes or not reading cannot hold a connection
// (and the goroutine, file handle and storage upload behind it) forever.
type transferLimits struct {
	next   http.Handler
	policy transferPolicy
	logger *slog.Logger
}

func newTransferLimits(next http.Handler, policy transferPolicy, logger *slog.Logger) *transferLimits {
	return &transferLimits{next: next, policy: policy, logger: logger}
}

func (t *transferLimits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sw := &stallWriter{ResponseWriter: w, rc: rc, stall: t.policy.writeStall, logger: t.logger, req: r}
	// Covers what net/http writes on the handler's behalf before any
	// Write, such as a 100 Continue.
	sw.extend()
	var body *rateReader
	if t.policy.minUploadRate > 0 && hasBody(r) {
		body = &rateReader{body: r.Body, w: w, rc: rc, policy: t.policy, logger: t.logger, req: r,
			meter: newRateMeter(float64(t.policy.minUploadRate), t.policy.rateWindow)}
		// A shallow copy for the handler: net/http keeps its own request
		// and body, so its keep-alive bookkeeping (how much body is left,
		// whether it was closed early) still sees the real body.
		r = r.WithContext(r.Context())
		r.Body = body
	}
	t.next.ServeHTTP(sw, r)
	if sw.hijacked {
		return
	}
	if body != nil {
		body.handlerDone()
	}
	// net/http flushes the last buffered bytes after the handler returns.
	sw.extend()
}

// hasBody reports whether r may carry body bytes (ContentLength is -1 for
// a chunked body of unknown length).
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// rateReader is a request body that is cut, with a descriptive error, when
// the client sends slower than the minimum or not at all.
type rateReader struct {
	body io.ReadCloser
	// w is net/http's own writer, which requestClose must reach.
	w      http.ResponseWriter
	rc     *http.ResponseController
	policy transferPolicy
	logger *slog.Logger
	req    *http.Request
	meter  rateMeter
	err    error // set when the body is cut; every later Read returns it
	eof    bool
}

func (b *rateReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	start := time.Now()
	// A Read waiting a whole window got nothing for a whole window, which
	// is below any positive minimum: a silent client is cut here, as the
	// rate check only runs when bytes arrive.
	b.setReadDeadline(start.Add(b.policy.rateWindow))
	n, err := b.body.Read(p)
	rate, slow := b.meter.observe(time.Since(start), n)
	switch {
	case errors.Is(err, io.EOF):
		b.eof = true
		// From EOF on, net/http reads the connection in the background to
		// notice a client that goes away; a deadline left behind would
		// fire there and cancel the request while the handler still
		// stores the upload.
		b.setReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, b.cut(0, fmt.Sprintf("nothing arrived for %s", b.policy.rateWindow))
	case err == nil && slow:
		return n, b.cut(rate, fmt.Sprintf("%s/s over the last window", humanBytes(rate)))
	}
	return n, err
}

func (b *rateReader) Close() error { return b.body.Close() }

func (b *rateReader) cut(rate float64, detail string) error {
	b.err = fmt.Errorf("upload slower than %s/s over %s: %s, after %d bytes",
		humanBytes(float64(b.policy.minUploadRate)), b.policy.rateWindow, detail, b.meter.total)
	requestClose(b.w)
	// Whatever the client still sends is garbage now; net/http must not sit
	// draining it after the handler returns.
	b.setReadDeadline(time.Unix(1, 0))
	b.logger.Warn("request body cut: upload too slow",
		"method", b.req.Method, "path", b.req.URL.Path, "remote", b.req.RemoteAddr,
		"bytes", b.meter.total, "rate_bytes_per_s", int64(math.Round(rate)),
		"min_rate_bytes_per_s", b.policy.minUploadRate, "window", b.policy.rateWindow.String())
	return b.err
}

// handlerDone bounds the read net/http does on its own when the handler
// returns without reading the body to its end: it drains up to 256 KiB to
// reuse the connection, with no deadline of its own, so a dribbling client
// could otherwise hold the connection there.
func (b *rateReader) handlerDone() {
	if b.eof || b.err != nil {
		return
	}
	b.setReadDeadline(time.Now().Add(b.policy.rateWindow))
}

// setReadDeadline ignores http.ErrNotSupported: a writer without deadlines
// (a test recorder) still gets the rate rule, only not the silent-client cut.
func (b *rateReader) setReadDeadline(t time.Time) { _ = b.rc.SetReadDeadline(t) }

// requestClose asks net/http to close the connection after the reply the
// way it does for a body over a MaxBytesReader limit: a FIN once the reply
// is out and a short wait before closing, so a client still sending reads
// the reply instead of a connection reset. Exceeding a MaxBytesReader limit
// is the only public way to ask for that.
func requestClose(w http.ResponseWriter) {
	_, _ = http.MaxBytesReader(w, io.NopCloser(strings.NewReader("x")), 0).Read(make([]byte, 1))
}

// marksPerWindow sets how finely rateMeter remembers the past: the averaging
// span is between one window and one window plus 1/marksPerWindow of it.
const marksPerWindow = 8

// rateMeter averages a body's rate over the last window of time spent
// waiting for the client. Time the handler spends elsewhere, such as
// writing a chunk to slow storage, does not count: bytes the client sent
// meanwhile wait in socket buffers, and it is not the client's slowness.
type rateMeter struct {
	min    float64 // bytes per second
	window time.Duration
	clock  time.Duration // total time spent waiting in Read
	total  int64
	// marks are (clock, total) samples at least window/marksPerWindow
	// apart, oldest first; marks[0] is the newest at or before clock-window
	// once a window has passed, so memory stays bounded.
	marks []rateMark
}

type rateMark struct {
	clock time.Duration
	total int64
}

func newRateMeter(minRate float64, window time.Duration) rateMeter {
	return rateMeter{min: minRate, window: window, marks: []rateMark{{}}}
}

// observe records one Read that waited waited and returned n bytes, and
// reports the rate over the last window and whether it is below the
// minimum. Nothing is slow during the first window.
func (m *rateMeter) observe(waited time.Duration, n int) (rate float64, slow bool) {
	m.clock += waited
	m.total += int64(n)
	if m.clock-m.marks[len(m.marks)-1].clock >= m.window/marksPerWindow {
		m.marks = append(m.marks, rateMark{m.clock, m.total})
	}
	for len(m.marks) > 1 && m.marks[1].clock <= m.clock-m.window {
		m.marks = m.marks[1:]
	}
	if m.clock < m.window {
		return 0, false
	}
	base := m.marks[0]
	rate = float64(m.total-base.total) / (m.clock - base.clock).Seconds()
	return rate, rate < m.min
}

// stallWriter renews the connection's write deadline before every write,
// so a response is cut only when the client accepts nothing for
// writeStall, never for being large.
type stallWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController // of the writer net/http passed in
	stall    time.Duration
	logger   *slog.Logger
	req      *http.Request
	written  int64
	off      bool // the writer has no deadlines
	hijacked bool
	logged   bool
}

// writePiece bounds how many bytes one deadline covers: handlers write in
// 1 MiB chunks, and the rule is "accepted nothing for writeStall", not
// "did not take a whole chunk within writeStall".
const writePiece = 64 << 10

func (w *stallWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		// Still forwarded: an empty Write commits the header.
		w.extend()
		return w.ResponseWriter.Write(p)
	}
	written := 0
	for len(p) > 0 {
		w.extend()
		n, err := w.ResponseWriter.Write(p[:min(len(p), writePiece)])
		written += n
		w.written += int64(n)
		if err != nil {
			w.noteStall(err)
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (w *stallWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

// FlushError lets http.ResponseController report flush errors through
// this wrapper.
func (w *stallWriter) FlushError() error {
	w.extend()
	err := w.rc.Flush()
	w.noteStall(err)
	return err
}

// Flush is there because gin flushes only writers that are http.Flushers.
func (w *stallWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection over without our deadline: the policy is
// for HTTP responses only.
func (w *stallWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := w.rc.Hijack()
	if err == nil {
		w.hijacked = true
		_ = conn.SetWriteDeadline(time.Time{})
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach net/http's writer (read
// deadlines, full duplex) through this wrapper and gin's.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *stallWriter) extend() {
	if w.off || w.hijacked {
		return
	}
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.stall)); errors.Is(err, http.ErrNotSupported) {
		w.off = true
	}
}

func (w *stallWriter) noteStall(err error) {
	if w.logged || !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	w.logged = true
	w.logger.Warn("response cut: client accepted no bytes",
		"method", w.req.Method, "path", w.req.URL.Path, "remote", w.req.RemoteAddr,
		"bytes_written", w.written, "write_timeout", w.stall.String())
}

// humanBytes writes a byte count the way the configuration does, e.g.
// "64 KiB".
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for i < len(units)-1 && math.Abs(n) >= 1024 {
		n /= 1024
		i++
	}
	return strconv.FormatFloat(math.Round(n*10)/10, 'f', -1, 64) + " " + units[i]
}
