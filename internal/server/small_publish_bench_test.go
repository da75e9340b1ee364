package server_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// BenchmarkSmallPublish publishes 4 KiB agent configs from 32 concurrent
// clients, each one request with the file inline, as `stagegate push`
// does, through an in-process service on each stack. It is for profiles of
// the service's side of a small publish (client and service share the
// process; MinIO and PostgreSQL do not):
//
//	go test -run '^$' -bench SmallPublish -benchtime 2000x -cpuprofile cpu.out ./internal/server/
//	go tool pprof -top cpu.out
//
// scripts/bench.sh -rows small measures the rate against MinIO itself.
func BenchmarkSmallPublish(b *testing.B) {
	skipWithoutServices(b)
	for _, kind := range []string{"embedded", "minio+postgres"} {
		b.Run(kind, func(b *testing.B) {
			s := newStack(b, kind, nil)
			c := s.client(s.key("dev", auth.RolePublisher))
			ctx := context.Background()
			run := randomSuffix(b)
			var seq atomic.Int64
			b.SetParallelism(16) // 32 clients on two cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					data := fmt.Appendf(nil, "%s %d %4000d", run, i, i)
					_, err := c.Publish(ctx, "dev", "bench/"+run+"/agent-"+strconv.FormatInt(i%32, 10), "1.0."+strconv.FormatInt(i, 10), client.PublishRequest{
						Kind:     string(registry.KindAgentConfig),
						Files:    []registry.File{{Path: "agent.json", Digest: registry.DigestOf(data), Size: int64(len(data))}},
						Contents: map[string][]byte{"agent.json": data},
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
