package registry

import (
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The layout of one environment's bucket. Every key the service writes is
// built by a function of this file, and a test lists what a publish and a
// promotion wrote and compares it with this tree:
//
//	<bucket>/
//	├── blobs/sha256/<hex>                            file layers, config blobs, manifests, evidence;
//	│                                                 content-addressed, create-once
//	├── parts/sha256/<hex>                            the chunks, in order, that hold the blob <hex>
//	│                                                 where a chunked OCI upload stored them (create-once)
//	├── uploads/<upload id>/<offset>.data             the chunk of an OCI upload that starts at byte
//	│                                                 offset (create-once)
//	├── uploads/<upload id>/<offset>.state            the upload's sha256 state and chunks after offset
//	│                                                 bytes (create-once; removed when it ends)
//	├── refs/<name>/-/<version>                       manifest digest of name@version (create-once
//	│                                                 pointer: the bucket describes itself, for reindex)
//	├── signatures/sha256/<manifest hex>/<key id>     the environment's cosign signature over a
//	│                                                 manifest (create-once)
//	├── signatures/sha256/<manifest hex>/simplesigning/<key id>
//	│                                                 the environment's signature over the cosign
//	│                                                 simple-signing payload naming the manifest, which
//	│                                                 `cosign verify` checks over the OCI API (create-once)
//	├── attestations/sha256/<manifest hex>/<key id>.json
//	│                                                 DSSE envelope of the gate results that admitted
//	│                                                 the manifest (create-once)
//	└── attestations/sha256/<manifest hex>/<key id>/rollback-<gate run id>.json
//	                                                  DSSE envelope of the gate results of a rollback
//	                                                  to the manifest, one per rollback (create-once)
//
// Maintenance on the server host (`stagegate scrub` and `stagegate gc`,
// never a request) adds families beside the tree: scrub/sha256/<hex> marks
// blobs/sha256/<hex> as failing verification; the next verified upload of
// those bytes replaces the blob and removes the mark (CorruptMarkKey).
// Earlier versions also kept the publish/gc handshake here, now rows of
// the metadata store (internal/hygiene's GC has the ordering argument):
// intents/<hex>, a publish's intent (the digests it was about to commit,
// one per line); gc/lease while a gc swept (GCLeaseKey); gc/sha256/<hex>,
// gc's tombstone on a digest (TombstoneKey). gc still honours young
// intent objects, refuses to run beside a lease object, and removes stale
// ones.
//
// The OCI API's chunked blob uploads (package oci) stream each chunk to
// its .data key and keep the running sha256 state and the chunk list in a
// .state key once offset bytes were received (the state at 0 is written
// when the upload opens). When the last request names the digest and the
// hash agrees, a blob over 1 MiB (oci.MaxRewrittenUpload) is not written
// again: its parts object lists the chunks, in order, that hold its bytes
// where they lie, so a chunked upload streams once, like a monolithic one
// (DESIGN §2: "blob keys not derived from content, and metadata maps
// digest → key"). A smaller blob is written whole to blobs/sha256/<hex>
// from its chunks. Readers of a blob (internal/blob's Store) look for
// blobs/sha256/<hex> first, then for its parts; either way they verify the
// digest as they stream. gc keeps the chunks a parts object names, and
// removes what an abandoned upload left once its newest key is older than
// the grace for uploads (UploadTTL).
//
// Names may contain '/'; the segment "-", never a valid name segment, ends
// a name, so "x@1.0.0" and a name "x/1.0.0" cannot collide and no key is
// also a prefix of another. Key ids contain ':' (sha256:…), which keys
// spell as '-'.

// BlobKey is the key of the blob with digest dgst.
func BlobKey(dgst v1.Hash) string { return "blobs/" + dgst.Algorithm + "/" + dgst.Hex }

// RefKey is the key of the pointer from name@version to its manifest digest.
func RefKey(name, version string) string { return "refs/" + name + "/-/" + version }

// SignatureKey is the key of the signature by key keyID over the manifest
// with digest manifest.
func SignatureKey(manifest v1.Hash, keyID string) string {
	return "signatures/sha256/" + manifest.Hex + "/" + keySegment(keyID)
}

// CosignSignatureKey is the key of the signature by key keyID over the
// cosign simple-signing payload of the manifest with digest manifest. It
// lives under the manifest's signature prefix, so what keeps or removes
// the manifest's signatures (gc's mark) covers it, and in a directory of
// its own, so it is never read as a signature over the manifest itself.
func CosignSignatureKey(manifest v1.Hash, keyID string) string {
	return "signatures/sha256/" + manifest.Hex + "/simplesigning/" + keySegment(keyID)
}

// AttestationKey is the key of the gate attestation signed by keyID for the
// manifest with digest manifest.
func AttestationKey(manifest v1.Hash, keyID string) string {
	return "attestations/sha256/" + manifest.Hex + "/" + keySegment(keyID) + ".json"
}

// RollbackAttestationKey is the key of the attestation signed by keyID of
// the gate run gateRunID that admitted a rollback to the manifest. A
// manifest may be rolled back to many times, and each rollback's gates are
// attested apart from the promotion's; the gate run id, unlike the release
// number, is known before the release is committed, so the attestation can
// be written first.
func RollbackAttestationKey(manifest v1.Hash, keyID, gateRunID string) string {
	return "attestations/sha256/" + manifest.Hex + "/" + keySegment(keyID) + "/rollback-" + gateRunID + ".json"
}

// CorruptMarkKey is the key of scrub's mark on the blob dgst, whose stored
// bytes failed verification.
func CorruptMarkKey(dgst v1.Hash) string { return "scrub/" + dgst.Algorithm + "/" + dgst.Hex }

func keySegment(keyID string) string { return strings.ReplaceAll(keyID, ":", "-") }

// IntentKey is the key of a publish attempt's intent object, as earlier
// versions wrote them; id is 64 random hex digits.
func IntentKey(id string) string { return "intents/" + id }

// IntentsPrefix is the prefix of every intent key.
const IntentsPrefix = "intents/"

// IntentTTL bounds a publish attempt: it commits within half of it after
// writing its intent, or not at all (it fails as unavailable, to be retried), and gc keeps what
// an intent younger than IntentTTL names, so the other half is the margin
// for the commit itself and for the store's clock against gc's.
const IntentTTL = time.Hour

// GCLeaseKey is the key gc holds (create-once) while it sweeps.
const GCLeaseKey = "gc/lease"

// TombstonesPrefix is the prefix of every tombstone key.
const TombstonesPrefix = "gc/sha256/"

// TombstoneKey is the key of gc's tombstone on the digest dgst.
func TombstoneKey(dgst v1.Hash) string { return "gc/" + dgst.Algorithm + "/" + dgst.Hex }

// PartsKey is the key of the list of chunks that hold the bytes of the
// blob dgst, for a blob that a chunked upload stored in place.
func PartsKey(dgst v1.Hash) string { return "parts/" + dgst.Algorithm + "/" + dgst.Hex }

// UploadTTL bounds a chunked upload's pauses: each of its requests is
// answered, and what it writes is stored, within half of it after the
// upload's last stored state (later ones find the upload expired), and gc
// removes an upload's keys only once its newest is older than UploadTTL
// (and not named by a parts object). So gc never removes a chunk of an
// upload that may still write or link, and the other half is the margin
// for clock skew between the service's hosts, the store and gc. Long,
// because one chunk may be a whole model file streamed in one PATCH.
const UploadTTL = 6 * time.Hour

// UploadsPrefix is the prefix of every chunked-upload key.
const UploadsPrefix = "uploads/"

// UploadKey is the key of part (a chunk or a state, see above) of the
// chunked upload id.
func UploadKey(id, part string) string { return UploadsPrefix + id + "/" + part }
