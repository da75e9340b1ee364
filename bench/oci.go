package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/stagegate/stagegate/client"
)

// ociChunked runs the OCI chunked-upload row: a file pushed as crane and
// docker push a layer (POST, one PATCH streaming the whole file without a
// length while the client hashes it, PUT ?digest=), against a direct
// PutObject of the same file, with the server's peak RSS growth. The chunk
// stays where it was streamed (parts), so this should cost what a
// monolithic upload costs. Then the promotion of a version made of it,
// against a CopyObject of the same file: MinIO joins the chunk into
// staging's blob while the service verifies it.
func (b *bench) ociChunked(ctx context.Context, svc *service, token string, promoter *client.Client, bucket, copies, dir string) error {
	path := filepath.Join(dir, "layer.bin")
	fmt.Fprintf(os.Stderr, "==> oci: writing a %s layer\n", iec(b.cfg.size))
	if err := writeSafetensors(path, b.cfg.size, 9); err != nil {
		return err
	}
	defer os.Remove(path)
	b.settle()
	direct, err := timed(func() error { return putFile(ctx, b.mc, bucket, "layer", path) })
	if err != nil {
		return fmt.Errorf("direct PutObject: %w", err)
	}
	watch := svc.watchRSS()
	b.settle()
	var (
		dgst string
		size int64
	)
	push, pushCPU, err := b.cpuOf(svc, func() (err error) {
		dgst, size, err = ociChunkedPush(ctx, svc.url, token, "bench-oci", path)
		return err
	})
	rss := watch()
	if err != nil {
		return fmt.Errorf("OCI chunked upload: %w", err)
	}
	r := throughputRow("OCI chunked upload "+iec(b.cfg.size)+" (POST, PATCH, PUT as crane; vs PutObject)", b.cfg.size, push, direct, "PutObject", 0.85)
	r.stagegate += fmt.Sprintf("; RSS +%s, CPU %s", mib(rss), secs(pushCPU.service))
	r.target, r.met = "-", "-" // not an issue target: it shows that chunks are not written twice
	b.add(r)

	// Its promotion: the blob is kept in its chunk (parts), which MinIO
	// joins into staging's blobs/ key while the service verifies it.
	if err := ociPushManifest(ctx, svc.url, token, "bench-oci", "1.0.0", dgst, size); err != nil {
		return err
	}
	if _, _, err := client.New(svc.url, token, nil).AddEvidence(ctx, "dev", "bench-oci", "1.0.0", "junit", []byte(passingJUnit)); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	b.settle()
	copyTime, err := timed(func() error {
		_, err := b.mc.CopyObject(ctx, miniogo.CopyDestOptions{Bucket: copies, Object: "layer"},
			miniogo.CopySrcOptions{Bucket: bucket, Object: "layer"})
		return err
	})
	if err != nil {
		return fmt.Errorf("direct CopyObject: %w", err)
	}
	watch = svc.watchRSS()
	b.settle()
	promote, promoteCPU, err := b.cpuOf(svc, func() error {
		_, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "bench-oci", Version: "1.0.0"})
		return err
	})
	rss = watch()
	if err != nil {
		return fmt.Errorf("promote the OCI-pushed version: %w", err)
	}
	ratio := promote.Seconds() / copyTime.Seconds()
	b.add(row{
		name:      "promotion of the OCI-pushed " + iec(b.cfg.size) + " (kept in parts; vs CopyObject)",
		stagegate: fmt.Sprintf("%s (%s); RSS +%s, CPU %s", secs(promote), mibs(b.cfg.size, promote), mib(rss), secs(promoteCPU.service)),
		baseline:  fmt.Sprintf("%s (%s)", secs(copyTime), mibs(b.cfg.size, copyTime)),
		ratio:     fmt.Sprintf("%.2f× the time", ratio),
		target:    "-",
		met:       "-",
	})
	return nil
}

// ociSend sends one OCI API request with the bench's token and reads the
// answer, which must have status want. A body of unknown length goes
// chunked, as registry clients stream a layer.
func ociSend(ctx context.Context, token, method, u, contentType string, body io.Reader, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s %s", method, u, resp.Status, data)
	}
	return resp, nil
}

// ociPushManifest makes the blob dgst of size bytes, pushed already, the
// one file of name@version in dev: the empty config and a manifest naming
// the blob as a model's safetensors file, over the OCI API.
func ociPushManifest(ctx context.Context, base, token, name, version, dgst string, size int64) error {
	repo := base + "/v2/dev/" + name
	const emptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" // of "{}"
	if _, err := ociSend(ctx, token, http.MethodPost, repo+"/blobs/uploads/?digest="+emptyDigest, "application/octet-stream", bytes.NewReader([]byte("{}")), http.StatusCreated); err != nil {
		return err
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"artifactType":"application/vnd.stagegate.model.v1",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
		`"layers":[{"mediaType":"application/octet-stream","digest":%q,"size":%d,`+
		`"annotations":{"org.opencontainers.image.title":"model.safetensors"}}]}`, emptyDigest, dgst, size)
	_, err := ociSend(ctx, token, http.MethodPut, repo+"/manifests/"+version, "application/vnd.oci.image.manifest.v1+json", bytes.NewReader([]byte(manifest)), http.StatusCreated)
	return err
}

// ociChunkedPush uploads the file at path as one blob of repository name in
// dev over the OCI API, the way go-containerregistry streams a layer, and
// returns its digest, hashed as it was sent, and size.
func ociChunkedPush(ctx context.Context, base, token, name, path string) (string, int64, error) {
	resolve := func(loc string) (string, error) {
		u, err := url.Parse(base)
		if err != nil {
			return "", err
		}
		ref, err := url.Parse(loc)
		if err != nil {
			return "", err
		}
		return u.ResolveReference(ref).String(), nil
	}
	resp, err := ociSend(ctx, token, http.MethodPost, base+"/v2/dev/"+name+"/blobs/uploads/", "", nil, http.StatusAccepted)
	if err != nil {
		return "", 0, err
	}
	loc, err := resolve(resp.Header.Get("Location"))
	if err != nil {
		return "", 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	resp, err = ociSend(ctx, token, http.MethodPatch, loc, "application/octet-stream", struct{ io.Reader }{io.TeeReader(f, h)}, http.StatusAccepted)
	if err != nil {
		return "", 0, err
	}
	if loc, err = resolve(resp.Header.Get("Location")); err != nil {
		return "", 0, err
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", 0, err
	}
	dgst := "sha256:" + hex.EncodeToString(h.Sum(nil))
	q := u.Query()
	q.Set("digest", dgst)
	u.RawQuery = q.Encode()
	_, err = ociSend(ctx, token, http.MethodPut, u.String(), "", nil, http.StatusCreated)
	return dgst, info.Size(), err
}
