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
// publish, both ways a client can make it: the file uploaded first, then
// the version; or the file's bytes inside the publish request (what
// `stagegate push` does for a small file). On MinIO each operation is one
// request, and on two cores MinIO's CPU per request bounds the publish rate
// (#18), so the count is a budget: an operation added to the publish path
// must show up here.
//
// Today, per publish: put — the file blob, config, manifest, the
// environment's two signatures (over the manifest, and cosign's over its
// simple-signing payload: written at the same time), the ref; stat — the
// uploaded file blob before the commit, which an inline file does not
// need (the publish stores it itself, create-once). The gc handshake
// (intent, lease read) is in the metadata store.
func TestPublishStorageRequests(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		c := s.client(s.key("dev", auth.RolePublisher))
		ctx := context.Background()
		publish := func(i int, inline bool) {
			t.Helper()
			data := fmt.Appendf(nil, `{"seq":%d,"inline":%t,"pad":"%s"}`, i, inline, bytes.Repeat([]byte{'x'}, 4000))
			dgst := registry.DigestOf(data)
			req := client.PublishRequest{
				Kind:  string(registry.KindAgentConfig),
				Files: []registry.File{{Path: "agent.json", Digest: dgst, Size: int64(len(data)), MediaType: "application/json"}},
			}
			if inline {
				req.Contents = map[string][]byte{"agent.json": data}
			} else if _, err := c.UploadBlob(ctx, "dev", dgst, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Publish(ctx, "dev", "count/agent", fmt.Sprintf("1.%d.%d", map[bool]int{false: 0, true: 1}[inline], i), req); err != nil {
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
		publish(0, false) // the first publish of a name also creates its index rows
		for _, inline := range []bool{false, true} {
			before := ops()
			const n = 5
			for i := 1; i <= n; i++ {
				publish(i, inline)
			}
			after := ops()
			want := map[string]float64{"put": 6, "get": 0, "stat": 1, "copy": 0}
			if inline {
				want["stat"] = 0
			}
			for op, w := range want {
				if got := (after[op] - before[op]) / n; got != w {
					t.Errorf("inline=%v: %s operations per small publish = %v, want %v", inline, op, got, w)
				}
			}
		}
	})
}
