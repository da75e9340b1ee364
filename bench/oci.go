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
	watch, cpu0 := svc.watchRSS(), svc.cpu()
	b.settle()
	push, err := timed(func() error { return ociChunkedPush(ctx, svc.url, token, "bench-oci", path) })
	rss, cpu := watch(), svc.cpu()-cpu0
	if err != nil {
		return fmt.Errorf("OCI chunked upload: %w", err)
	}
	r := throughputRow("OCI chunked upload "+iec(b.cfg.size)+" (POST, PATCH, PUT as crane; vs PutObject)", b.cfg.size, push, direct, "PutObject", 0.85)
	r.stagegate += fmt.Sprintf("; RSS +%s, CPU %s", mib(rss), secs(cpu))
	r.target, r.met = "-", "-" // not an issue target: it shows that chunks are not written twice
	b.add(r)

	// Its promotion: the blob is kept in its chunk (parts), which MinIO
	// joins into staging's blobs/ key while the service verifies it.
	if err := ociPushManifest(ctx, svc.url, token, "bench-oci", "1.0.0", path); err != nil {
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
	watch, cpu0 = svc.watchRSS(), svc.cpu()
	b.settle()
	promote, err := timed(func() error {
		_, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "bench-oci", Version: "1.0.0"})
		return err
	})
	rss, cpu = watch(), svc.cpu()-cpu0
	if err != nil {
		return fmt.Errorf("promote the OCI-pushed version: %w", err)
	}
	ratio := promote.Seconds() / copyTime.Seconds()
	b.add(row{
		name:      "promotion of the OCI-pushed " + iec(b.cfg.size) + " (kept in parts; vs CopyObject)",
		stagegate: fmt.Sprintf("%s (%s); RSS +%s, CPU %s", secs(promote), mibs(b.cfg.size, promote), mib(rss), secs(cpu)),
		baseline:  fmt.Sprintf("%s (%s)", secs(copyTime), mibs(b.cfg.size, copyTime)),
		ratio:     fmt.Sprintf("%.2f× the time", ratio),
		target:    "-",
		met:       "-",
	})
	return nil
}

// ociPushManifest makes the blob at path, pushed already, the one file of
// name@version in dev: the empty config and a manifest naming the blob as
// a model's safetensors file, over the OCI API.
func ociPushManifest(ctx context.Context, base, token, name, version, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	send := func(method, u, contentType string, body []byte, want int) error {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: %s %s", method, u, resp.Status, data)
		}
		return nil
	}
	repo := base + "/v2/dev/" + name
	const emptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" // of "{}"
	if err := send(http.MethodPost, repo+"/blobs/uploads/?digest="+emptyDigest, "application/octet-stream", []byte("{}"), http.StatusCreated); err != nil {
		return err
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"artifactType":"application/vnd.stagegate.model.v1",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
		`"layers":[{"mediaType":"application/octet-stream","digest":"sha256:%x","size":%d,`+
		`"annotations":{"org.opencontainers.image.title":"model.safetensors"}}]}`, emptyDigest, h.Sum(nil), size)
	return send(http.MethodPut, repo+"/manifests/"+version, "application/vnd.oci.image.manifest.v1+json", []byte(manifest), http.StatusCreated)
}

// ociChunkedPush uploads the file at path as one blob of repository name in
// dev over the OCI API, the way go-containerregistry streams a layer.
func ociChunkedPush(ctx context.Context, base, token, name, path string) error {
	do := func(method, u string, body io.Reader, want int) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.ContentLength = -1
			req.Header.Set("Content-Type", "application/octet-stream")
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
	resp, err := do(http.MethodPost, base+"/v2/dev/"+name+"/blobs/uploads/", nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := resolve(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	resp, err = do(http.MethodPatch, loc, struct{ io.Reader }{io.TeeReader(f, h)}, http.StatusAccepted)
	if err != nil {
		return err
	}
	if loc, err = resolve(resp.Header.Get("Location")); err != nil {
		return err
	}
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", "sha256:"+hex.EncodeToString(h.Sum(nil)))
	u.RawQuery = q.Encode()
	_, err = do(http.MethodPut, u.String(), nil, http.StatusCreated)
	return err
}
