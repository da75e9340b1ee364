// Package minio is the production blob.Driver: one MinIO (S3) bucket per
// environment.
//
// # Create-once
//
// Every write carries If-None-Match: * so that MinIO itself refuses to
// replace an existing object; no lock or read-before-write is involved, so it
// holds with several service replicas.
//
// minio-go cannot be used as is for objects it uploads in parts: its
// PutObject sends the caller's headers on CreateMultipartUpload but
// deliberately drops them on CompleteMultipartUpload (completeUploadOpts in
// minio-go v7.4.1, api-put-object-multipart.go). MinIO checks the condition
// at creation, so a second sequential upload fails, but two uploads that are
// in flight together both pass that check and the last to complete silently
// overwrites the first (observed against this MinIO: 4 concurrent 40 MiB
// PutObject calls with SetMatchETagExcept("*") all succeeded). Put therefore
// drives multipart uploads itself through minio-go's Core API and sends
// If-None-Match: * on CompleteMultipartUpload too, where MinIO evaluates it
// atomically with publishing the object and answers 412 PreconditionFailed.
//
// # Memory and failure
//
// Put reads the body into part buffers of PartSize bytes (8 MiB by default)
// and uploads up to Concurrency parts at once (3 by default), so one Put
// holds at most Concurrency×PartSize bytes (24 MiB) whatever the object
// size, and reading overlaps with sending. Parts go out unsigned, each with
// its CRC32C, which MinIO checks (partOptions): minio-go's per-chunk
// streaming signature over plain HTTP cost a second SHA-256 pass and made
// garbage at a fifth of the upload rate, so that with 4 × 16 MiB buffers a
// 1 GiB publish grew a server by 120 MiB. Now 3 × 8 MiB grow it by ~31 MiB
// and a fourth part in flight gains nothing measurable
// (bench/). Bodies that fit in one part go out as a single PUT. When the
// body fails (including a digest veto from blob.Store) or the context ends,
// the multipart upload is aborted and nothing becomes visible. A process
// killed mid-upload leaves parts behind that are not visible as an object;
// an AbortIncompleteMultipartUpload lifecycle rule on the bucket reclaims
// them.
package minio

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stagegate/stagegate/internal/blob"
)

// Upload tuning defaults; see the package comment for the memory bound.
const (
	DefaultPartSize    = 8 << 20
	DefaultConcurrency = 3

	minPartSize = 5 << 20 // S3 minimum for every part but the last
	maxParts    = 10000   // S3 maximum parts per upload
	maxCopyPart = 5 << 30 // S3 maximum for one part (and one CopyObject)
	// defaultCopyPartSize is the range each UploadPartCopy request copies.
	// Copy parts cost the service no memory, so they are much larger than
	// upload parts; Concurrency of them run at once so that a large blob is
	// copied by several server-side streams.
	defaultCopyPartSize = 128 << 20
	// abortTimeout bounds the clean-up of a failed upload, which runs even
	// when the caller's context is already cancelled.
	abortTimeout = 30 * time.Second
)

// Config locates one environment's bucket.
type Config struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string // optional; MinIO's default when empty
	Secure    bool   // HTTPS
	// CreateBucket creates the bucket on New when it is missing, so a fresh
	// environment needs no manual set-up.
	CreateBucket bool
	// PartSize is the multipart part size in bytes (0: DefaultPartSize;
	// at least 5 MiB). Unknown-size uploads are limited to 10000 parts,
	// i.e. 78 GiB with the default (known sizes grow the parts instead).
	PartSize int64
	// Concurrency is how many parts of one upload are in flight (0:
	// DefaultConcurrency).
	Concurrency int
	// Retention, when set, makes the bucket WORM (retention.go): it is
	// created with object lock and a default retention rule.
	Retention *Retention
}

// Driver stores each key as an object of one bucket.
type Driver struct {
	core     *miniogo.Core
	bucket   string
	partSize int64
	threads  int

	// server identifies endpoint and credential, for CopyFrom: two drivers
	// with equal servers can copy between their buckets server-side.
	server server
	// copyPartSize is the range of one UploadPartCopy request; a field so
	// tests can force many parts on small objects.
	copyPartSize int64

	// locked is set when the bucket has object lock (Retention): objects
	// then have versions, and Delete must name the version to free space.
	locked bool
}

// server is what decides whether one request can read a bucket of one
// driver and write a bucket of another: the same MinIO deployment, reached
// the same way, with the same access key.
type server struct {
	endpoint  string
	secure    bool
	accessKey string
}

