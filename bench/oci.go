package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// ociChunked runs the OCI chunked-upload row: a file pushed as crane and
// docker push a layer (POST, one PATCH streaming the whole file without a
// length while the client hashes it, PUT ?digest=), against a direct
// PutObject of the same file, with the server's peak RSS growth. The chunk
// stays where it was streamed (parts), so this should cost what a
// monolithic upload costs.
func (b *bench) ociChunked(ctx context.Context, svc *service, token, bucket, dir string) error {
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
	return nil
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
