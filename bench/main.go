// Command bench measures stagegate's data path against bare MinIO in one
// run and prints one table: each stagegate path beside its MinIO baseline
// (same MinIO, same bytes, same process driving both), the ratio, the
// target of issue #18, and whether it is met.
//
// It builds ./cmd/stagegate and starts it as a subprocess per backend (so
// the service's RSS is its own), on the MinIO and PostgreSQL it is given;
// scripts/bench.sh starts those like scripts/test.sh does and runs it:
//
//	scripts/bench.sh                       # every row
//	scripts/bench.sh -rows small           # small publishes only
//	go run ./bench -minio 127.0.0.1:9000 -minio-access-key K -minio-secret-key S \
//	    -postgres postgres://postgres@127.0.0.1:5432/bench?sslmode=disable
//
// Flags default to the STAGEGATE_TEST_* variables of scripts/test.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stagegate/stagegate/internal/config"
)

type benchConfig struct {
	minioEndpoint, minioAccess, minioSecret string
	postgresDSN                             string
	clients                                 int
	duration                                time.Duration
	size                                    int64
	shards                                  int
	shardSize                               int64
	rows                                    map[string]bool
	dir                                     string
	prefix                                  string // bucket name prefix of this run
	keep                                    bool
	minioPID                                int // 0: unknown (no MinIO CPU figures)
}

// row is one line of the result table.
type row struct {
	name, stagegate, baseline, ratio, target, met string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := &benchConfig{}
	fs.StringVar(&cfg.minioEndpoint, "minio", os.Getenv("STAGEGATE_TEST_MINIO_ENDPOINT"), "MinIO host:port")
	fs.StringVar(&cfg.minioAccess, "minio-access-key", os.Getenv("STAGEGATE_TEST_MINIO_ACCESS_KEY"), "MinIO access key")
	fs.StringVar(&cfg.minioSecret, "minio-secret-key", os.Getenv("STAGEGATE_TEST_MINIO_SECRET_KEY"), "MinIO secret key")
	fs.StringVar(&cfg.postgresDSN, "postgres", os.Getenv("STAGEGATE_TEST_POSTGRES_DSN"), "PostgreSQL DSN (an empty database this run may fill)")
	fs.IntVar(&cfg.clients, "clients", 32, "concurrent clients of the small-publish rows")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "duration of each small-publish load")
	size := fs.String("size", "1GiB", "size of the large file")
	fs.IntVar(&cfg.shards, "shards", 8, "files of the sharded model")
	shardSize := fs.String("shard-size", "128MiB", "size of each shard")
	rows := fs.String("rows", "small,large,sharded,oci,peer", "rows to run: small, large (publish, pull, promotion, RSS), sharded, oci (chunked upload), peer")
	fs.StringVar(&cfg.dir, "dir", "", "work directory (default: a fresh one under $TMPDIR, removed afterwards)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (service logs, data)")
	minioPID, _ := strconv.Atoi(os.Getenv("STAGEGATE_BENCH_MINIO_PID"))
	fs.IntVar(&cfg.minioPID, "minio-pid", minioPID, "pid of the MinIO server, for its CPU time and request counts per small publish (scripts/bench.sh sets it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.minioEndpoint == "" || cfg.postgresDSN == "" {
		return fmt.Errorf("needs -minio and -postgres (or the STAGEGATE_TEST_* variables scripts/test.sh sets); scripts/bench.sh starts both")
	}
	var err error
	if cfg.size, err = parseSize(*size); err != nil {
		return err
	}
	if cfg.shardSize, err = parseSize(*shardSize); err != nil {
		return err
	}
	cfg.rows = map[string]bool{}
	for _, r := range strings.Split(*rows, ",") {
		cfg.rows[strings.TrimSpace(r)] = true
	}
	if cfg.dir == "" {
		if cfg.dir, err = os.MkdirTemp("", "stagegate-bench-"); err != nil {
			return err
		}
	}
	if !cfg.keep {
		defer os.RemoveAll(cfg.dir)
	}
	cfg.prefix = "sgb" + randomHex(3)

	bin := filepath.Join(cfg.dir, "stagegate")
	fmt.Fprintln(os.Stderr, "==> building ./cmd/stagegate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/stagegate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building stagegate: %w", err)
	}
	mc, err := miniogo.New(cfg.minioEndpoint, &miniogo.Options{Creds: credentials.NewStaticV4(cfg.minioAccess, cfg.minioSecret, "")})
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, bin: bin, mc: mc}
	defer b.cleanup()
	start := time.Now()
	if cfg.rows["small"] {
		if err := b.small(ctx); err != nil {
			return err
		}
	}
	if cfg.rows["large"] || cfg.rows["sharded"] || cfg.rows["oci"] {
		if err := b.large(ctx); err != nil {
			return err
		}
	}
	if cfg.rows["peer"] {
		if err := b.peer(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nstagegate data path vs bare MinIO, %s, %d CPUs, %s (small: %d clients × %s, %s objects; large: %s; sharded: %d × %s)\n\n",
		time.Now().UTC().Format("2006-01-02"), numCPU(), time.Since(start).Round(time.Second), cfg.clients, cfg.duration,
		iec(smallSize), iec(cfg.size), cfg.shards, iec(cfg.shardSize))
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tSTAGEGATE\tBASELINE (MinIO)\tRATIO\tTARGET\tMET")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.stagegate, r.baseline, r.ratio, r.target, r.met)
	}
	return tw.Flush()
}

