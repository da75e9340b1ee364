// Package environment is the value every request is bound to: one
// configured environment with its place in the promotion order, its bucket,
// its metadata handle, its signing and verification keys, the CI keys it
// trusts and its gate policy.
//
// The values are built once at start-up from configuration (New) and never
// looked up by name afterwards, except where a credential is bound to its
// environment at authentication. Services take an *Environment, so a
// request cannot reach storage, metadata or keys of an environment other
// than the one its credential names; a promotion reads only
// target.Previous().
package environment

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/oci"
	"github.com/stagegate/stagegate/registry"
)

// Spec is what start-up wiring knows about one environment.
type Spec struct {
	Name     string
	Blobs    registry.Blobs
	Metadata registry.Metadata
	Signer   registry.Signer
	// Verifier holds the signing key and the keys it rotated away from;
	// signatures and attestations made by any of them verify.
	Verifier registry.Verifier
	// TrustedCI decides whether a publisher's CI signatures count; nil
	// trusts none (the signature check is unconfigured).
	TrustedCI registry.CIKeys
	// Policy gates promotions into this environment; nil only for the
	// first environment, where nothing is promoted.
	Policy *gates.Policy
}

// Environment is one configured environment. It implements registry.Env.
type Environment struct {
	name      string
	position  int
	all       *List
	blobs     registry.Blobs
	metadata  registry.Metadata
	signer    registry.Signer
	verifier  registry.Verifier
	trustedCI registry.CIKeys
	policy    *gates.Policy
}

// List is the configured environments in promotion order.
type List struct {
	envs []*Environment
}

// New builds the environments in promotion order. The first accepts
// publishes; every later one needs a gate policy written for it.
func New(specs []Spec) (*List, error) {
	if len(specs) == 0 {
		return nil, errors.New("environment: at least one environment is required")
	}
	l := &List{envs: make([]*Environment, len(specs))}
	seen := map[string]bool{}
	for i, s := range specs {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("environment: environment %d has no name", i)
		case seen[s.Name]:
			return nil, fmt.Errorf("environment: %q is configured twice", s.Name)
		case s.Blobs == nil || s.Metadata == nil || s.Signer == nil || s.Verifier == nil:
			return nil, fmt.Errorf("environment: %q lacks storage, metadata or keys", s.Name)
		case i > 0 && s.Policy == nil:
			return nil, fmt.Errorf("environment: %q has no gate policy", s.Name)
		}
		seen[s.Name] = true
		l.envs[i] = &Environment{name: s.Name, position: i, all: l, blobs: s.Blobs, metadata: s.Metadata,
			signer: s.Signer, verifier: s.Verifier, trustedCI: s.TrustedCI, policy: s.Policy}
	}
	return l, nil
}

// All returns the environments in promotion order.
func (l *List) All() []*Environment { return append([]*Environment(nil), l.envs...) }

// First is the environment that accepts publishes.
func (l *List) First() *Environment { return l.envs[0] }

// Names are the environment names in promotion order.
func (l *List) Names() []string {
	out := make([]string, len(l.envs))
	for i, e := range l.envs {
		out[i] = e.name
	}
	return out
}

// Bind returns the environment a credential names. It is the one place a
// name becomes an environment after start-up: authentication calls it
// once per request.
func (l *List) Bind(name string) (*Environment, bool) {
	for _, e := range l.envs {
		if e.name == name {
			return e, true
		}
	}
	return nil, false
}

// Name is the environment's configured name.
func (e *Environment) Name() string { return e.name }

// Position is the place in the promotion order, 0 for the first.
func (e *Environment) Position() int { return e.position }

// AcceptsPublish is true for the first environment only.
func (e *Environment) AcceptsPublish() bool { return e.position == 0 }

// Previous is the environment promotions into e come from; ok is false for
// the first environment.
func (e *Environment) Previous() (prev *Environment, ok bool) {
	if e.position == 0 {
		return nil, false
	}
	return e.all.envs[e.position-1], true
}

// Order names every environment in promotion order (gates check it).
func (e *Environment) Order() []string { return e.all.Names() }

// Blobs is the environment's bucket.
func (e *Environment) Blobs() registry.Blobs { return e.blobs }

// Metadata is the environment-scoped metadata handle.
func (e *Environment) Metadata() registry.Metadata { return e.metadata }

// Signer is the environment's signing key.
func (e *Environment) Signer() registry.Signer { return e.signer }

// Verifier verifies with the signing key and the keys it rotated from.
func (e *Environment) Verifier() registry.Verifier { return e.verifier }

// Policy gates promotions into e; nil for the first environment.
func (e *Environment) Policy() *gates.Policy { return e.policy }

// TrustsCI reports whether any CI key is configured as trusted.
func (e *Environment) TrustsCI() bool { return e.trustedCI != nil }

// FindVersion validates name and version, reads the canonical version from
// e's metadata, and reports a missing one as version_not_found naming e.
func (e *Environment) FindVersion(ctx context.Context, name, version string) (registry.VersionRecord, error) {
	if _, err := registry.ParseName(name); err != nil {
		return registry.VersionRecord{}, err
	}
	ver, err := registry.ParseVersion(version)
	if err != nil {
		return registry.VersionRecord{}, err
	}
	rec, err := e.metadata.GetVersion(ctx, name, ver.Canonical)
	if registry.KindOf(err) == registry.NotFound {
		return registry.VersionRecord{}, registry.CodeVersionNotFound.Errorf("%s@%s does not exist in %s", name, ver.Canonical, e.name)
	}
	return rec, err
}

