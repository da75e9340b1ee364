package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// TestInlinePublish: a publish may carry small files' bytes (contents)
// instead of naming uploaded blobs. Contents that do not match their
// file's digest or size, name no listed file, or are too large are
// refused with a 4xx before anything is stored: no blob of those bytes,
// no version.
func TestInlinePublish(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		c := s.client(s.key("dev", auth.RolePublisher))
		config := []byte(`{"model":"gpt","temperature":0.2}`)
		file := registry.File{Path: "agent.json", Digest: registry.DigestOf(config), Size: int64(len(config)), MediaType: "application/json"}
		publish := func(version string, files []registry.File, contents map[string][]byte) (client.PublishResponse, error) {
			return c.Publish(ctx, "dev", "inline/agent", version, client.PublishRequest{Kind: "agent-config", Files: files, Contents: contents})
		}

		other := []byte(`{"model":"gpt","temperature":0.9}`)
		big := bytes.Repeat([]byte("x"), registry.MaxInlineContents+1)
		bigFile := registry.File{Path: "big.txt", Digest: registry.DigestOf(big), Size: int64(len(big))}
		for _, tc := range []struct {
			name     string
			files    []registry.File
			contents map[string][]byte
			status   int
			code     string
			absent   []byte // bytes that must not have become a blob
		}{
			{"other bytes than the digest", []registry.File{file}, map[string][]byte{"agent.json": other}, http.StatusBadRequest, "digest_mismatch", other},
			{"other length than the size", []registry.File{file}, map[string][]byte{"agent.json": append(config, ' ')}, http.StatusBadRequest, "digest_mismatch", append(config, ' ')},
			{"a path not listed", []registry.File{file}, map[string][]byte{"agent.json": config, "extra.json": other}, http.StatusBadRequest, "invalid_request", config},
			{"a path that is not one", []registry.File{file}, map[string][]byte{"../agent.json": config}, http.StatusBadRequest, "invalid_path", config},
			{"over the limit", []registry.File{bigFile}, map[string][]byte{"big.txt": big}, http.StatusRequestEntityTooLarge, "too_large", big},
		} {
			_, err := publish("1.0.0", tc.files, tc.contents)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code {
				t.Errorf("%s: publish = %v, want %d %s", tc.name, err, tc.status, tc.code)
			}
			if ok, err := c.BlobExists(ctx, "dev", registry.DigestOf(tc.absent)); err != nil || ok {
				t.Errorf("%s: after the refusal the blob exists=%v (%v)", tc.name, ok, err)
			}
		}
		if _, err := c.GetVersion(ctx, "dev", "inline/agent", "1.0.0"); err == nil {
			t.Fatal("a refused publish left a version")
		}

		// Accepted; once more is an idempotent repeat; the file reads back.
		res, err := publish("1.0.0", []registry.File{file}, map[string][]byte{"agent.json": config})
		if err != nil || !res.Created {
			t.Fatalf("inline publish = %+v, %v", res, err)
		}
		if res, err := publish("1.0.0", []registry.File{file}, map[string][]byte{"agent.json": config}); err != nil || res.Created {
			t.Errorf("the same inline publish again = created %v, %v; want an idempotent repeat", res.Created, err)
		}
		expectPulled(t, c, "dev", "inline/agent", "1.0.0", map[string][]byte{"agent.json": config})
		// Inline and uploaded files mix; a stored blob sent inline again is
		// simply there.
		upload := []byte("prompt: be brief\n")
		if _, err := c.UploadBlob(ctx, "dev", registry.DigestOf(upload), bytes.NewReader(upload), int64(len(upload))); err != nil {
			t.Fatal(err)
		}
		files := []registry.File{file, {Path: "prompt.yaml", Digest: registry.DigestOf(upload), Size: int64(len(upload))}}
		if _, err := publish("1.1.0", files, map[string][]byte{"agent.json": config}); err != nil {
			t.Fatalf("inline and uploaded files together: %v", err)
		}
		expectPulled(t, c, "dev", "inline/agent", "1.1.0", map[string][]byte{"agent.json": config, "prompt.yaml": upload})
	})
}

// expectPulled pulls name@version (verified by the client) and compares
// every file with want.
func expectPulled(t *testing.T, cl *client.Client, env, name, version string, want map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	if _, err := cl.Pull(context.Background(), env, name, version, dir); err != nil {
		t.Fatalf("pull %s@%s from %s: %v", name, version, env, err)
	}
	for p, data := range want {
		got, err := readPulled(dir, p)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("pulled %s: %d bytes, %v; want the %d pushed", p, len(got), err, len(data))
		}
	}
}

func readPulled(dir, path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
}