var (
	_ blob.Driver          = (*Driver)(nil)
	_ blob.Copier          = (*Driver)(nil)
	_ blob.VerifyingCopier = (*Driver)(nil)
	_ blob.PartsCopier     = (*Driver)(nil)
)

// New connects to cfg.Endpoint and checks that the bucket exists, creating it
// when cfg.CreateBucket is set. Failing here rather than on the first request
// makes a misconfigured environment visible at start-up.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("minio: endpoint and bucket are required")
	}
	d := &Driver{
		bucket:       cfg.Bucket,
		partSize:     cfg.PartSize,
		threads:      cfg.Concurrency,
		server:       server{endpoint: strings.ToLower(cfg.Endpoint), secure: cfg.Secure, accessKey: cfg.AccessKey},
		copyPartSize: defaultCopyPartSize,
	}
	if d.partSize == 0 {
		d.partSize = DefaultPartSize
	}
	if d.partSize < minPartSize {
		return nil, fmt.Errorf("minio: part size %d is below the S3 minimum of %d", d.partSize, minPartSize)
	}
	if d.threads <= 0 {
		d.threads = DefaultConcurrency
	}
	core, err := miniogo.NewCore(cfg.Endpoint, &miniogo.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("minio: client: %w", err)
	}
	d.core = core
	ok, err := core.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("minio: bucket %q: %w", cfg.Bucket, err)
	}
	if ok {
		return d, d.applyRetention(ctx, cfg.Retention)
	}
	if !cfg.CreateBucket {
		return nil, fmt.Errorf("minio: bucket %q: %w", cfg.Bucket, blob.ErrNotFound)
	}
	err = core.MakeBucket(ctx, cfg.Bucket, miniogo.MakeBucketOptions{Region: cfg.Region, ObjectLocking: cfg.Retention != nil})
	if code := miniogo.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		// Another replica created it first.
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("minio: create bucket %q: %w", cfg.Bucket, err)
	}
	return d, d.applyRetention(ctx, cfg.Retention)
}

// createOnce returns options that make MinIO refuse to replace an object.
func createOnce() miniogo.PutObjectOptions {
	opts := miniogo.PutObjectOptions{ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*")
	return opts
}

// Put implements blob.Driver.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return d.put(ctx, key, r, size, false)
}

// put is Put, or Replace when replace is set.
func (d *Driver) put(ctx context.Context, key string, r io.Reader, size int64, replace bool) error {
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	partSize := d.partSize
	if size > partSize*maxParts {
		// Grow parts for huge known sizes, in whole MiB, to stay within 10000.
		partSize = ((size+maxParts-1)/maxParts + 1<<20 - 1) &^ (1<<20 - 1)
	}
	u := &upload{d: d, key: key, r: r, size: size, partSize: partSize, replace: replace}
	if err := u.run(ctx); err != nil {
		return fmt.Errorf("minio: put %q: %w", key, err)
	}
	return nil
}

// upload is the state of one Put.
type upload struct {
	d        *Driver
	key      string
	r        io.Reader
	size     int64
	partSize int64
	read     int64 // bytes read from r so far
	// replace drops the create-once condition (Replace, repair only).
	replace bool
}

// opts are the write options of this upload: create-once unless replacing.
func (u *upload) opts() miniogo.PutObjectOptions {
	if u.replace {
		return miniogo.PutObjectOptions{ContentType: "application/octet-stream"}
	}
	return createOnce()
}