// SignManifest returns e's signature over manifest, stored in e's bucket
// create-once before any record names it: ECDSA signatures differ on every
// call, so a retry (or a concurrent publish or promotion) adopts the stored
// one and every copy of the record names the same bytes.
//
// Beside it, and at the same time (one more write, no more waiting), it
// stores e's signature over the cosign simple-signing payload that names
// the manifest as name in e: the OCI API serves it under the tag
// `cosign verify` looks up (CosignSignature), so a consumer checks a
// release with the environment's public key and the registry clients it
// already has.
func (e *Environment) SignManifest(ctx context.Context, name string, digest v1.Hash, manifest []byte, now time.Time) (registry.Signature, error) {
	keyID := e.signer.KeyID()
	sig := registry.Signature{Role: registry.SignedByEnvironment, KeyID: keyID, Subject: registry.SubjectManifest, Trusted: true, CreatedAt: now.UTC()}
	payload, err := oci.SimpleSigningPayload(CosignReference(e.name, name), digest)
	if err != nil {
		return registry.Signature{}, registry.CodeInternal.Errorf("building the cosign payload").WithCause(err)
	}
	var cosignErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, cosignErr = e.signOnce(ctx, registry.CosignSignatureKey(digest, keyID), payload)
	}()
	b64, err := e.signOnce(ctx, registry.SignatureKey(digest, keyID), manifest)
	<-done
	if err != nil {
		return registry.Signature{}, err
	}
	if cosignErr != nil {
		return registry.Signature{}, cosignErr
	}
	sig.Signature = b64
	return sig, nil
}

// CosignReference is the docker-reference of the simple-signing payloads
// an environment signs: the OCI repository of the name, without a host.
// cosign verify checks the payload's manifest digest, not this reference
// (a service has no one host name), but it tells a reader of the payload
// which environment's release was signed.
func CosignReference(env, name string) string { return env + "/" + name }

// signOnce signs payload and stores the signature at key create-once,
// returning what is stored. The create-once write comes first: usually
// nothing is stored yet, and the write answers "is there one?" without a
// read (one storage round trip per signature, issue #18). Only when one
// exists is it read back and adopted.
func (e *Environment) signOnce(ctx context.Context, key string, payload []byte) (string, error) {
	b64, err := e.signer.SignBlob(payload)
	if err != nil {
		return "", registry.CodeInternal.Errorf("signing failed").WithCause(err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		switch err := e.blobs.PutObject(ctx, key, []byte(b64)); {
		case err == nil:
			return b64, nil
		case !errors.Is(err, registry.ErrObjectExists):
			return "", registry.StorageError("writing signature", err)
		}
		// A retry, or another signer first: adopt the stored signature.
		stored, err := e.blobs.GetObject(ctx, key, registry.MaxSignatureSize)
		if err == nil {
			return string(stored), nil
		}
		if !errors.Is(err, registry.ErrObjectNotFound) {
			return "", registry.StorageError("reading signature", err)
		}
	}
	return "", registry.CodeUnavailable.Errorf("signature object %s keeps changing", key)
}

// CosignSignature returns e's stored signature (base64, as cosign writes
// it) over the simple-signing payload of the manifest digest, made by
// the current key. Versions signed before stagegate stored these, or by a
// key e has rotated away from, have none: not_found.
func (e *Environment) CosignSignature(ctx context.Context, digest v1.Hash) (string, error) {
	b, err := e.blobs.GetObject(ctx, registry.CosignSignatureKey(digest, e.signer.KeyID()), registry.MaxSignatureSize)
	switch {
	case errors.Is(err, registry.ErrObjectNotFound):
		return "", registry.CodeNotFound.Errorf("%s has no cosign signature in %s", digest, e.name)
	case err != nil:
		return "", registry.StorageError("reading cosign signature", err)
	}
	return string(b), nil
}

// JudgeCISignatures checks CI signatures against the CI keys e trusts and
// returns them with KeyID and Trusted set. The content is "trusted" when a
// trusted key signed the manifest, or signed every file; "untrusted" when
// signatures exist but that does not hold; "absent" when there are none.
// Signatures that do not verify are kept, untrusted, so a gate can say why.
// Trust is a property of the environment that relies on it: promotion
// judges again with the target's keys.
func (e *Environment) JudgeCISignatures(manifest []byte, files []registry.File, sigs []registry.Signature) ([]registry.Signature, registry.CITrust) {
	digests := make(map[string]string, len(files))
	for _, f := range files {
		digests[f.Path] = f.Digest.String()
	}
	var out []registry.Signature
	manifestTrusted, filesTrusted := false, map[string]bool{}
	for _, sig := range sigs {
		if sig.Role != registry.SignedByCI {
			continue
		}
		sig.KeyID, sig.Trusted = "", false
		if e.trustedCI != nil {
			var keyID string
			var err error
			if sig.Subject == registry.SubjectManifest {
				keyID, err = e.trustedCI.Identify(manifest, sig.Signature)
			} else if d, ok := digests[sig.Subject]; ok {
				keyID, err = e.trustedCI.IdentifyDigest(d, sig.Signature)
			} else {
				err = errors.New("unknown subject")
			}
			if err == nil {
				sig.KeyID, sig.Trusted = keyID, true
				if sig.Subject == registry.SubjectManifest {
					manifestTrusted = true
				} else {
					filesTrusted[sig.Subject] = true
				}
			}
		}
		out = append(out, sig)
	}
	switch {
	case len(out) == 0:
		return nil, registry.CIAbsent
	case manifestTrusted || len(filesTrusted) == len(files):
		return out, registry.CITrusted
	}
	return out, registry.CIUntrusted
}
