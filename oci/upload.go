package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// Chunked blob uploads: POST opens an upload, each PATCH appends a chunk,
// and PUT ?digest= (with an optional last chunk) closes it. Until that PUT
// names the digest, the bytes cannot go to their content-addressed key, so
// each chunk is stored as it streams in, under the upload's keys in the
// environment's bucket (registry.UploadKey), while a sha256 runs over it;
// the running hash state is stored after each chunk, so the next one
// continues the hash without reading anything again, on any replica. The
// PUT compares the hash with the digest, and only then does the blob
// become visible: a blob over MaxRewrittenUpload stays in its chunks,
// which a create-once parts object names as the blob's bytes (LinkBlob;
// registry/layout.go), so a chunked upload streams once, like a monolithic
// one; a smaller one is written whole to its content-addressed key from
// its chunks, verified once more. Nothing of an upload is visible before
// its PUT succeeds.
//
// An upload expires registry.UploadTTL/2 after its last stored state:
// each request must reach the service, and store what it stores, within
// that time (the context of its writes ends there), so gc, which removes
// an upload only when its newest key is older than registry.UploadTTL,
// never removes a chunk that a later request would name.
//
// The offset an upload has reached travels in the Location each answer
// gives (?offset=), which the spec tells clients to follow; the state
// stored for that offset is what makes it valid, so a forged or stale
// offset finds no state and is refused. Two PATCHes at one offset race on
// the create-once chunk key, and the loser is told the range is taken.

// Upload ids are 32 hex digits, random: an id names an upload in one
// environment's bucket only, so an id from another environment is
// unknown there.
var uploadIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// MaxUploadChunks bounds the chunks of one upload (its state lists them).
const MaxUploadChunks = 10000

// maxUploadState bounds a stored upload state read back.
const maxUploadState = 1 << 20

// stagingStore is what chunked uploads need of a bucket beyond
// registry.Blobs: unverified streaming writes under registry.UploadsPrefix
// (internal/blob's Store implements it).
type stagingStore interface {
	PutStaged(ctx context.Context, key string, r io.Reader, size int64) (int64, error)
	// OpenStagedParts reads the staged keys of parts one after the other.
	OpenStagedParts(ctx context.Context, parts []registry.BlobPart) (io.ReadCloser, error)
	DeleteStaged(ctx context.Context, key string) error
}

// uploadState is stored after every chunk: the sha256 state over the
// bytes so far, where each chunk starts, and when the state was made
// (Unix nanoseconds, the service's clock), which dates the upload's expiry.
type uploadState struct {
	Hash   []byte  `json:"sha256State"`
	Chunks []int64 `json:"chunks"`
	At     int64   `json:"at"`
}

// MaxRewrittenUpload is the largest chunked upload written whole to its
// content-addressed key when it ends; larger ones stay in their chunks
// (parts). Below it, one more small write costs less than reading a parts
// object on every open of the blob.
const MaxRewrittenUpload = 1 << 20

// expiry is when the upload whose last state is st expires.
func (st uploadState) expiry() time.Time {
	return time.Unix(0, st.At).Add(registry.UploadTTL / 2)
}

// check refuses an expired upload (CodeBlobUploadUnknown, as gc may
// remove it).
func (st uploadState) check(id string) error {
	if st.At == 0 || !time.Now().Before(st.expiry()) {
		return CodeBlobUploadUnknown.Errorf("upload %s expired: its last request was over %s ago (start the upload again)", id, registry.UploadTTL/2)
	}
	return nil
}

// live is check, and returns a context that ends when the upload expires.
func (st uploadState) live(ctx context.Context, id string) (context.Context, context.CancelFunc, error) {
	if err := st.check(id); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithDeadline(ctx, st.expiry())
	return ctx, cancel, nil
}

// chunkEnd is where chunk i of an upload that reached offset ends: where
// the next one starts, or offset for the last.
func chunkEnd(chunks []int64, i int, offset int64) int64 {
	if i+1 < len(chunks) {
		return chunks[i+1]
	}
	return offset
}

// linker is a bucket that can keep a blob in parts (internal/blob's Store).
type linker interface {
	LinkBlob(ctx context.Context, dgst v1.Hash, size int64, parts []registry.BlobPart) (created bool, err error)
	PartsOf(ctx context.Context, dgst v1.Hash) ([]registry.BlobPart, error)
}

