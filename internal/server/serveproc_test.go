package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildStagegate builds the stagegate binary into a directory of the test
// (the build cache makes every build after the first of a run a link).
func buildStagegate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stagegate")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/stagegate").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveProc is a `stagegate serve` child process: the real binary, its real
// signal handling and listener, as an operator runs it.
type serveProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	url  string

	mu   sync.Mutex
	logs bytes.Buffer

	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited closes
}

// startServe starts `bin serve args…` with exactly env and waits until it
// logs the address it listens on. The process is killed when the test
// ends if it is still running.
func startServe(t *testing.T, name, bin string, env []string, args ...string) *serveProc {
	t.Helper()
	p, err := launchServe(t, name, bin, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launchServe is startServe for any goroutine: it reports failure instead
// of ending the test.
func launchServe(t *testing.T, name, bin string, env []string, args ...string) (*serveProc, error) {
	p := &serveProc{t: t, name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.Write(sc.Bytes())
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "stagegate listening" {
				addrc <- l.Addr
			}
		}
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name, p.Logs())
		}
	})
	select {
	case addr := <-addrc:
		p.url = "http://" + addr
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", name, p.waitErr, p.Logs())
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("%s did not listen within 2 minutes\n%s", name, p.Logs())
	}
}

// Logs returns what the process logged so far.
func (p *serveProc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// signal sends sig to the process.
func (p *serveProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code
// (-1 when it was killed by a signal, or did not exit in time).
func (p *serveProc) wait(d time.Duration) (code int, exited bool) {
	select {
	case <-p.exited:
	case <-time.After(d):
		return -1, false
	}
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0, true
	case errors.As(p.waitErr, &ee):
		return ee.ExitCode(), true
	}
	return -1, true
}

// processEnv is the environment of a child process: PATH and HOME from the
// test's (go and the binary need nothing else), plus extra.
func processEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, extra...)
}
