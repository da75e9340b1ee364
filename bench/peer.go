package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The peer row: the CNCF Distribution registry with its S3 driver on the
// same MinIO, pushed and pulled with oras, each beside the same direct
// MinIO call as stagegate's rows. It shows where a registry without a
// stream-once upload path lands (its S3 driver writes an upload to a
// staging key and copies it into place on commit), so stagegate's ratios
// can be read against a tool people already run.

const peerRowPush, peerRowPull = "peer: Distribution registry push (oras push vs PutObject)", "peer: Distribution registry pull (oras pull vs GetObject+sha256+file)"

// peer runs the peer rows when registry and oras are installed in the Go
// bin dir (`go install` at the versions README names), else one row says
// why it was skipped.
func (b *bench) peer(ctx context.Context) error {
	gobin := goBin()
	var missing []string
	for _, tool := range []string{"registry", "oras"} {
		if _, err := os.Stat(filepath.Join(gobin, tool)); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		b.add(row{name: "Distribution registry + oras (peer)", stagegate: "skipped: " + strings.Join(missing, ", ") + " not in " + gobin,
			baseline: "-", ratio: "-", target: "-", met: "-"})
		return nil
	}
	registryBucket, err := b.bucket(ctx, "peer-registry")
	if err != nil {
		return err
	}
	direct, err := b.bucket(ctx, "peer-direct")
	if err != nil {
		return err
	}
	dir := filepath.Join(b.cfg.dir, "peer")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stop, addr, err := b.startRegistry(ctx, dir, registryBucket)
	if err != nil {
		return err
	}
	defer stop()

	file := "model.safetensors" // oras names the layer after the path as given
	fmt.Fprintf(os.Stderr, "==> peer: writing a %s safetensors file\n", iec(b.cfg.size))
	if err := writeSafetensors(filepath.Join(dir, file), b.cfg.size, 9); err != nil {
		return err
	}
	oras := func(args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(gobin, "oras"), args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("oras %s: %w\n%s", args[0], err, out)
		}
		return nil
	}
	ref := addr + "/bench/model:1.0.0"

	base, err := timed(func() error { return putFile(ctx, b.mc, direct, "model", filepath.Join(dir, file)) })
	if err != nil {
		return fmt.Errorf("direct PutObject: %w", err)
	}
	push, err := timed(func() error {
		return oras("push", "--plain-http", "--no-tty", ref, file+":application/octet-stream")
	})
	if err != nil {
		return err
	}
	b.add(peerRow(peerRowPush, b.cfg.size, push, base, "PutObject"))

	baseGet, err := timed(func() error { return getHashWrite(ctx, b.mc, direct, "model", filepath.Join(dir, "direct-get.bin")) })
	if err != nil {
		return fmt.Errorf("direct GetObject: %w", err)
	}
	os.Remove(filepath.Join(dir, "direct-get.bin"))
	pull, err := timed(func() error {
		// oras verifies the digest of what it pulls, as stagegate pull does.
		return oras("pull", "--plain-http", "--no-tty", "-o", "pulled", ref)
	})
	if err != nil {
		return err
	}
	b.add(peerRow(peerRowPull, b.cfg.size, pull, baseGet, "GetObject"))
	return nil
}

// peerRow is a throughput row with no target: the peer is context.
func peerRow(name string, size int64, peer, base time.Duration, what string) row {
	r := throughputRow(name, size, peer, base, what, 0)
	r.target, r.met = "-", "-"
	return r
}

// startRegistry runs the Distribution registry on a free loopback port,
// storing into bucket on the bench's MinIO, and waits until /v2/ answers.
func (b *bench) startRegistry(ctx context.Context, dir, bucket string) (stop func(), addr string, err error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  s3:
    accesskey: %q
    secretkey: %q
    region: us-east-1
    regionendpoint: http://%s
    forcepathstyle: true
    secure: false
    bucket: %q
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, b.cfg.minioAccess, b.cfg.minioSecret, b.cfg.minioEndpoint, bucket, addr)
	cfgPath := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, "", err
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(filepath.Join(goBin(), "registry"), "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
		logFile.Close()
	}
	fmt.Fprintf(os.Stderr, "==> peer: Distribution registry on %s (S3 driver, bucket %s)\n", addr, bucket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			stop()
			log, _ := os.ReadFile(logFile.Name())
			return nil, "", fmt.Errorf("registry exited: %v\n%s", err, log)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, addr, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, "", errors.New("registry did not answer /v2/ within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
