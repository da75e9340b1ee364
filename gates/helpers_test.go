package gates

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// memOpener serves b from memory.
func memOpener(b []byte) Opener {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func memFile(path string, b []byte) File {
	return File{Path: path, Digest: digestOf(b), Size: int64(len(b)), Open: memOpener(b)}
}

func memEvidence(typ string, b []byte) Evidence {
	return Evidence{Type: typ, Digest: digestOf(b), Size: int64(len(b)), Open: memOpener(b)}
}

func failingOpener(context.Context) (io.ReadCloser, error) {
	return nil, errors.New("storage unavailable")
}

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// subject returns a valid staging -> prod subject of kind k.
func subject(k registry.Kind, files ...File) *Subject {
	return &Subject{
		Name: "fraud-detector", Version: "1.4.0", Kind: k,
		Source: "staging", Target: "prod", Environments: []string{"dev", "staging", "prod"},
		Files: files, PublishedAt: testNow.Add(-48 * time.Hour), Actor: "ci", Identity: "ci@example.com", Now: testNow,
	}
}

// buildCheck constructs one check from its YAML params through the loader.
func buildCheck(t testing.TB, name, params string) Check {
	t.Helper()
	doc := "environment: prod\nchecks:\n  - name: " + name + "\n"
	if params != "" {
		doc += "    params:\n"
		for _, l := range strings.Split(strings.TrimRight(params, "\n"), "\n") {
			doc += "      " + l + "\n"
		}
	}
	p, err := LoadPolicy([]byte(doc))
	if err != nil {
		t.Fatalf("LoadPolicy:\n%s\n%v", doc, err)
	}
	return p.Checks[0].Check
}

func wantStatus(t testing.TB, r Result, want Status) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %s, want %s; reason: %s; details: %+v", r.Status, want, r.Reason, r.Details)
	}
	if r.Reason == "" || strings.Contains(r.Reason, "\n") {
		t.Errorf("reason must be one non-empty line, got %q", r.Reason)
	}
}