// fill reads from r until buf is full or r ends. eof reports that r
// returned io.EOF (so no further data follows).
func (u *upload) fill(ctx context.Context, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, false, err
		}
		m, err := u.r.Read(buf[n:])
		n += m
		u.read += int64(m)
		if u.size >= 0 && u.read > u.size {
			return n, false, fmt.Errorf("body is longer than %d bytes", u.size)
		}
		if err == io.EOF {
			return n, true, u.checkLength()
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

func (u *upload) checkLength() error {
	if u.size >= 0 && u.read != u.size {
		return fmt.Errorf("read %d bytes, want %d: %w", u.read, u.size, io.ErrUnexpectedEOF)
	}
	return nil
}

func (u *upload) run(ctx context.Context) error {
	first, eof, err := u.readFirst(ctx)
	if err != nil {
		return err
	}
	if eof {
		return u.single(ctx, first)
	}
	return u.multipart(ctx, first[:cap(first)], len(first))
}

// readFirst reads the first part. A known small size gets a buffer of
// size+1 bytes so that EOF (and the verdict of a verifying reader behind r)
// is observed before anything is sent; an unknown size starts small and
// grows up to a part, so small unknown-size bodies do not cost a whole part
// buffer each. eof reports that the whole body fit.
func (u *upload) readFirst(ctx context.Context) (buf []byte, eof bool, err error) {
	limit := u.partSize
	if u.size >= 0 && u.size < u.partSize {
		limit = u.size + 1
	}
	initial := limit
	if u.size < 0 {
		initial = min(limit, 256<<10)
	}
	buf = make([]byte, 0, initial)
	for {
		n, eof, err := u.fill(ctx, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil || eof || int64(len(buf)) == limit {
			return buf, eof, err
		}
		grown := make([]byte, len(buf), min(limit, 2*int64(cap(buf))))
		copy(grown, buf)
		buf = grown
	}
}

// single sends a body that fits in one part as one conditional PUT,
// unsigned and protected by its CRC32C as parts are (partOptions): signed
// chunk by chunk instead, each small object cost a 64 KiB buffer here and
// a signature per chunk on both sides, and small publishes are bounded by
// MinIO's CPU per request (#18).
func (u *upload) single(ctx context.Context, data []byte) error {
	_, err := u.d.core.PutObject(ctx, u.d.bucket, u.key, bytes.NewReader(data), int64(len(data)), "", "", singleOptions(u.opts(), data))
	return mapErr(err)
}

// singleOptions are opts for a PUT of data sent unsigned with its CRC32C.
func singleOptions(opts miniogo.PutObjectOptions, data []byte) miniogo.PutObjectOptions {
	opts.DisableContentSha256 = true
	opts.UserMetadata = map[string]string{"X-Amz-Checksum-Crc32c": crc32c(data)}
	return opts
}

// partOptions sends a part unsigned, protected by its CRC32C instead.
// Over plain HTTP minio-go otherwise signs the payload chunk by chunk
// (StreamingSignV4): a second SHA-256 pass over every byte on top of the
// digest check blob.Store already makes, and most of the upload's garbage.
// MinIO recomputes x-amz-checksum-crc32c and refuses a part whose bytes
// do not match it (TestPartChecksumRefused), so bytes damaged between here
// and MinIO still never land; the CRC is computed from the buffer that is
// sent, in one cheap pass (SSE4.2).
func partOptions(part []byte) miniogo.PutObjectPartOptions {
	return miniogo.PutObjectPartOptions{
		DisableContentSha256: true,
		CustomHeader:         http.Header{"X-Amz-Checksum-Crc32c": {crc32c(part)}},
	}
}

// crc32c is the x-amz-checksum-crc32c value of data.
func crc32c(data []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(data, castagnoli))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// multipart uploads the body in parts, first holding the first n bytes
// already read. Up to u.d.threads parts are in flight; each owns a buffer
// from a free list, so memory stays at threads×partSize.
func (u *upload) multipart(ctx context.Context, first []byte, n int) (err error) {
	d := u.d
	// Fails fast with PreconditionFailed when the key already exists.
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, u.key, u.opts())
	if err != nil {
		return mapErr(err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			if aerr := d.core.AbortMultipartUpload(actx, d.bucket, u.key, id); aerr != nil {
				err = fmt.Errorf("%w (and aborting upload %s failed: %v)", err, id, aerr)
			}
		}
	}()

	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		parts []miniogo.CompletePart
	)
	free := make(chan []byte, d.threads)
	allocated := 1
	send := func(num int, buf []byte, length int) {
		defer wg.Done()
		p, perr := d.core.PutObjectPart(pctx, d.bucket, u.key, id, num, bytes.NewReader(buf[:length]), int64(length), partOptions(buf[:length]))
		free <- buf
		if perr != nil {
			cancel(fmt.Errorf("part %d: %w", num, perr))
			return
		}
		mu.Lock()
		parts = append(parts, miniogo.CompletePart{PartNumber: num, ETag: p.ETag, ChecksumCRC32C: p.ChecksumCRC32C})
		mu.Unlock()
	}
	// acquire returns a free buffer, allocating lazily so small multipart
	// uploads do not pay for the full window.
	acquire := func() ([]byte, error) {
		select {
		case b := <-free:
			return b, nil
		default:
		}
		if allocated < d.threads {
			allocated++
			return make([]byte, u.partSize), nil
		}
		select {
		case b := <-free:
			return b, nil
		case <-pctx.Done():
			return nil, context.Cause(pctx)
		}
	}

	readErr := func() error {
		buf, length := first, n
		for num := 1; ; num++ {
			if num > maxParts {
				return fmt.Errorf("body needs more than %d parts of %d bytes", maxParts, u.partSize)
			}
			wg.Add(1)
			go send(num, buf, length)
			next, err := acquire()
			if err != nil {
				return err
			}
			m, eof, err := u.fill(pctx, next)
			if err != nil {
				return err
			}
			if m == 0 {
				// The body was an exact multiple of the part size.
				free <- next
				return nil
			}
			buf, length = next, m
			if eof {
				wg.Add(1)
				go send(num+1, buf, length)
				return nil
			}
		}
	}()
	if readErr != nil {
		// A no-op when a failed part or the caller cancelled first: the
		// first cause is the one worth reporting.
		cancel(readErr)
	}
	wg.Wait()
	if cause := context.Cause(pctx); cause != nil {
		return cause
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].PartNumber < parts[j].PartNumber })
	// The condition must be repeated here: this is where MinIO publishes
	// the object, and a concurrent upload may have published it since
	// NewMultipartUpload.
	if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, u.key, id, parts, u.opts()); err != nil {
		return mapErr(err)
	}
	return nil
}

