package client

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress follows long transfers: hashing and uploading each file.
type Progress interface {
	// Start announces a transfer of total bytes (label says what and
	// which file) and returns where its position goes.
	Start(label string, total int64) ProgressTask
}

// ProgressTask is one transfer in progress.
type ProgressTask interface {
	// Set reports the bytes done so far (it may go back when a retry starts
	// over).
	Set(done int64)
	// Done ends the transfer.
	Done(err error)
}

// NewProgress picks how to show progress on w: nothing when quiet; a bar
// per file with bytes, rate and ETA when w is a terminal; otherwise (CI
// logs) one plain line about every ten seconds for transfers that take
// that long.
func NewProgress(w io.Writer, quiet bool) Progress {
	if quiet || w == nil {
		return nil
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return TerminalProgress(w)
	}
	return LineProgress(w, 10*time.Second, time.Now)
}

// TerminalProgress draws a progress bar per transfer on w.
func TerminalProgress(w io.Writer) Progress { return terminalProgress{w: w} }

type terminalProgress struct{ w io.Writer }

// Sequential tells Push to upload one file at a time: bars of concurrent
// transfers would overwrite each other on one terminal line.
func (terminalProgress) Sequential() bool { return true }

func (p terminalProgress) Start(label string, total int64) ProgressTask {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	)
	return barTask{bar: bar, w: p.w}
}

type barTask struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

func (t barTask) Set(done int64) { _ = t.bar.Set64(done) }

func (t barTask) Done(err error) {
	if err != nil {
		_ = t.bar.Exit()
		fmt.Fprintln(t.w)
		return
	}
	_ = t.bar.Finish()
}

// LineProgress writes plain lines: at most one per transfer every `every`,
// and a last one for a transfer that printed any.
func LineProgress(w io.Writer, every time.Duration, now func() time.Time) Progress {
	return &lineProgress{w: w, every: every, now: now}
}

type lineProgress struct {
	mu    sync.Mutex // lines of concurrent tasks stay whole
	w     io.Writer
	every time.Duration
	now   func() time.Time
}

func (p *lineProgress) Start(label string, total int64) ProgressTask {
	t := p.now()
	return &lineTask{p: p, label: label, total: total, start: t, last: t}
}

type lineTask struct {
	p              *lineProgress
	label          string
	total, done    int64
	start, last    time.Time
	printed, ended bool
}

func (t *lineTask) Set(done int64) {
	t.done = done
	now := t.p.now()
	if now.Sub(t.last) < t.p.every {
		return
	}
	t.last, t.printed = now, true
	elapsed := now.Sub(t.start)
	rate := float64(done) / elapsed.Seconds()
	eta := "unknown"
	if rate > 0 && t.total >= done {
		eta = time.Duration(float64(t.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if t.total > 0 {
		pct = float64(done) * 100 / float64(t.total)
	}
	t.p.line("%s: %s of %s (%.0f%%), %s/s, ETA %s", t.label, bytesIEC(done), bytesIEC(t.total), pct, bytesIEC(int64(rate)), eta)
}

func (t *lineTask) Done(err error) {
	if t.ended || !t.printed {
		return
	}
	t.ended = true
	elapsed := t.p.now().Sub(t.start)
	if err != nil {
		t.p.line("%s: failed after %s: %v", t.label, elapsed.Round(time.Second), err)
		return
	}
	t.p.line("%s: %s in %s (%s/s)", t.label, bytesIEC(t.done), elapsed.Round(time.Second), bytesIEC(int64(float64(t.done)/max(elapsed.Seconds(), 0.001))))
}

func (p *lineProgress) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressReader counts what is read through it into a task. It seeks
// (retries start the body over) when the underlying reader does.
type progressReader struct {
	r    io.Reader
	task ProgressTask
	pos  int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.pos += int64(n)
	p.task.Set(p.pos)
	return n, err
}

func (p *progressReader) Seek(offset int64, whence int) (int64, error) {
	s, ok := p.r.(io.Seeker)
	if !ok {
		return 0, fmt.Errorf("progress: underlying reader cannot seek")
	}
	pos, err := s.Seek(offset, whence)
	if err == nil {
		p.pos = pos
		p.task.Set(pos)
	}
	return pos, err
}
