package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// minioProbe reads what the MinIO server spent: its CPU time (Linux /proc,
// when the bench knows its pid: scripts/bench.sh passes it) and the S3
// requests it served (its Prometheus metrics, public in the MinIO that
// scripts/services.sh starts). The small-publish rows divide both by the
// operations done, so the table shows what bounds them: how many requests
// one publish costs MinIO, and what one costs.
type minioProbe struct {
	pid      int
	endpoint string
}

type minioSample struct {
	cpu      time.Duration
	requests float64
	ok       bool
}

// metricsLag is how long MinIO may serve a cached request count (its node
// metrics are refreshed every 10 s): a sample waits that long for it.
const metricsLag = 11 * time.Second

// before samples MinIO ahead of a load: its request count once the
// metrics caught up with what came earlier (metricsLag), then its CPU time.
func (p minioProbe) before(ctx context.Context) minioSample { return p.sample(ctx, false) }

// after samples MinIO at the end of a load: its CPU time now, its request
// count once the metrics caught up with the load (the bench is idle then).
func (p minioProbe) after(ctx context.Context) minioSample { return p.sample(ctx, true) }

func (p minioProbe) sample(ctx context.Context, cpuFirst bool) minioSample {
	if p.pid == 0 {
		return minioSample{}
	}
	var cpu time.Duration
	if cpuFirst {
		cpu = procCPU(p.pid)
	}
	select {
	case <-ctx.Done():
		return minioSample{}
	case <-time.After(metricsLag):
	}
	reqs, err := p.requests(ctx)
	if err != nil {
		return minioSample{}
	}
	if !cpuFirst {
		cpu = procCPU(p.pid)
	}
	return minioSample{cpu: cpu, requests: reqs, ok: true}
}

// requests sums minio_s3_requests_total over every API.
func (p minioProbe) requests(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.endpoint+"/minio/v2/metrics/node", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "minio_s3_requests_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// perOp describes what MinIO spent between two samples per operation.
func perOp(before, after minioSample, ops int) string {
	if !before.ok || !after.ok || ops == 0 {
		return ""
	}
	return fmt.Sprintf("; MinIO %.1f req, %.2f ms CPU per op",
		(after.requests-before.requests)/float64(ops),
		float64((after.cpu-before.cpu).Microseconds())/1000/float64(ops))
}

// procCPU is the CPU time (user + system) process pid has used so far
// (Linux /proc, clock ticks of 10 ms); 0 when unknown.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