// Get implements blob.Driver.
func (d *Driver) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, blob.Info{}, err
	}
	// Core.GetObject sends the request now (unlike Client.GetObject), so a
	// missing key is reported here rather than on the first Read.
	rc, oi, _, err := d.core.GetObject(ctx, d.bucket, key, miniogo.GetObjectOptions{})
	if err != nil {
		return nil, blob.Info{}, fmt.Errorf("minio: get %q: %w", key, mapErr(err))
	}
	return rc, blob.Info{Key: key, Size: oi.Size}, nil
}

// Stat implements blob.Driver.
func (d *Driver) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.CheckKey(key); err != nil {
		return blob.Info{}, err
	}
	oi, err := d.core.StatObject(ctx, d.bucket, key, miniogo.StatObjectOptions{})
	if err != nil {
		return blob.Info{}, fmt.Errorf("minio: stat %q: %w", key, mapErr(err))
	}
	return blob.Info{Key: key, Size: oi.Size}, nil
}

// CopyFrom implements blob.Copier: when src is a Driver on the same server
// with the same access key, the object is copied by MinIO itself (no bytes
// through this process), otherwise ok=false and the caller streams.
//
// The copy is always a multipart upload of UploadPartCopy ranges, even for
// small objects, because create-once must hold: MinIO ignores If-None-Match
// on CopyObject (observed: a second CopyObject onto an existing key with
// If-None-Match: * succeeds and overwrites), while it enforces it on
// CreateMultipartUpload and, atomically with publishing, on
// CompleteMultipartUpload, exactly as Put relies on. minio-go's
// ComposeObject is not used for the same reason Put avoids PutObject: it
// cannot send the condition on completion (and it stats the sources with
// context.Background()). Ranges run Concurrency at a time; on failure the
// upload is aborted and nothing becomes visible.
func (d *Driver) CopyFrom(ctx context.Context, src blob.Driver, key string) (bool, error) {
	return d.CopyVerifiedFrom(ctx, src, key, nil)
}

// CopyVerifiedFrom implements blob.VerifyingCopier: CopyFrom, with verify
// reading the source object (a GET pinned to the ETag the copy ranges are
// pinned to) while MinIO copies the ranges. The multipart upload is
// completed, which is what makes the object visible, only after both the
// ranges and verify succeeded; otherwise it is aborted. So the verifying
// read costs no time beyond the copy's own, and a copy whose source does
// not verify is never visible, not even briefly. A nil verify copies
// unchecked (CopyFrom).
func (d *Driver) CopyVerifiedFrom(ctx context.Context, src blob.Driver, key string, verify func(io.Reader, int64) error) (bool, error) {
	s, ok := src.(*Driver)
	if !ok || s.server != d.server {
		return false, nil
	}
	if err := blob.CheckKey(key); err != nil {
		return false, err
	}
	oi, err := s.core.StatObject(ctx, s.bucket, key, miniogo.StatObjectOptions{})
	if err != nil {
		return false, fmt.Errorf("minio: copy %q: %w", key, mapErr(err))
	}
	sources := []copySource{{key: key, size: oi.Size, etag: oi.ETag}}
	if err := d.copyJoined(ctx, s, sources, copyRanges(sources, d.copyPartSize), key, verify); err != nil {
		return false, fmt.Errorf("minio: copy %q from bucket %q: %w", key, s.bucket, err)
	}
	return true, nil
}