// UploadPosition is one chunked upload's place: its id and the offset reached.
type UploadPosition struct {
	ID     string
	Offset int64
}

func staging(e registry.Env) (stagingStore, error) {
	st, ok := e.Blobs().(stagingStore)
	if !ok {
		return nil, CodeUnsupported.Errorf("this storage driver keeps no chunked uploads: upload the blob in one PUT")
	}
	return st, nil
}

func stateKey(id string, offset int64) string {
	return registry.UploadKey(id, fmt.Sprintf("%020d.state", offset))
}

func chunkKey(id string, offset int64) string {
	return registry.UploadKey(id, fmt.Sprintf("%020d.data", offset))
}

// StartUpload opens a chunked upload in e: its state at offset 0.
func StartUpload(ctx context.Context, e registry.Env) (UploadPosition, error) {
	if _, err := staging(e); err != nil {
		return UploadPosition{}, err
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	if err := writeState(ctx, e, id, 0, sha256.New(), nil); err != nil {
		return UploadPosition{}, err
	}
	return UploadPosition{ID: id}, nil
}

// CheckUpload confirms that the upload id has reached offset in e and has
// not expired.
func CheckUpload(ctx context.Context, e registry.Env, id string, offset int64) error {
	state, err := readState(ctx, e, id, offset)
	if err != nil {
		return err
	}
	return state.check(id)
}

// AppendUpload stores r as the chunk of the upload id at offset. start is
// the first byte the client says the chunk holds (Content-Range), or -1;
// size is its length, or -1 when unknown (streamed); the whole upload may
// not pass maxTotal bytes. It returns the new offset.
func AppendUpload(ctx context.Context, e registry.Env, id string, offset, start int64, r io.Reader, size, maxTotal int64) (UploadPosition, error) {
	st, err := staging(e)
	if err != nil {
		return UploadPosition{}, err
	}
	state, err := readState(ctx, e, id, offset)
	if err != nil {
		return UploadPosition{}, err
	}
	ctx, cancel, err := state.live(ctx, id)
	if err != nil {
		return UploadPosition{}, err
	}
	defer cancel()
	if start >= 0 && start != offset {
		return UploadPosition{}, rangeError("the chunk starts at byte %d, but the upload has %d bytes: chunks go in order, each where the last ended", start, offset)
	}
	if len(state.Chunks) >= MaxUploadChunks {
		return UploadPosition{}, CodeBlobUploadInvalid.Errorf("upload has %d chunks, the most one upload may have: send larger chunks", MaxUploadChunks)
	}
	h, err := restoreHash(state.Hash)
	if err != nil {
		return UploadPosition{}, registry.CodeInternal.Errorf("upload %s: stored hash state unreadable", id).WithCause(err)
	}
	if size >= 0 && offset+size > maxTotal {
		return UploadPosition{}, registry.CodeTooLarge.Errorf("the upload would reach %d bytes, over the limit of %d bytes per blob", offset+size, maxTotal)
	}
	key := chunkKey(id, offset)
	body := &bodyReader{r: r, left: maxTotal - offset}
	n, err := st.PutStaged(ctx, key, io.TeeReader(body, h), size)
	switch {
	case body.over:
		return UploadPosition{}, registry.CodeTooLarge.Errorf("the upload is over the limit of %d bytes per blob", maxTotal)
	case errors.Is(err, registry.ErrObjectExists):
		return UploadPosition{}, rangeError("a chunk at byte %d was stored already (a retried or concurrent PATCH): continue from the Location of its answer", offset)
	case body.err != nil && err != nil:
		// The client's body broke off: its fault, not storage's.
		return UploadPosition{}, registry.CodeIncompleteBody.Errorf("the chunk ended after %d bytes, before the body was complete: %v", body.read, body.err).WithCause(err)
	case err != nil && !time.Now().Before(state.expiry()):
		return UploadPosition{}, CodeBlobUploadUnknown.Errorf("upload %s expired while this chunk streamed: each request must end within %s of the upload's last one (send smaller chunks)", id, registry.UploadTTL/2)
	case err != nil:
		return UploadPosition{}, registry.StorageError("storing a chunk", err)
	}
	if n == 0 {
		// An empty PATCH adds nothing; its empty chunk is not kept.
		_ = st.DeleteStaged(ctx, key)
		return UploadPosition{ID: id, Offset: offset}, nil
	}
	if err := writeState(ctx, e, id, offset+n, h, append(state.Chunks, offset)); err != nil {
		return UploadPosition{}, err
	}
	return UploadPosition{ID: id, Offset: offset + n}, nil
}

// bodyReader reads a chunk from the client, remembering a failed read
// (the client's fault) and stopping one byte past the bytes left to the
// upload's limit.
type bodyReader struct {
	r    io.Reader
	left int64
	read int64
	err  error
	over bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		b.over = true
		return 0, errors.New("upload over its size limit")
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	b.left -= int64(n)
	if b.left < 0 {
		b.over = true
		return n, errors.New("upload over its size limit")
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// FinishUpload checks that the upload id, at offset, hashes to dgst, and
// makes it the blob dgst. An upload over MaxRewrittenUpload bytes (when
// the bucket can keep blobs in parts) is linked where it lies: rc is nil,
// the blob is stored, and the upload's states are removed. A smaller one
// is returned as a reader of its bytes in order, for the caller to store
// as the blob dgst (verified once more on the way), then DiscardUpload. A
// digest that does not match is DIGEST_INVALID and nothing is stored.
func FinishUpload(ctx context.Context, e registry.Env, id string, offset int64, dgst v1.Hash) (rc io.ReadCloser, size int64, err error) {
	st, err := staging(e)
	if err != nil {
		return nil, 0, err
	}
	state, err := readState(ctx, e, id, offset)
	if err != nil {
		return nil, 0, err
	}
	lctx, cancel, err := state.live(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	h, err := restoreHash(state.Hash)
	if err != nil {
		return nil, 0, registry.CodeInternal.Errorf("upload %s: stored hash state unreadable", id).WithCause(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dgst.Hex {
		return nil, 0, CodeDigestInvalid.Errorf("the upload's %d bytes hash to sha256:%s, not %s", offset, got, dgst)
	}
	parts := make([]registry.BlobPart, len(state.Chunks))
	for i, c := range state.Chunks {
		parts[i] = registry.BlobPart{Key: chunkKey(id, c), Size: chunkEnd(state.Chunks, i, offset) - c}
	}
	lk, ok := e.Blobs().(linker)
	if !ok || offset <= MaxRewrittenUpload {
		rc, err := st.OpenStagedParts(ctx, parts)
		if err != nil {
			return nil, 0, registry.StorageError("reading the upload", err)
		}
		return rc, offset, nil
	}
	created, err := lk.LinkBlob(lctx, dgst, offset, parts)
	if err != nil {
		return nil, 0, registry.StorageError("storing the blob", err)
	}
	cleanup := context.WithoutCancel(ctx)
	if created || namesUpload(cleanup, lk, dgst, id) {
		// The chunks are the blob now (also when a retry of this PUT,
		// racing it, linked them first); only the states go.
		deleteStates(cleanup, st, id, offset, state.Chunks)
	} else {
		// Stored already from other bytes (another upload of the same
		// content): this one's chunks are not needed.
		DiscardUpload(cleanup, e, id, offset)
	}
	return nil, offset, nil
}

// namesUpload reports whether the blob dgst is kept in chunks of the
// upload id, or whether that cannot be known (then nothing is removed;
// gc removes the chunks once nothing names them).
func namesUpload(ctx context.Context, lk linker, dgst v1.Hash, id string) bool {
	parts, err := lk.PartsOf(ctx, dgst)
	if errors.Is(err, registry.ErrObjectNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	for _, p := range parts {
		if strings.HasPrefix(p.Key, registry.UploadKey(id, "")) {
			return true
		}
	}
	return false
}

// DiscardUpload removes what the upload id stored, best effort: gc
// removes whatever is left once the upload is old.
func DiscardUpload(ctx context.Context, e registry.Env, id string, offset int64) {
	st, err := staging(e)
	if err != nil {
		return
	}
	state, err := readState(ctx, e, id, offset)
	if err != nil {
		return
	}
	for _, c := range state.Chunks {
		_ = st.DeleteStaged(ctx, chunkKey(id, c))
	}
	deleteStates(ctx, st, id, offset, state.Chunks)
}

// deleteStates removes the states of the upload id, which reached offset
// in chunks: one at 0 and one after each chunk.
func deleteStates(ctx context.Context, st stagingStore, id string, offset int64, chunks []int64) {
	_ = st.DeleteStaged(ctx, stateKey(id, 0))
	for i := range chunks {
		_ = st.DeleteStaged(ctx, stateKey(id, chunkEnd(chunks, i, offset)))
	}
}

func readState(ctx context.Context, e registry.Env, id string, offset int64) (uploadState, error) {
	if !uploadIDPattern.MatchString(id) {
		return uploadState{}, CodeBlobUploadUnknown.Errorf("upload %q was not opened here", truncate(id))
	}
	if offset < 0 {
		return uploadState{}, CodeBlobUploadInvalid.Errorf("offset %d is negative", offset)
	}
	data, err := e.Blobs().GetObject(ctx, stateKey(id, offset), maxUploadState)
	if errors.Is(err, registry.ErrObjectNotFound) {
		if offset > 0 {
			if _, err0 := e.Blobs().GetObject(ctx, stateKey(id, 0), maxUploadState); err0 == nil {
				return uploadState{}, rangeError("upload %s never reached byte %d: continue from the Location of the last answer", id, offset)
			}
		}
		return uploadState{}, CodeBlobUploadUnknown.Errorf("upload %s is not open in %s (finished, cancelled, expired, or opened in another environment)", id, e.Name())
	}
	if err != nil {
		return uploadState{}, registry.StorageError("reading upload state", err)
	}
	var st uploadState
	if err := json.Unmarshal(data, &st); err != nil {
		return uploadState{}, registry.CodeInternal.Errorf("upload %s: stored state unreadable", id).WithCause(err)
	}
	return st, nil
}

func writeState(ctx context.Context, e registry.Env, id string, offset int64, h hash.Hash, chunks []int64) error {
	raw, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return registry.CodeInternal.Errorf("saving the upload's hash state").WithCause(err)
	}
	data, err := json.Marshal(uploadState{Hash: raw, Chunks: chunks, At: time.Now().UnixNano()})
	if err != nil {
		return registry.CodeInternal.Errorf("saving the upload's state").WithCause(err)
	}
	switch err := e.Blobs().PutObject(ctx, stateKey(id, offset), data); {
	case errors.Is(err, registry.ErrObjectExists):
		// Only the writer of the chunk that ends here writes this state;
		// the same state again (an empty chunk) is the same bytes.
		if stored, gerr := e.Blobs().GetObject(ctx, stateKey(id, offset), maxUploadState); gerr == nil && bytes.Equal(stored, data) {
			return nil
		}
		return rangeError("upload %s reached byte %d by another request", id, offset)
	case err != nil:
		return registry.StorageError("storing upload state", err)
	}
	return nil
}

func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, err
	}
	return h, nil
}

// rangeError is the spec's answer to a chunk out of order: 416.
func rangeError(format string, args ...any) error {
	return &Error{Code: CodeBlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable, Message: fmt.Sprintf(format, args...)}
}

// RangeHeader is the Range an upload answer carries for offset bytes
// received: "0-<last byte>", and "0-0" before the first byte, as
// distribution does.
func RangeHeader(offset int64) string {
	if offset <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(offset-1, 10)
}

// ParseContentRange reads a PATCH's Content-Range: "<start>-<end>"
// (inclusive, as the spec writes it) or "bytes <start>-<end>/<total|*>"
// (RFC 9110). An empty header is start -1 (unknown). size is end-start+1.
func ParseContentRange(h string) (start, size int64, err error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return -1, -1, nil
	}
	spec := h
	if rest, ok := strings.CutPrefix(h, "bytes "); ok {
		spec, _, _ = strings.Cut(rest, "/")
	} else if rest, ok := strings.CutPrefix(h, "bytes="); ok {
		spec = rest
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, rangeError("Content-Range %q: want <start>-<end>", truncate(h))
	}
	s, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	e, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if err1 != nil || err2 != nil || s < 0 || e < s || e-s+1 <= 0 {
		return 0, 0, rangeError("Content-Range %q: want <start>-<end> with start ≤ end", truncate(h))
	}
	return s, e - s + 1, nil
}
