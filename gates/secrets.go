package gates

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// secretScan looks for credentials in text files. Findings name the file,
// line and rule, never the secret itself: gate results are stored, shown in
// CI summaries and audit logs.
type secretScan struct {
	exts       map[string]bool
	maxBytes   int64
	minEntropy float64
	rules      []secretRule
}

type secretRule struct {
	name string
	re   *regexp.Regexp
	// generic rules have a value group that must be high-entropy
	generic bool
}

type secretParams struct {
	Extensions   []string `yaml:"extensions"`
	MaxFileBytes int64    `yaml:"max_file_bytes"`
	MinEntropy   float64  `yaml:"min_entropy"`
}

// defaultTextExtensions are scanned when a policy lists none.
func defaultTextExtensions() []string {
	return []string{".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".env",
		".txt", ".md", ".py", ".sh", ".properties", ".prompt", ".j2", ".jinja", ".xml", ".tf"}
}

func newSecretScanCheck(n *yaml.Node) (Check, error) {
	p := secretParams{MaxFileBytes: 16 << 20, MinEntropy: 3.5}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if p.MaxFileBytes <= 0 {
		return nil, errAt(n, "max_file_bytes must be positive")
	}
	if p.MinEntropy <= 0 || p.MinEntropy > 8 {
		return nil, errAt(n, "min_entropy: want bits per character in (0, 8], got %v", p.MinEntropy)
	}
	exts, err := extensionSet(n, p.Extensions, defaultTextExtensions())
	if err != nil {
		return nil, err
	}
	return &secretScan{exts: exts, maxBytes: p.MaxFileBytes, minEntropy: p.MinEntropy, rules: secretRules()}, nil
}

func secretRules() []secretRule {
	return []secretRule{
		{name: "aws-access-key-id", re: regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}\b`)},
		{name: "github-token", re: regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,255}\b`)},
		{name: "github-fine-grained-token", re: regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{22,255}\b`)},
		{name: "slack-token", re: regexp.MustCompile(`\bxox[abposre]-[A-Za-z0-9-]{10,}`)},
		{name: "private-key", re: regexp.MustCompile(`-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----`)},
		{name: "high-entropy-assignment", generic: true, re: regexp.MustCompile(
			`(?i)([a-z0-9_.-]*(?:secret|token|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|auth[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*)["']?\s*(?::|=|:=|=>)\s*["']?([^\s"'` + "`" + `,;]{16,})`)},
	}
}

// extensionSet validates and normalises an extension list (".json").
func extensionSet(n *yaml.Node, list, def []string) (map[string]bool, error) {
	if list == nil {
		list = def
	}
	set := map[string]bool{}
	for _, e := range list {
		e = strings.ToLower(e)
		if !strings.HasPrefix(e, ".") || len(e) < 2 || strings.ContainsAny(e, "/\\ ") {
			return nil, errAt(n, "extension %q: want a dot and a suffix, e.g. .json", truncate(e, 40))
		}
		set[e] = true
	}
	return set, nil
}

func (*secretScan) Name() string { return "secret-scan" }

// SecretFinding locates one suspected secret. It deliberately has no field
// for the matched text.
type SecretFinding struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Rule string `json:"rule"`
	Key  string `json:"key,omitempty"` // the assigned name, for generic findings
}

// SecretDetails lists every finding and what was scanned.
type SecretDetails struct {
	Scanned  []string        `json:"scanned"`
	Findings []SecretFinding `json:"findings,omitempty"`
}

func (c *secretScan) Run(ctx context.Context, s *Subject) Result {
	d := SecretDetails{Scanned: []string{}}
	for _, f := range s.Files {
		if !c.exts[strings.ToLower(path.Ext(f.Path))] {
			continue
		}
		if f.Size > c.maxBytes {
			return fail(d, "%s is %d bytes, over the %d-byte secret-scan limit", f.Path, f.Size, c.maxBytes)
		}
		found, err := c.scanFile(ctx, f)
		if err != nil {
			return errored(d, "%s: %v", f.Path, err)
		}
		d.Scanned = append(d.Scanned, f.Path)
		d.Findings = append(d.Findings, found...)
	}
	if len(d.Findings) > 0 {
		first := d.Findings[0]
		return fail(d, "%d suspected secret(s), first %s line %d (%s)", len(d.Findings), first.Path, first.Line, first.Rule)
	}
	if len(d.Scanned) == 0 {
		return pass(d, "no text files to scan")
	}
	return pass(d, "no secrets found in %d file(s)", len(d.Scanned))
}

func (c *secretScan) scanFile(ctx context.Context, f File) ([]SecretFinding, error) {
	if f.Open == nil {
		return nil, fmt.Errorf("no opener")
	}
	rc, err := f.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	return c.scan(ctxReader{ctx, io.LimitReader(rc, c.maxBytes+1)}, f.Path)
}

// maxLineChunk bounds memory per line; longer lines are scanned in chunks.
const maxLineChunk = 64 << 10

func (c *secretScan) scan(r io.Reader, name string) ([]SecretFinding, error) {
	br := bufio.NewReaderSize(r, maxLineChunk)
	var out []SecretFinding
	line := 1
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			out = append(out, c.scanLine(chunk, name, line)...)
		}
		switch {
		case err == nil:
			line++
		case errors.Is(err, bufio.ErrBufferFull):
			// same line continues in the next chunk
		case errors.Is(err, io.EOF):
			return out, nil
		default:
			return out, fmt.Errorf("read: %w", err)
		}
	}
}

func (c *secretScan) scanLine(b []byte, name string, line int) []SecretFinding {
	var out []SecretFinding
	seen := map[string]bool{}
	for _, r := range c.rules {
		if !r.generic {
			if r.re.Match(b) && !seen[r.name] {
				seen[r.name] = true
				out = append(out, SecretFinding{Path: name, Line: line, Rule: r.name})
			}
			continue
		}
		if len(out) > 0 {
			continue // a specific rule already flagged this line
		}
		for _, m := range r.re.FindAllSubmatch(b, -1) {
			key, val := string(m[1]), m[2]
			if placeholder(val) || !mixedClasses(val) || shannon(val) < c.minEntropy {
				continue
			}
			out = append(out, SecretFinding{Path: name, Line: line, Rule: r.name, Key: truncate(key, 64)})
			break
		}
	}
	return out
}

// placeholder recognises template references that are not secrets.
func placeholder(v []byte) bool {
	return bytes.HasPrefix(v, []byte("${")) || bytes.HasPrefix(v, []byte("{{")) ||
		bytes.HasPrefix(v, []byte("<")) || bytes.HasPrefix(v, []byte("$(")) ||
		bytes.HasPrefix(v, []byte("env:")) || bytes.HasPrefix(v, []byte("vault:"))
}

// mixedClasses reports whether v looks generated rather than a word or an
// identifier: letters with digits, or three character classes.
func mixedClasses(v []byte) bool {
	var lower, upper, digit, other bool
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			classes++
		}
	}
	return (digit && (lower || upper)) || classes >= 3
}

// shannon returns the Shannon entropy of b in bits per byte.
func shannon(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	var h float64
	n := float64(len(b))
	for _, k := range counts {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