// CopyPartsVerifiedFrom implements blob.PartsCopier: like
// CopyVerifiedFrom, but the new object dst joins src's objects parts in
// order, each range an UploadPartCopy of one of them, and verify reads
// them one after the other. S3 wants every part of an upload but the last
// to hold at least 5 MiB, so pieces smaller than that, except the last,
// cannot be joined: ok=false, and the caller streams.
func (d *Driver) CopyPartsVerifiedFrom(ctx context.Context, src blob.Driver, parts []blob.Part, dst string, verify func(io.Reader, int64) error) (bool, error) {
	s, ok := src.(*Driver)
	if !ok || s.server != d.server || len(parts) == 0 {
		return false, nil
	}
	if err := blob.CheckKey(dst); err != nil {
		return false, err
	}
	for _, p := range parts[:len(parts)-1] {
		if p.Size < minPartSize {
			return false, nil
		}
	}
	sources := make([]copySource, len(parts))
	for i, p := range parts {
		if err := blob.CheckKey(p.Key); err != nil {
			return false, err
		}
		oi, err := s.core.StatObject(ctx, s.bucket, p.Key, miniogo.StatObjectOptions{})
		if err != nil {
			return false, fmt.Errorf("minio: copy %q: part %q: %w", dst, p.Key, mapErr(err))
		}
		if oi.Size != p.Size {
			return false, fmt.Errorf("minio: copy %q: part %q has %d bytes, not %d: %w", dst, p.Key, oi.Size, p.Size, blob.ErrDigestMismatch)
		}
		sources[i] = copySource{key: p.Key, size: oi.Size, etag: oi.ETag}
	}
	ranges := copyRanges(sources, d.copyPartSize)
	if len(ranges) > maxParts {
		return false, nil
	}
	if err := d.copyJoined(ctx, s, sources, ranges, dst, verify); err != nil {
		return false, fmt.Errorf("minio: copy %q from bucket %q: %w", dst, s.bucket, err)
	}
	return true, nil
}

// copySource is one object a copy reads, pinned to its ETag: were it
// replaced mid-copy, ranges of two objects would be mixed.
type copySource struct {
	key  string
	size int64
	etag string
}

// copyRange is one UploadPartCopy: length bytes of source src from off.
type copyRange struct {
	src         int
	off, length int64
}

// copyRanges cuts sources into ranges of about partSize, each within one
// source (a part copies a range of one object). A short tail of a source
// that is not the last joins the range before it, so that every range but
// the last holds at least minPartSize (the caller checked that every such
// source does).
func copyRanges(sources []copySource, partSize int64) []copyRange {
	partSize = max(partSize, (total(sources)+maxParts-1)/maxParts)
	var out []copyRange
	for i, s := range sources {
		for off := int64(0); off < s.size; off += partSize {
			n := min(partSize, s.size-off)
			if rest := s.size - off - n; i < len(sources)-1 && rest > 0 && rest < minPartSize {
				n += rest
			}
			out = append(out, copyRange{src: i, off: off, length: n})
			if off+n == s.size {
				break
			}
		}
	}
	return out
}

func total(sources []copySource) int64 {
	var n int64
	for _, s := range sources {
		n += s.size
	}
	return n
}

