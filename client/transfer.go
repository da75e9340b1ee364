package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// LocalFile is a file on disk to push, with its path inside the artifact.
type LocalFile struct {
	Path      string // inside the artifact, '/'-separated
	Disk      string // on disk
	Size      int64
	Digest    v1.Hash
	MediaType string
}

// CollectFiles expands the arguments of `push`: a file becomes one entry
// named by its base name; a directory contributes every regular file below
// it, named by its path relative to the directory. Symlinks are refused so
// that what is pushed is exactly what the tree holds.
func CollectFiles(paths []string) ([]LocalFile, error) {
	var files []LocalFile
	seen := map[string]string{}
	add := func(inArtifact, disk string, size int64) error {
		if _, err := registry.ParseFilePath(inArtifact); err != nil {
			return err
		}
		if prev, dup := seen[inArtifact]; dup {
			return fmt.Errorf("%s and %s would both be stored as %q", prev, disk, inArtifact)
		}
		seen[inArtifact] = disk
		files = append(files, LocalFile{Path: inArtifact, Disk: disk, Size: size})
		return nil
	}
	for _, p := range paths {
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		switch {
		case info.Mode().IsRegular():
			if err := add(filepath.Base(p), p, info.Size()); err != nil {
				return nil, err
			}
		case info.IsDir():
			err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					return nil
				}
				if !d.Type().IsRegular() {
					return fmt.Errorf("%s: only regular files can be pushed (symlinks and devices are refused)", path)
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				rel, err := filepath.Rel(p, path)
				if err != nil {
					return err
				}
				return add(filepath.ToSlash(rel), path, fi.Size())
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: only regular files and directories can be pushed", p)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no files to push")
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// HashFile computes the sha256 digest and size of a file.
func HashFile(path string) (v1.Hash, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	return hashReader(f)
}

// hashReader computes the sha256 digest and length of what r holds.
func hashReader(r io.Reader) (v1.Hash, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
	if err != nil {
		return v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}

// PushOptions describe a version to push.
type PushOptions struct {
	Kind         string
	Labels       map[string]string
	SourceCommit string
	// CISignatures are cosign sign-blob signatures by the CI's key, over
	// the manifest or files (by path inside the artifact).
	CISignatures []registry.CISignature
	// Progress, when set, is told about each file as it is handled.
	Progress func(f LocalFile, uploaded bool)
	// Transfer, when set, follows the bytes of each upload (and the
	// hashing of large files).
	Transfer Progress
}

// hashProgressMin is the smallest file whose hashing is shown: below it,
// hashing takes less time than drawing about it.
const hashProgressMin = 64 << 20

// Push hashes files, uploads the blobs the server lacks (each streamed once,
// straight to its content-addressed key), then publishes name@version.
// Small files (up to inlineFile, registry.MaxInlineContents in all) are
// not uploaded apart: their bytes go inside the publish request.
//
// Files are hashed in order by one goroutine while the files before them
// upload, so that a sharded model costs the hashing of its first shard
// plus its uploads, not the sum of both. Only the first file's hashing is
// shown on opts.Transfer: the others run while an upload is drawn. Up to
// pushConcurrency files upload at once (one at a time when opts.Transfer
// draws terminal bars, which cannot share the screen): the gaps of one
// upload (its existence check, the service's commit of the blob) are
// filled by the other's bytes.
func (c *Client) Push(ctx context.Context, env, name, version string, files []LocalFile, opts PushOptions) (PublishResponse, error) {
	req := PublishRequest{Kind: opts.Kind, Labels: opts.Labels, SourceCommit: opts.SourceCommit, CISignatures: opts.CISignatures}
	hctx, stopHashing := context.WithCancel(ctx)
	defer stopHashing()
	digests := hashAhead(hctx, files, opts.Transfer)
	uctx, stopUploads := context.WithCancelCause(ctx)
	defer stopUploads(nil)
	slots := make(chan struct{}, pushConcurrency)
	if sequential, ok := opts.Transfer.(interface{ Sequential() bool }); ok && sequential.Sequential() {
		slots = make(chan struct{}, 1)
	}
	var (
		wg       sync.WaitGroup
		progress sync.Mutex
	)
	for i := range files {
		f := &files[i]
		var h hashed
		select {
		case h = <-digests[i]:
		case <-uctx.Done():
		}
		if h.err != nil {
			stopUploads(h.err)
		}
		if uctx.Err() != nil {
			break
		}
		f.Digest, f.Size = h.dgst, h.size
		req.Files = append(req.Files, registry.File{Path: f.Path, Digest: h.dgst, Size: h.size, MediaType: f.MediaType})
		if h.content != nil {
			// Sent with the version: no upload of its own.
			if req.Contents == nil {
				req.Contents = map[string][]byte{}
			}
			req.Contents[f.Path] = h.content
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-uctx.Done():
		}
		if uctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			uploaded, err := c.ensureBlob(uctx, env, *f, opts.Transfer)
			if err != nil {
				stopUploads(err)
				return
			}
			if opts.Progress != nil {
				progress.Lock()
				opts.Progress(*f, uploaded)
				progress.Unlock()
			}
		})
	}
	wg.Wait()
	if err := context.Cause(uctx); err != nil {
		return PublishResponse{}, err
	}
	inline := req.Contents
	res, err := c.Publish(ctx, env, name, version, req)
	if len(inline) > 0 && refusesContents(err) {
		// A server older than inline contents: upload them as blobs.
		if err := c.uploadContents(ctx, env, req.Files, req.Contents); err != nil {
			return PublishResponse{}, err
		}
		req.Contents = nil
		res, err = c.Publish(ctx, env, name, version, req)
	}
	if err == nil && opts.Progress != nil {
		for _, f := range files {
			if _, ok := inline[f.Path]; ok {
				opts.Progress(f, true)
			}
		}
	}
	return res, err
}

// inlineFile is the largest file Push sends inside the publish request
// (PublishRequest.Contents, at most registry.MaxInlineContents in all)
// instead of uploading it first: a small publish, a config or a feature
// definition, is then one request, and the service stores the blob
// without first looking up an uploaded one (issue #18).
const inlineFile = 256 << 10

// refusesContents reports whether err is a server's refusal of the
// contents field it does not know.
func refusesContents(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == "invalid_request" && strings.Contains(ae.Message, `"contents"`)
}

// uploadContents uploads the inline contents as blobs.
func (c *Client) uploadContents(ctx context.Context, env string, files []registry.File, contents map[string][]byte) error {
	for _, f := range files {
		data, ok := contents[f.Path]
		if !ok {
			continue
		}
		if _, err := c.UploadBlob(ctx, env, f.Digest, bytes.NewReader(data), int64(len(data))); err != nil {
			return fmt.Errorf("uploading %s: %w", f.Path, err)
		}
	}
	return nil
}

// pushConcurrency is how many files Push uploads at once. Two fill the
// gaps between one file's bytes (a sharded model of 8 × 128 MiB on two
// cores, alternating runs: 0.81–0.82× of sequential PutObjects one at a
// time, 0.86× two at a time on a quiet machine; 0.73–0.80× against
// 0.98–0.99× on a busy one; issue #18); more only compete for the same
// cores and disk.
const pushConcurrency = 2

// hashed is the digest and size of one file, or why it has none, and its
// bytes when they go inline.
type hashed struct {
	dgst    v1.Hash
	size    int64
	content []byte
	err     error
}

// hashAhead hashes files in order in a goroutine and delivers each result
// on its own buffered channel. It stops after the file being hashed when
// ctx ends or a file fails (the channels of the files after it are then
// never written: Push has returned by then).
func hashAhead(ctx context.Context, files []LocalFile, p Progress) []chan hashed {
	out := make([]chan hashed, len(files))
	for i := range out {
		out[i] = make(chan hashed, 1)
	}
	go func() {
		budget := int64(registry.MaxInlineContents)
		for i, f := range files {
			var h hashed
			switch {
			case f.Size <= inlineFile && f.Size <= budget:
				h = readInline(f, budget)
				budget -= int64(len(h.content))
			case f.Digest.Hex != "":
				// Known from a checksum file: the server verifies the
				// bytes against it as they stream, so a wrong or stale
				// digest is refused (digest_mismatch), never stored.
				h.dgst, h.size = f.Digest, f.Size
			case i == 0:
				h.dgst, h.size, h.err = hashWithProgress(f.Disk, f.Path, f.Size, p)
			default:
				h.dgst, h.size, h.err = HashFile(f.Disk)
			}
			out[i] <- h
			if h.err != nil || ctx.Err() != nil {
				return
			}
		}
	}()
	return out
}

// readInline reads a small file whole for PublishRequest.Contents, with
// its digest: the one a checksum file gave (the service checks the bytes
// against it) or the bytes' own. A file that grew past budget since it was
// listed is hashed, from the bytes read and the rest of the same open
// file, and uploaded instead.
func readInline(f LocalFile, budget int64) hashed {
	fh, err := os.Open(f.Disk)
	if err != nil {
		return hashed{err: err}
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, min(budget, inlineFile)+1))
	if err != nil {
		return hashed{err: err}
	}
	if int64(len(data)) > min(budget, inlineFile) {
		var h hashed
		h.dgst, h.size, h.err = hashReader(io.MultiReader(bytes.NewReader(data), fh))
		return h
	}
	h := hashed{dgst: f.Digest, size: int64(len(data)), content: data}
	if h.dgst.Hex == "" {
		h.dgst = registry.DigestOf(data)
	}
	return h
}

