package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	miniogo "github.com/minio/minio-go/v7"
)

// TestPartChecksumRefused pins what partOptions relies on: a part sent
// unsigned is still checked by MinIO against its x-amz-checksum-crc32c, so
// bytes damaged on the way are refused, and parts that match complete into
// exactly the bytes sent.
func TestPartChecksumRefused(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	part := make([]byte, minPartSize)
	_, _ = rand.Read(part)
	damaged := bytes.Clone(part)
	damaged[len(damaged)/2] ^= 1

	cases := []struct {
		name   string
		sent   []byte // the bytes that reach MinIO
		wantOK bool
	}{
		{"intact", part, true},
		{"damaged-on-the-way", damaged, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "checksum/" + tc.name
			id, err := d.core.NewMultipartUpload(ctx, d.bucket, key, miniogo.PutObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = d.core.AbortMultipartUpload(ctx, d.bucket, key, id) }()
			// The checksum is of the bytes the driver meant to send.
			p, err := d.core.PutObjectPart(ctx, d.bucket, key, id, 1, bytes.NewReader(tc.sent), int64(len(tc.sent)), partOptions(part))
			if !tc.wantOK {
				if err == nil {
					t.Fatal("MinIO accepted a part whose bytes do not match its CRC32C")
				}
				return
			}
			if err != nil {
				t.Fatalf("PutObjectPart: %v", err)
			}
			if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, key, id,
				[]miniogo.CompletePart{{PartNumber: 1, ETag: p.ETag, ChecksumCRC32C: p.ChecksumCRC32C}}, miniogo.PutObjectOptions{}); err != nil {
				t.Fatalf("CompleteMultipartUpload: %v", err)
			}
			rc, _, _, err := d.core.GetObject(ctx, d.bucket, key, miniogo.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, part) {
				t.Fatalf("stored %d bytes (err %v), want the %d sent", len(got), err, len(part))
			}
		})
	}
}

// TestSingleChecksumRefused pins the same for a small object sent in one
// PUT (singleOptions): damaged bytes are refused and leave no object.
func TestSingleChecksumRefused(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	data := make([]byte, 4<<10)
	_, _ = rand.Read(data)
	damaged := bytes.Clone(data)
	damaged[100] ^= 1
	if _, err := d.core.PutObject(ctx, d.bucket, "checksum/damaged", bytes.NewReader(damaged), int64(len(damaged)), "", "", singleOptions(createOnce(), data)); err == nil {
		t.Fatal("MinIO accepted an object whose bytes do not match its CRC32C")
	}
	if _, err := d.Stat(ctx, "checksum/damaged"); err == nil {
		t.Error("the refused object exists")
	}
	if err := d.Put(ctx, "checksum/intact", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, _, err := d.Get(ctx, "checksum/intact")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (err %v), want the %d sent", len(got), err, len(data))
	}
}
