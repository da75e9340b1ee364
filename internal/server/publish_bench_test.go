package server_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
)

// BenchmarkPublishVsDirectPut publishes one large file through the whole
// service (CLI client hashing the file, HTTP upload streamed once to MinIO
// with digest verification, manifest, signature, metadata commit) and, in
// the same process, PUTs the same file straight to MinIO with minio-go. It
// reports both throughputs and their ratio. Size: STAGEGATE_BENCH_SIZE
// (default 1GiB). Needs the MinIO and PostgreSQL variables of scripts/test.sh.
//
//	STAGEGATE_BENCH_SIZE=1GiB go test -run '^$' -bench PublishVsDirectPut -benchtime 1x ./internal/server/
func BenchmarkPublishVsDirectPut(b *testing.B) {
	skipWithoutServices(b)
	size := benchSize(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "weights.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()

	s := newStack(b, "minio+postgres", func(c *config.Config) { c.Limits.MaxFileSize = 1 << 40 })
	pub := s.client(s.key("dev", auth.RolePublisher))
	mc := benchMinIO(b)
	ctx := context.Background()
	bucket := "sg-bench-direct-" + randomSuffix(b)
	if err := mc.MakeBucket(ctx, bucket, miniogo.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}

	var direct, publish time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		fh, _ := os.Open(path)
		if _, err := mc.PutObject(ctx, bucket, "weights-"+randomSuffix(b), fh, size, miniogo.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
		fh.Close()
		direct += time.Since(start)

		// A fresh file each round, so the service cannot skip the upload.
		if err := appendByte(path); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		local, err := client.CollectFiles([]string{path})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pub.Push(ctx, "dev", "bench-model", "1.0."+strconv.Itoa(i), local, client.PushOptions{Kind: "model"}); err != nil {
			b.Fatal(err)
		}
		publish += time.Since(start)
	}
	b.StopTimer()
	mb := float64(size) / (1 << 20)
	b.ReportMetric(mb/(direct.Seconds()/float64(b.N)), "direct-MiB/s")
	b.ReportMetric(mb/(publish.Seconds()/float64(b.N)), "publish-MiB/s")
	b.ReportMetric(direct.Seconds()/publish.Seconds(), "publish/direct")
}

func appendByte(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte{1}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// skipWithoutServices skips a benchmark that needs the real MinIO and
// PostgreSQL of scripts/test.sh.
func skipWithoutServices(b *testing.B) {
	if os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT") == "" || os.Getenv("STAGEGATE_TEST_POSTGRES_DSN") == "" {
		b.Skip("needs STAGEGATE_TEST_MINIO_* and STAGEGATE_TEST_POSTGRES_DSN (scripts/test.sh sets them)")
	}
}

// benchSize is STAGEGATE_BENCH_SIZE, default 1GiB.
func benchSize(b *testing.B) int64 {
	v := os.Getenv("STAGEGATE_BENCH_SIZE")
	if v == "" {
		return 1 << 30
	}
	size, err := config.ParseSize(v)
	if err != nil {
		b.Fatal(err)
	}
	return int64(size)
}

// benchMinIO is a plain minio-go client for the baselines.
func benchMinIO(b *testing.B) *miniogo.Client {
	mc, err := miniogo.New(os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT"), &miniogo.Options{
		Creds: credentials.NewStaticV4(os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"), os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"), ""),
	})
	if err != nil {
		b.Fatal(err)
	}
	return mc
}