// smallUpload is the largest file Push uploads without asking first
// whether the server has it: for a small file the question costs a round
// trip, as much as the upload, and the server answers a repeated upload
// with created=false without storing anything again.
const smallUpload = 1 << 20

// ensureBlob makes sure env holds f's blob and reports whether this call
// stored it (false: the server already had it).
func (c *Client) ensureBlob(ctx context.Context, env string, f LocalFile, p Progress) (bool, error) {
	if f.Size > smallUpload {
		exists, err := c.BlobExists(ctx, env, f.Digest)
		if err != nil || exists {
			return false, err
		}
	}
	created, err := c.uploadFile(ctx, env, f, p)
	if err != nil {
		return false, fmt.Errorf("uploading %s: %w", f.Path, err)
	}
	return created, nil
}

func (c *Client) uploadFile(ctx context.Context, env string, f LocalFile, p Progress) (bool, error) {
	fh, err := os.Open(f.Disk)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	var body io.Reader = fh
	var task ProgressTask
	if p != nil {
		task = p.Start("upload "+f.Path, f.Size)
		body = &progressReader{r: fh, task: task}
	}
	created, err := c.UploadBlob(ctx, env, f.Digest, body, f.Size)
	if task != nil {
		task.Done(err)
	}
	return created, err
}

