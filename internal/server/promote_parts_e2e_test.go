package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/blob"
	"github.com/stagegate/stagegate/internal/server"
	"github.com/stagegate/stagegate/registry"
)

// TestPromoteBlobInParts: a layer pushed over the OCI API in two chunks
// large enough for S3 to join (the first over 5 MiB) stays in its chunks
// in dev (parts/, never written again to blobs/). Promoting its version
// gives staging a real blobs/ key with the same bytes: on MinIO the
// backend joins the chunks while the service verifies them
// (internal/blob's PartsCopier; the driver suites check that path), on the
// filesystem the service streams them. A chunk damaged in dev fails the
// promotion and leaves nothing in staging.
func TestPromoteBlobInParts(t *testing.T) {
	t.Parallel()
	for _, kind := range stackKinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s := permissiveStagingStack(t, kind)
			ctx := context.Background()
			pub := basic(s.key("dev", auth.RolePublisher))
			promoter := s.client(s.key("staging", auth.RolePromoter))
			dev, err := server.OpenBucket(ctx, s.cfg, "dev")
			if err != nil {
				t.Fatal(err)
			}
			staging, err := server.OpenBucket(ctx, s.cfg, "staging")
			if err != nil {
				t.Fatal(err)
			}

			pushLayer := func(name string, layer []byte) {
				t.Helper()
				loc := ociOpen(t, s, s.url+"/v2/dev/"+name, pub)
				cut := 5<<20 + 1
				resp, data := ociSend(t, http.MethodPatch, s.url+loc, pub, layer[:cut])
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("PATCH = %d %s", resp.StatusCode, data)
				}
				resp, data = ociSend(t, http.MethodPut, s.url+withQuery(resp.Header.Get("Location"), "digest", registry.DigestOf(layer).String()), pub, layer[cut:])
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("PUT = %d %s", resp.StatusCode, data)
				}
				ociPushImage(t, s, pub, name, "1.0.0", layer)
			}

			layer := randomBytes(t, 6<<20+77)
			dgst := registry.DigestOf(layer)
			pushLayer("team/joined", layer)
			if _, err := dev.Stat(ctx, registry.PartsKey(dgst)); err != nil {
				t.Fatalf("no parts object for the chunked layer: %v", err)
			}
			if _, err := dev.Stat(ctx, registry.BlobKey(dgst)); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("the chunked layer was written again to blobs/ (%v)", err)
			}
			if _, err := promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "team/joined", Version: "1.0.0"}); err != nil {
				t.Fatalf("promoting a version whose file is kept in parts: %v", err)
			}
			if info, err := staging.Stat(ctx, registry.BlobKey(dgst)); err != nil || info.Size != int64(len(layer)) {
				t.Errorf("staging's copy of the layer: %+v, %v", info, err)
			}
			if resp, got := ociRequest(t, http.MethodGet, s.url+"/v2/staging/team/joined/blobs/"+dgst.String(), basic(s.key("staging", auth.RoleReader))); resp.StatusCode != http.StatusOK || !bytes.Equal(got, layer) {
				t.Errorf("GET of the promoted layer = %d, %d bytes", resp.StatusCode, len(got))
			}

			// The same with the first chunk changed in dev after the push
			// (same length): the promotion's copy does not verify.
			damaged := randomBytes(t, 6<<20+78)
			ddgst := registry.DigestOf(damaged)
			pushLayer("team/damaged", damaged)
			parts, err := blob.NewStore(dev).PartsOf(ctx, ddgst)
			if err != nil || len(parts) != 2 {
				t.Fatalf("parts of the second layer: %v, %v", parts, err)
			}
			replacer, ok := dev.(blob.Replacer)
			if !ok {
				t.Fatal("the bucket's driver cannot replace keys")
			}
			if err := replacer.Replace(ctx, parts[0].Key, bytes.NewReader(make([]byte, parts[0].Size)), parts[0].Size); err != nil {
				t.Fatal(err)
			}
			_, err = promoter.Promote(ctx, "staging", client.PromoteRequest{Name: "team/damaged", Version: "1.0.0"})
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != "gate_failed" {
				t.Errorf("promoting a version whose chunk was damaged = %v, want gate_failed (digest-integrity)", err)
			}
			if _, err := staging.Stat(ctx, registry.BlobKey(ddgst)); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("after the refused promotion staging has the layer (%v)", err)
			}
		})
	}
}