// bench holds what the rows share.
type bench struct {
	cfg      *benchConfig
	bin      string
	mc       *miniogo.Client
	rows     []row
	buckets  []string
	services []*service
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	fmt.Fprintf(os.Stderr, "    %-44s %s | %s | %s | %s\n", r.name, r.stagegate, r.baseline, r.ratio, r.met)
}

// bucket creates a bucket for a baseline.
func (b *bench) bucket(ctx context.Context, name string) (string, error) {
	bucket := b.cfg.prefix + "-" + name
	if err := b.mc.MakeBucket(ctx, bucket, miniogo.MakeBucketOptions{}); err != nil {
		return "", err
	}
	b.buckets = append(b.buckets, bucket)
	return bucket, nil
}

// start starts a service on backend bk and remembers it for cleanup.
func (b *bench) start(ctx context.Context, bk backend) (*service, error) {
	fmt.Fprintf(os.Stderr, "==> starting stagegate on %s\n", bk.name)
	s, err := startService(ctx, b.cfg, b.bin, filepath.Join(b.cfg.dir, bk.name), bk)
	if err != nil {
		return nil, err
	}
	b.services = append(b.services, s)
	return s, nil
}

// cleanup stops the services and empties and removes every bucket of the
// run, the services' too (they share the run's prefix).
func (b *bench) cleanup() {
	for _, s := range b.services {
		s.stop()
	}
	ctx := context.Background()
	all, err := b.mc.ListBuckets(ctx)
	if err != nil {
		return
	}
	for _, bi := range all {
		if !strings.HasPrefix(bi.Name, b.cfg.prefix+"-") {
			continue
		}
		objs := b.mc.ListObjects(ctx, bi.Name, miniogo.ListObjectsOptions{Recursive: true})
		for e := range b.mc.RemoveObjects(ctx, bi.Name, objs, miniogo.RemoveObjectsOptions{}) {
			_ = e
		}
		b.mc.RemoveBucket(ctx, bi.Name)
	}
}

// small runs the small-publish rows: the direct PutObject baseline, then
// the same load of publishes on MinIO+PostgreSQL and on the embedded
// default.
func (b *bench) small(ctx context.Context) error {
	bucket, err := b.bucket(ctx, "small")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "==> small: %d clients × %s of direct PutObject (%s)\n", b.cfg.clients, b.cfg.duration, iec(smallSize))
	probe := minioProbe{pid: b.cfg.minioPID, endpoint: b.cfg.minioEndpoint}
	m0 := probe.before(ctx)
	direct := directSmallPuts(ctx, b.cfg, b.mc, bucket)
	directCost := perOp(m0, probe.after(ctx), direct.ops)
	if direct.errors > 0 {
		return fmt.Errorf("direct PutObject: %d errors, first: %v", direct.errors, direct.firstErr)
	}
	for _, bk := range []backend{
		{name: "minio-pg", storage: "minio", database: "postgres"},
		{name: "embedded", storage: "filesystem", database: "sqlite"},
	} {
		svc, err := b.start(ctx, bk)
		if err != nil {
			return err
		}
		token, err := svc.key(ctx, b.bin, "dev", "admin")
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "==> small: %d clients × %s of publishes on %s\n", b.cfg.clients, b.cfg.duration, bk.name)
		var m0 minioSample
		if bk.storage == "minio" {
			m0 = probe.before(ctx)
		}
		cpu0 := svc.cpu()
		res, err := smallPublishes(ctx, b.cfg, svc, token)
		if err != nil {
			return err
		}
		cost := ""
		if res.ops > 0 {
			cost = fmt.Sprintf("; service %.2f ms CPU per op", float64((svc.cpu()-cpu0).Microseconds())/1000/float64(res.ops))
		}
		if bk.storage == "minio" {
			cost += perOp(m0, probe.after(ctx), res.ops)
		}
		if res.errors > 0 {
			fmt.Fprintf(os.Stderr, "    %d failed publishes, first: %v\n", res.errors, res.firstErr)
		}
		ratio := res.rate() / direct.rate()
		r := row{
			name:      "small publish 4 KiB, " + bk.name,
			stagegate: fmt.Sprintf("%.0f/s p50 %s p99 %s%s", res.rate(), ms(res.p50), ms(res.p99), cost),
			baseline:  fmt.Sprintf("%.0f PutObject/s p50 %s p99 %s%s", direct.rate(), ms(direct.p50), ms(direct.p99), directCost),
			ratio:     fmt.Sprintf("%.2f×", ratio),
		}
		if bk.storage == "minio" {
			r.target = "≥ 0.30×, p99 < 100 ms"
			r.met = yes(ratio >= 0.3 && res.p99 < 100*time.Millisecond && res.errors == 0)
		} else {
			r.target = "≥ 1000/s, p99 < 50 ms"
			r.met = yes(res.rate() >= 1000 && res.p99 < 50*time.Millisecond && res.errors == 0)
		}
		b.add(r)
		svc.stop()
		b.services = b.services[:len(b.services)-1]
	}
	return nil
}

func goBin() string {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return ""
	}
	// One line each: GOBIN (often empty), then GOPATH.
	gobin, gopath, _ := strings.Cut(string(out), "\n")
	if gobin = strings.TrimSpace(gobin); gobin != "" {
		return gobin
	}
	gopath, _, _ = strings.Cut(strings.TrimSpace(gopath), string(os.PathListSeparator))
	return filepath.Join(gopath, "bin")
}

func parseSize(s string) (int64, error) {
	v, err := config.ParseSize(s)
	return int64(v), err
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func iec(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
