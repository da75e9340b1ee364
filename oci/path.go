package oci

import (
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// Endpoint is what a /v2/ path addresses.
type Endpoint int

// The endpoints of the distribution spec.
const (
	Base        Endpoint = iota // /v2/
	Catalog                     // /v2/_catalog
	Tags                        // /v2/<repository>/tags/list
	Manifest                    // /v2/<repository>/manifests/<reference>
	Blob                        // /v2/<repository>/blobs/<digest>
	UploadStart                 // /v2/<repository>/blobs/uploads/
	Upload                      // /v2/<repository>/blobs/uploads/<session>
	Referrers                   // /v2/<repository>/referrers/<digest>
)

func (e Endpoint) String() string {
	return [...]string{"base", "catalog", "tags", "manifest", "blob", "upload-start", "upload", "referrers"}[e]
}

// Path is a parsed /v2/ path. A repository is <environment>/<name>: its
// first segment is the environment, the way the REST API's URLs name one,
// and the rest is the artifact name (which may contain '/').
type Path struct {
	Endpoint  Endpoint
	Env       string
	Name      string
	Reference string // a tag or digest (Manifest), a digest (Blob, Referrers), a session id (Upload)
}

// Repository is the OCI repository name of p: <environment>/<name>.
func (p Path) Repository() string { return p.Env + "/" + p.Name }

// MaxPathLength bounds a /v2/ path: a name, an environment and a digest or
// tag fit well inside it.
const MaxPathLength = registry.MaxNameLength + 512

// envPattern is the shape of an environment name as a repository segment;
// whether it is a configured one is authentication's question.
var envPattern = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// ParsePath parses the part of a URL path after /v2 ("/" for the base).
// Names are matched from the right, as distribution does, so a name may
// itself contain a segment such as "blobs" or "manifests". The name is
// validated as stagegate validates artifact names; references are returned
// as given, for ParseReference and ParseDigest.
func ParsePath(p string) (Path, error) {
	if len(p) > MaxPathLength {
		return Path{}, CodeNameInvalid.Errorf("path is longer than %d bytes", MaxPathLength)
	}
	p = strings.TrimPrefix(p, "/")
	switch p {
	case "":
		return Path{Endpoint: Base}, nil
	case "_catalog":
		return Path{Endpoint: Catalog}, nil
	}
	var out Path
	var repo string
	switch {
	case strings.HasSuffix(p, "/tags/list"):
		out.Endpoint, repo = Tags, strings.TrimSuffix(p, "/tags/list")
	case strings.HasSuffix(p, "/blobs/uploads/"), strings.HasSuffix(p, "/blobs/uploads"):
		out.Endpoint, repo = UploadStart, p[:strings.LastIndex(p, "/blobs/uploads")]
	default:
		head, last, ok := cutLast(p)
		if !ok || last == "" {
			return Path{}, noRoute()
		}
		head, what, _ := cutLast(head)
		switch what {
		case "manifests":
			out.Endpoint = Manifest
		case "blobs":
			out.Endpoint = Blob
		case "referrers":
			out.Endpoint = Referrers
		case "uploads":
			var blobs string
			if head, blobs, _ = cutLast(head); blobs != "blobs" {
				return Path{}, noRoute()
			}
			out.Endpoint = Upload
		default:
			return Path{}, noRoute()
		}
		repo, out.Reference = head, last
	}
	env, name, ok := strings.Cut(repo, "/")
	if !ok || env == "" || name == "" {
		return Path{}, CodeNameInvalid.Errorf("repository %q: want <environment>/<name>, e.g. prod/fraud-detector", truncate(repo))
	}
	if !envPattern.MatchString(env) || len(env) > 64 {
		return Path{}, CodeNameInvalid.Errorf("repository %q: %q is not an environment name", truncate(repo), truncate(env))
	}
	if _, err := registry.ParseName(name); err != nil {
		return Path{}, &Error{Code: CodeNameInvalid, Status: CodeNameInvalid.Status, Message: registry.AsError(err).Message, Err: err}
	}
	out.Env, out.Name = env, name
	return out, nil
}

func noRoute() *Error {
	return CodeNameUnknown.Errorf("no such route: want /v2/<environment>/<name>/{manifests/<reference>,blobs/<digest>,blobs/uploads/,tags/list,referrers/<digest>} or /v2/_catalog")
}

func cutLast(s string) (head, last string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

// Reference is a manifest reference: a tag or a digest.
type Reference struct {
	Tag    string
	Digest v1.Hash // set when the reference is a digest
}

// IsDigest reports whether r is a digest.
func (r Reference) IsDigest() bool { return r.Tag == "" }

// tagPattern and digestPattern are the spec's grammar.
var (
	tagPattern    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
)

// ParseReference parses a manifest reference. A digest of an algorithm other
// than sha256 is well-formed but can name nothing stagegate stores; it is
// returned with that algorithm, and lookups find nothing.
func ParseReference(s string) (Reference, error) {
	if !strings.Contains(s, ":") {
		if !tagPattern.MatchString(s) {
			return Reference{}, CodeTagInvalid.Errorf("invalid tag %q", truncate(s))
		}
		return Reference{Tag: s}, nil
	}
	h, err := ParseDigest(s)
	if err != nil {
		return Reference{}, err
	}
	return Reference{Digest: h}, nil
}

// ParseDigest parses a digest of the spec's grammar. sha256 digests must be
// 64 lowercase hex digits (DIGEST_INVALID otherwise); other algorithms are
// returned as they are, for the caller to answer "unknown".
func ParseDigest(s string) (v1.Hash, error) {
	if len(s) > 256 || !digestPattern.MatchString(s) {
		return v1.Hash{}, CodeDigestInvalid.Errorf("invalid digest %q: want <algorithm>:<encoded>", truncate(s))
	}
	alg, enc, _ := strings.Cut(s, ":")
	if alg != "sha256" {
		return v1.Hash{Algorithm: alg, Hex: enc}, nil
	}
	h, err := registry.ParseDigest(s)
	if err != nil {
		return v1.Hash{}, CodeDigestInvalid.Errorf("invalid digest %q: want sha256:<64 lowercase hex>", truncate(s))
	}
	return h, nil
}

// Stored reports whether h is of the one algorithm stagegate stores content under.
func Stored(h v1.Hash) bool { return h.Algorithm == "sha256" }

func truncate(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "…"
}