func hashWithProgress(disk, label string, size int64, p Progress) (v1.Hash, int64, error) {
	if p == nil || size < hashProgressMin {
		return HashFile(disk)
	}
	f, err := os.Open(disk)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	task := p.Start("sha256 "+label, size)
	dgst, n, err := hashReader(&progressReader{r: f, task: task})
	task.Done(err)
	return dgst, n, err
}

// Pull downloads every file of name@version into dir, verifying each digest
// and size before it appears under its final name (written to a temporary
// file, then renamed), so a failed pull never leaves a corrupt file behind.
func (c *Client) Pull(ctx context.Context, env, name, version, dir string) (registry.VersionRecord, error) {
	return c.PullWithProgress(ctx, env, name, version, dir, nil)
}

// PullWithProgress is Pull, showing each file's download on p (nil: none).
func (c *Client) PullWithProgress(ctx context.Context, env, name, version, dir string, p Progress) (registry.VersionRecord, error) {
	rec, err := c.GetVersion(ctx, env, name, version)
	if err != nil {
		return registry.VersionRecord{}, err
	}
	for _, f := range rec.Files {
		if err := c.pullFile(ctx, env, rec, f, dir, p); err != nil {
			return registry.VersionRecord{}, fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return rec, nil
}

// PullSignature writes the exact manifest bytes of name@version to
// DIR/manifest.json and the environment's signature over them to
// DIR/manifest.json.sig (base64, as `cosign sign-blob` writes it), so that
// `cosign verify-blob --key <env>.pub --signature manifest.json.sig
// manifest.json` checks the version with no stagegate code.
func (c *Client) PullSignature(ctx context.Context, env string, rec registry.VersionRecord, dir string) (string, error) {
	manifest, err := c.Manifest(ctx, env, rec.Name, rec.Version)
	if err != nil {
		return "", err
	}
	got := registry.DigestOf(manifest)
	if got != rec.ManifestDigest {
		return "", fmt.Errorf("manifest digest %s, want %s", got, rec.ManifestDigest)
	}
	_, keyID, err := c.PublicKey(ctx, env)
	if err != nil {
		return "", err
	}
	sig, ok := rec.EnvironmentSignature(keyID)
	if !ok {
		return "", fmt.Errorf("%s@%s has no signature by %s's current key %s", rec.Name, rec.Version, env, keyID)
	}
	if err := writeFileAtomic(filepath.Join(dir, "manifest.json"), manifest); err != nil {
		return "", err
	}
	if err := writeFileAtomic(filepath.Join(dir, "manifest.json.sig"), []byte(sig.Signature)); err != nil {
		return "", err
	}
	return keyID, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stagegate-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (c *Client) pullFile(ctx context.Context, env string, rec registry.VersionRecord, f registry.File, dir string, prog Progress) error {
	// The server validated the path on publish; check again, since it
	// decides where we write.
	p, err := registry.ParseFilePath(f.Path)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	body, err := c.OpenFile(ctx, env, rec.Name, rec.Version, f.Path)
	if err != nil {
		return err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".stagegate-pull-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	var src io.Reader = body
	var task ProgressTask
	if prog != nil {
		task = prog.Start("download "+f.Path, f.Size)
		src = &progressReader{r: body, task: task}
	}
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), src, make([]byte, 1<<20))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if task != nil {
		task.Done(err)
	}
	if err != nil {
		return err
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if n != f.Size || got != f.Digest {
		return fmt.Errorf("downloaded %d bytes with digest %s, want %d bytes with %s", n, got, f.Size, f.Digest)
	}
	return os.Rename(tmp.Name(), dst)
}
