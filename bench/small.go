package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	miniogo "github.com/minio/minio-go/v7"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/registry"
)

// smallSize is the size of one small artifact (an agent config).
const smallSize = 4 << 10

// loadResult is what a closed-loop load of concurrent workers achieved.
type loadResult struct {
	ops      int
	elapsed  time.Duration
	p50, p99 time.Duration
	errors   int
	firstErr error
}

func (r loadResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// runLoad runs op from clients goroutines, each calling it back to back,
// for d, and reports the rate and latency percentiles of the calls that
// succeeded.
func runLoad(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, worker, i int) error) loadResult {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      []time.Duration
		errs     atomic.Int64
		firstErr error
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t := time.Now()
				if err := op(ctx, w, i); err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := loadResult{ops: len(lat), elapsed: elapsed, errors: int(errs.Load()), firstErr: firstErr}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)*50/100]
		r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// smallContent returns a 4 KiB agent config unique to (run, worker, i), so
// that every publish stores a new blob.
func smallContent(run string, worker, i int) []byte {
	head := fmt.Sprintf(`{"name":"bench-agent-%d","model":"gpt-bench","temperature":0.2,"run":%q,"seq":%d,"pad":"`, worker, run, i)
	buf := bytes.Repeat([]byte{'x'}, smallSize)
	copy(buf, head)
	copy(buf[smallSize-2:], `"}`)
	return buf
}

// directSmallPuts is the baseline: clients goroutines doing PutObject of
// 4 KiB objects to one bucket.
func directSmallPuts(ctx context.Context, cfg *benchConfig, mc *miniogo.Client, bucket string) loadResult {
	run := randomHex(4)
	return runLoad(ctx, cfg.clients, cfg.duration, func(ctx context.Context, w, i int) error {
		data := smallContent(run, w, i)
		_, err := mc.PutObject(ctx, bucket, "direct/"+strconv.Itoa(w)+"/"+strconv.Itoa(i), bytes.NewReader(data),
			int64(len(data)), miniogo.PutObjectOptions{ContentType: "application/octet-stream"})
		return err
	})
}

// smallPublishes is clients goroutines publishing 4 KiB agent configs over
// the REST API as `stagegate push` of one small file does: one PUT of the
// version carrying the file's bytes (contents). Each client has its own
// publisher key, as the jobs of a CI fleet do: one key would be held to
// the per-key request rate.
func smallPublishes(ctx context.Context, cfg *benchConfig, svc *service, adminToken string) (loadResult, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.clients * 2}}
	admin := client.New(svc.url, adminToken, hc)
	clients := make([]*client.Client, cfg.clients)
	for i := range clients {
		_, token, err := admin.CreateKey(ctx, "dev", api.CreateKeyRequest{Name: "bench-" + strconv.Itoa(i), Role: "publisher"})
		if err != nil {
			return loadResult{}, fmt.Errorf("creating publisher key %d: %w", i, err)
		}
		clients[i] = client.New(svc.url, token, hc).WithRetry(client.NoRetry())
	}
	run := randomHex(4)
	return runLoad(ctx, cfg.clients, cfg.duration, func(ctx context.Context, w, i int) error {
		c := clients[w]
		data := smallContent(run, w, i)
		sum := sha256.Sum256(data)
		dgst := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		_, err := c.Publish(ctx, "dev", "bench/"+run+"/agent-"+strconv.Itoa(w), "1.0."+strconv.Itoa(i), client.PublishRequest{
			Kind:     string(registry.KindAgentConfig),
			Files:    []registry.File{{Path: "agent.json", Digest: dgst, Size: int64(len(data)), MediaType: "application/json"}},
			Contents: map[string][]byte{"agent.json": data},
		})
		return err
	}), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
