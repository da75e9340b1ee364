package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// service is one `stagegate serve` subprocess. A subprocess, not an
// in-process server, so that its RSS is the service's alone and the
// client's work (hashing, writing pulled files) is not counted in it.
type service struct {
	name    string
	url     string
	dir     string
	env     []string
	cmd     *exec.Cmd
	done    chan error
	logFile *os.File
}

// backend is a storage and database combination.
type backend struct {
	name     string
	storage  string // filesystem | minio
	database string // sqlite | postgres
}

// startService starts bin serve on a free port with its data under dir.
func startService(ctx context.Context, cfg *benchConfig, bin, dir string, b backend) (*service, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"STAGEGATE_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"STAGEGATE_DATA_DIR="+dir,
		"STAGEGATE_STORAGE_DRIVER="+b.storage,
		"STAGEGATE_DATABASE_DRIVER="+b.database,
		"STAGEGATE_MAX_FILE_SIZE=1TiB",
	)
	if b.storage == "minio" {
		env = append(env,
			"STAGEGATE_MINIO_ENDPOINT="+cfg.minioEndpoint,
			"STAGEGATE_MINIO_ACCESS_KEY="+cfg.minioAccess,
			"STAGEGATE_MINIO_SECRET_KEY="+cfg.minioSecret,
			"STAGEGATE_MINIO_BUCKET_PREFIX="+cfg.prefix+"-"+b.name+"-",
		)
	}
	if b.database == "postgres" {
		env = append(env, "STAGEGATE_DATABASE_DSN="+cfg.postgresDSN)
	}
	s := &service{name: b.name, url: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, env: env, done: make(chan error, 1)}
	if s.logFile, err = os.Create(filepath.Join(dir, "serve.log")); err != nil {
		return nil, err
	}
	s.cmd = exec.CommandContext(ctx, bin, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s: serve exited (%v); log: %s", b.name, err, s.tail())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s: serve did not answer /healthz in 60s; log: %s", b.name, s.tail())
		}
	}
}

// key mints an API key with the service's own CLI on its store, as an
// operator does on the server host.
func (s *service) key(ctx context.Context, bin, env, role string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "keys", "create", "--env", env, "--role", role,
		"--name", "bench-"+role, "--owner", "bench@example.com")
	cmd.Env = s.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("keys create: %v: %s", err, errOut.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// rss is the service's resident set size in bytes (Linux /proc).
func (s *service) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", s.cmd.Process.Pid)
}

// cpu is the CPU time (user + system) the service has used so far. Unlike
// wall time it barely moves with the load of other processes on a shared
// machine, so it shows what a change saves when the wall-clock ratios are
// noise.
func (s *service) cpu() time.Duration { return procCPU(s.cmd.Process.Pid) }

// watchRSS samples the service's RSS every 20 ms until stop is called, and
// returns the peak growth over the RSS at the start.
func (s *service) watchRSS() (stop func() int64) {
	base, _ := s.rss()
	var (
		mu   sync.Mutex
		peak = base
		quit = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if v, err := s.rss(); err == nil {
					mu.Lock()
					peak = max(peak, v)
					mu.Unlock()
				}
			}
		}
	}()
	return func() int64 {
		close(quit)
		wg.Wait()
		return peak - base
	}
}

func (s *service) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.logFile.Close()
}

func (s *service) tail() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "serve.log"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
