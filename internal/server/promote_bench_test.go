package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/config"
)

// BenchmarkPromoteVsCopyAndHash promotes a large safetensors model dev ->
// staging through the default staging gates (digest integrity re-reads and
// hashes every byte, safetensors header check, JUnit evidence) with the
// server-side MinIO copy, signing and the release commit; and, in the same
// process, runs the baseline: a raw MinIO CopyObject of the same bytes plus a
// streaming GET that hashes them. Size: STAGEGATE_BENCH_SIZE (default 1GiB).
//
//	STAGEGATE_BENCH_SIZE=1GiB go test -run '^$' -bench PromoteVsCopyAndHash -benchtime 1x ./internal/server/
func BenchmarkPromoteVsCopyAndHash(b *testing.B) {
	skipWithoutServices(b)
	size := benchSize(b)
	ctx := context.Background()
	s := newStack(b, "minio+postgres", func(c *config.Config) { c.Limits.MaxFileSize = 1 << 40 })
	pub := s.client(s.key("dev", auth.RolePublisher))
	promoter := s.client(s.key("staging", auth.RolePromoter))
	mc := benchMinIO(b)
	dst := "sg-bench-copy-" + randomSuffix(b)
	if err := mc.MakeBucket(ctx, dst, miniogo.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}

	var promote, baseline time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		version := "1.0." + strconv.Itoa(i)
		path := writeSafetensors(b, size, byte(i))
		local, err := client.CollectFiles([]string{path})
		if err != nil {
			b.Fatal(err)
		}
		res, err := pub.Push(ctx, "dev", "big-model", version, local, client.PushOptions{Kind: "model"})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := pub.AddEvidence(ctx, "dev", "big-model", version, "junit", []byte(passingJUnit)); err != nil {
			b.Fatal(err)
		}
		os.Remove(path)
		b.StartTimer()

		start := time.Now()
		out, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "big-model", Version: version})
		if err != nil || !out.Created {
			b.Fatalf("promote: %+v %v", out, err)
		}
		promote += time.Since(start)

		// Baseline: raw server-side copy + read-and-hash of the same object.
		file := res.Version.Files[0]
		srcBucket := s.cfg.BucketFor(s.cfg.Environments[0])
		start = time.Now()
		if _, err := mc.ComposeObject(ctx, miniogo.CopyDestOptions{Bucket: dst, Object: "copy-" + version},
			miniogo.CopySrcOptions{Bucket: srcBucket, Object: "blobs/sha256/" + file.Digest.Hex}); err != nil {
			b.Fatal(err)
		}
		obj, err := mc.GetObject(ctx, srcBucket, "blobs/sha256/"+file.Digest.Hex, miniogo.GetObjectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, obj); err != nil {
			b.Fatal(err)
		}
		obj.Close()
		baseline += time.Since(start)
	}
	b.StopTimer()
	mb := float64(size) / (1 << 20)
	b.ReportMetric(mb/(promote.Seconds()/float64(b.N)), "promote-MiB/s")
	b.ReportMetric(mb/(baseline.Seconds()/float64(b.N)), "copy+hash-MiB/s")
	b.ReportMetric(baseline.Seconds()/promote.Seconds(), "promote/baseline")
}

// writeSafetensors writes a valid safetensors file of about size bytes.
func writeSafetensors(b *testing.B, size int64, seed byte) string {
	b.Helper()
	values := (size - 128) / 4
	header := []byte(`{"w":{"dtype":"F32","shape":[` + strconv.FormatInt(values, 10) + `],"data_offsets":[0,` + strconv.FormatInt(values*4, 10) + `]}}`)
	path := filepath.Join(b.TempDir(), "model.safetensors")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, uint64(len(header))); err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(header); err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i) ^ seed
	}
	for left := values * 4; left > 0; {
		n := min(left, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
	return path
}
