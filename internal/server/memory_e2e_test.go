package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleRSSLimit is what `stagegate serve` may hold resident once ready with
// three environments (issue #15); decrypting their cosign keys alone used
// to leave it at ~185 MiB.
const idleRSSLimit = 64 << 20

// TestIdleRSS starts the real binary with the embedded default (three
// environments, each with a password-encrypted cosign key that start-up
// decrypts with scrypt: not WithSigners, which skips that), waits until it
// is ready and reads its resident set from /proc. Twice: the first start
// generates the keys, the second only decrypts them, as every restart does.
// The binary is built without -race, whose shadow memory would swamp the
// figure.
func TestIdleRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc: VmRSS is read from /proc/PID/status")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "stagegate")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/stagegate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, start := range []string{"first start (generates the keys)", "restart (decrypts them)"} {
		rss := idleRSS(t, bin, dataDir)
		t.Logf("%s: VmRSS %.1f MiB once ready", start, float64(rss)/(1<<20))
		if rss > idleRSSLimit {
			t.Errorf("%s: VmRSS %.1f MiB once ready, want at most %d MiB", start, float64(rss)/(1<<20), idleRSSLimit>>20)
		}
	}
	keys, err := filepath.Glob(filepath.Join(dataDir, "keys", "*.key"))
	if err != nil || len(keys) != 3 {
		t.Fatalf("signing keys %v (%v), want one per environment", keys, err)
	}
	for _, k := range keys {
		if pem, err := os.ReadFile(k); err != nil || !strings.Contains(string(pem), "ENCRYPTED SIGSTORE PRIVATE KEY") {
			t.Fatalf("%s is not an encrypted cosign key: %v", k, err)
		}
	}
}

// idleRSS starts `bin serve` on dataDir, waits for /readyz and returns the
// process's VmRSS in bytes; the process is stopped before it returns.
func idleRSS(t *testing.T, bin, dataDir string) int64 {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	// Nothing of the test's environment (STAGEGATE_* would configure it).
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	addrc := make(chan string, 1)
	var logs strings.Builder
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "stagegate listening" {
				addrc <- l.Addr
			}
		}
		_ = cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-exited:
		t.Fatalf("serve exited before listening:\n%s", logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not listen within 2 minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("serve on %s not ready within a minute: %v", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", cmd.Process.Pid)
	return 0
}