// copyJoined writes dst in d's bucket from src's sources, in order, with
// a conditional multipart upload of the server-side range copies ranges
// (copyRanges of sources). When verify is set, it reads the same versions
// of the sources, one after the other, concurrently, and the upload
// completes only when it returned nil.
func (d *Driver) copyJoined(ctx context.Context, src *Driver, sources []copySource, ranges []copyRange, dst string, verify func(io.Reader, int64) error) (err error) {
	size := total(sources)
	if size == 0 {
		// Nothing to copy, and a multipart upload cannot hold an empty
		// range; a conditional empty PUT is the same object. The stat said
		// the source is empty, which is all there is to verify.
		if verify != nil {
			if err := verify(bytes.NewReader(nil), 0); err != nil {
				return err
			}
		}
		return d.Put(ctx, dst, bytes.NewReader(nil), 0)
	}
	if len(ranges) > maxParts {
		return fmt.Errorf("object of %d bytes in %d ranges is over the S3 limit of %d parts", size, len(ranges), maxParts)
	}
	for _, r := range ranges {
		if r.length > maxCopyPart {
			return fmt.Errorf("a range of %d bytes is over the S3 limit of %d", r.length, int64(maxCopyPart))
		}
	}
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, dst, createOnce())
	if err != nil {
		return mapErr(err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			if aerr := d.core.AbortMultipartUpload(actx, d.bucket, dst, id); aerr != nil {
				err = fmt.Errorf("%w (and aborting upload %s failed: %v)", err, id, aerr)
			}
		}
	}()

	parts := make([]miniogo.CompletePart, len(ranges))
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, d.threads)
	)
	if verify != nil {
		// The verifying read runs beside the ranges, not in one of their
		// slots: it is the longest stream of the copy.
		wg.Go(func() {
			rc := src.openVersions(pctx, sources)
			defer rc.Close()
			if verr := verify(rc, size); verr != nil {
				cancel(fmt.Errorf("verifying read: %w", verr))
			}
		})
	}
	for i, r := range ranges {
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s := sources[r.src]
			cond := map[string]string{"x-amz-copy-source-if-match": s.etag}
			p, perr := d.core.CopyObjectPart(pctx, src.bucket, s.key, d.bucket, dst, id, i+1, r.off, r.length, cond)
			if perr != nil {
				if miniogo.ToErrorResponse(perr).StatusCode == http.StatusPreconditionFailed {
					// The source condition failed, not our create-once one
					// (that is checked on create and complete): not ErrExists.
					perr = fmt.Errorf("source object changed during the copy: %w", perr)
				} else {
					perr = mapErr(perr)
				}
				cancel(fmt.Errorf("part %d: %w", i+1, perr))
				return
			}
			parts[i] = p
		})
	}
	wg.Wait()
	if cause := context.Cause(pctx); cause != nil {
		return cause
	}
	// As in Put: the condition is what makes a racing copy or upload of the
	// same key fail here instead of being overwritten.
	if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, dst, id, parts, createOnce()); err != nil {
		return mapErr(err)
	}
	return nil
}

// openVersions reads sources, one after the other, each a GET pinned to
// its ETag: a source replaced since its stat fails the read (412) as the
// copy ranges would.
func (d *Driver) openVersions(ctx context.Context, sources []copySource) io.ReadCloser {
	opens := make([]func() (io.ReadCloser, error), len(sources))
	for i, s := range sources {
		opens[i] = func() (io.ReadCloser, error) {
			opts := miniogo.GetObjectOptions{}
			if err := opts.SetMatchETag(s.etag); err != nil {
				return nil, err
			}
			rc, _, _, err := d.core.GetObject(ctx, d.bucket, s.key, opts)
			if err != nil {
				if miniogo.ToErrorResponse(err).StatusCode == http.StatusPreconditionFailed {
					return nil, fmt.Errorf("source object %q changed during the copy: %w", s.key, err)
				}
				return nil, mapErr(err)
			}
			return rc, nil
		}
	}
	return blob.Joined(opens)
}

// Ping implements blob.Driver: the server answers and the bucket is there.
func (d *Driver) Ping(ctx context.Context) error {
	ok, err := d.core.BucketExists(ctx, d.bucket)
	if err != nil {
		return fmt.Errorf("minio: ping: %w", err)
	}
	if !ok {
		return fmt.Errorf("minio: ping: bucket %q: %w", d.bucket, blob.ErrNotFound)
	}
	return nil
}

// mapErr normalises MinIO error responses to the blob sentinels, keeping the
// original for logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	resp := miniogo.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey", resp.Code == "NoSuchBucket",
		resp.Code == "XMinioParentIsObject" && resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", blob.ErrNotFound, err)
	case resp.Code == "PreconditionFailed", resp.StatusCode == http.StatusPreconditionFailed:
		// If-None-Match: * failed on PUT, CreateMultipartUpload or
		// CompleteMultipartUpload: the key is taken.
		return fmt.Errorf("%w: %w", blob.ErrExists, err)
	case resp.Code == "XMinioInvalidObjectName", resp.Code == "InvalidObjectName", resp.Code == "KeyTooLongError":
		return fmt.Errorf("%w: %w", blob.ErrInvalidKey, err)
	}
	return err
}
