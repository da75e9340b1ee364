package server_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/metrics"
	"github.com/stagegate/stagegate/registry"
)

// TestPublishStorageRequests counts the blob store operations of one small
// publish (what `stagegate push` of one new file does: upload the blob,
// publish the version). On MinIO each is one request, and on two cores
// MinIO's CPU per request bounds the publish rate (#18), so the count is a
// budget: an operation added to the publish path must show up here.
//
// Today, per publish: put — the file blob, config, manifest, the
// environment's two signatures (over the manifest, and cosign's over its
// simple-signing payload: written at the same time), the ref; stat — the
// file blob before the commit. The gc handshake (intent, lease read) is in
// the metadata store.
func TestPublishStorageRequests(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		c := s.client(s.key("dev", auth.RolePublisher))
		ctx := context.Background()
		publish := func(i int) {
			t.Helper()
			data := fmt.Appendf(nil, `{"seq":%d,"pad":"%s"}`, i, bytes.Repeat([]byte{'x'}, 4000))
			dgst := registry.DigestOf(data)
			if _, err := c.UploadBlob(ctx, "dev", dgst, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Publish(ctx, "dev", "count/agent", fmt.Sprintf("1.0.%d", i), client.PublishRequest{
				Kind:  string(registry.KindAgentConfig),
				Files: []registry.File{{Path: "agent.json", Digest: dgst, Size: int64(len(data)), MediaType: "application/json"}},
			}); err != nil {
				t.Fatal(err)
			}
		}
		ops := func() map[string]float64 {
			fams := scrape(t, s.url)
			out := map[string]float64{}
			for _, op := range []string{"put", "get", "stat", "copy"} {
				out[op] = sample(fams, metrics.BlobOpDuration, map[string]string{"environment": "dev", "operation": op})
			}
			return out
		}
		publish(0) // the first publish of a name also creates its index rows
		before := ops()
		const n = 5
		for i := 1; i <= n; i++ {
			publish(i)
		}
		after := ops()
		want := map[string]float64{"put": 6, "get": 0, "stat": 1, "copy": 0}
		for op, w := range want {
			if got := (after[op] - before[op]) / n; got != w {
				t.Errorf("%s operations per small publish = %v, want %v", op, got, w)
			}
		}
	})
}
