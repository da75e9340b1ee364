package gates

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/registry"
)

// MaxPolicySize bounds a policy document; policies are short and a bound
// keeps a hostile or broken file from exhausting memory.
const MaxPolicySize = 1 << 20

// Policy is a loaded gate policy for one target environment: the checks to
// run, each already constructed with validated parameters.
type Policy struct {
	// Environment is the target environment the policy guards.
	Environment string
	// Digest is "sha256:<hex>" of the policy bytes; every gate run records
	// it so a result can be traced to the exact policy text.
	Digest string
	// Checks run in this order.
	Checks []PolicyCheck
}

// PolicyCheck is one policy entry: a constructed check and where it applies.
type PolicyCheck struct {
	Check  Check
	Family Family
	// Kinds the check applies to; empty means every kind.
	Kinds []registry.Kind
	// Required checks block promotion unless they pass (or are skipped);
	// advisory ones (required: false) are reported but never block.
	Required bool
	// Line is the policy line of the entry, for explanations.
	Line int
}

// AppliesTo reports whether the entry runs for artifacts of kind k.
func (pc PolicyCheck) AppliesTo(k registry.Kind) bool {
	return len(pc.Kinds) == 0 || slices.Contains(pc.Kinds, k)
}

// PolicyError is why a policy refused to load, with the 1-based line of the
// offending YAML node (0 when the problem is the document as a whole).
type PolicyError struct {
	Line   int
	Check  string // check name, when the problem is inside one entry
	Reason string
}

// Error formats the problem as `policy line N: check "name": reason`.
func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString("policy")
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Check != "" {
		fmt.Fprintf(&b, ": check %q", e.Check)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// constructor builds a check from its (possibly empty) params node. It
// returns a *PolicyError or any error; the loader adds the line.
type constructor struct {
	family Family
	build  func(params *yaml.Node) (Check, error)
}

// constructors is the fixed table of check names a policy may use. It is a
// function, not a package variable, so there is no global mutable registry:
// adding a check means adding a line here.
func constructors() map[string]constructor {
	return map[string]constructor{
		// data validation
		"json-schema":     {FamilyValidation, newJSONSchemaCheck},
		"schema-compat":   {FamilyValidation, newSchemaCompatCheck},
		"safetensors":     {FamilyValidation, newSafetensorsCheck},
		"allowed-formats": {FamilyValidation, newAllowedFormatsCheck},
		// tests
		"required-evidence": {FamilyTests, newRequiredEvidenceCheck},
		"junit":             {FamilyTests, newJUnitCheck},
		"metric-rules":      {FamilyTests, newMetricRulesCheck},
		// security
		"signature":        {FamilySecurity, newSignatureCheck},
		"digest-integrity": {FamilySecurity, newDigestIntegrityCheck},
		"secret-scan":      {FamilySecurity, newSecretScanCheck},
		"pickle-scan":      {FamilySecurity, newPickleScanCheck},
		"size-limits":      {FamilySecurity, newSizeLimitsCheck},
		"provenance":       {FamilySecurity, newProvenanceCheck},
		// process
		"promotion-order": {FamilyProcess, newPromotionOrderCheck},
		"soak-time":       {FamilyProcess, newSoakTimeCheck},
		"freeze-windows":  {FamilyProcess, newFreezeWindowsCheck},
		"approvals":       {FamilyProcess, newApprovalsCheck},
	}
}

// CheckNames lists the check names a policy may use, sorted.
func CheckNames() []string {
	var names []string
	for n := range constructors() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

type policyDoc struct {
	Environment string       `yaml:"environment"`
	Checks      []policyItem `yaml:"checks"`
}

type policyItem struct {
	Name     string    `yaml:"name"`
	Kinds    []string  `yaml:"kinds"`
	Required *bool     `yaml:"required"`
	Params   yaml.Node `yaml:"params"`
}

// LoadPolicy parses and validates a policy. Unknown keys, unknown check
// names, unknown kinds and bad parameters (including CEL expressions that do
// not compile) are refused with a *PolicyError naming the line and reason.
func LoadPolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, &PolicyError{Reason: fmt.Sprintf("larger than %d bytes", MaxPolicySize)}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &PolicyError{Reason: "empty document"}
		}
		return nil, yamlPolicyError(err, "")
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &PolicyError{Line: extra.Line, Reason: "more than one YAML document"}
	}
	var doc policyDoc
	if err := decodeStrict(&root, &doc); err != nil {
		return nil, yamlPolicyError(err, "")
	}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	if doc.Environment == "" {
		return nil, &PolicyError{Line: body.Line, Reason: "environment is required"}
	}
	if len(doc.Checks) == 0 {
		return nil, &PolicyError{Line: body.Line, Reason: "checks: at least one check is required"}
	}
	items := checkNodes(body)
	table := constructors()
	p := &Policy{Environment: doc.Environment, Digest: Digest(b)}
	for i, it := range doc.Checks {
		line := 0
		if i < len(items) {
			line = items[i].Line
		}
		c, ok := table[it.Name]
		if !ok {
			reason := fmt.Sprintf("unknown check name (want one of %s)", strings.Join(CheckNames(), ", "))
			if it.Name == "" {
				reason = "name is required"
			}
			return nil, &PolicyError{Line: line, Check: it.Name, Reason: reason}
		}
		var kinds []registry.Kind
		for _, ks := range it.Kinds {
			k, err := registry.ParseKind(ks)
			if err != nil {
				return nil, &PolicyError{Line: line, Check: it.Name, Reason: registry.AsError(err).Message}
			}
			kinds = append(kinds, k)
		}
		for _, prev := range p.Checks {
			if prev.Check.Name() == it.Name && kindsOverlap(prev.Kinds, kinds) {
				return nil, &PolicyError{Line: line, Check: it.Name, Reason: fmt.Sprintf("already listed at line %d for an overlapping set of kinds", prev.Line)}
			}
		}
		params := &it.Params
		if params.Kind == 0 { // absent: behave like an empty mapping
			params = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
		}
		chk, err := c.build(params)
		if err != nil {
			var pe *PolicyError
			if errors.As(err, &pe) {
				if pe.Line == 0 {
					pe.Line = params.Line
				}
				pe.Check = it.Name
				return nil, pe
			}
			return nil, yamlPolicyError(err, it.Name)
		}
		p.Checks = append(p.Checks, PolicyCheck{
			Check:    chk,
			Family:   c.family,
			Kinds:    kinds,
			Required: it.Required == nil || *it.Required,
			Line:     line,
		})
	}
	return p, nil
}

// Digest returns "sha256:<hex>" of policy bytes, the identity a gate run
// records.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

//go:embed policies/*.yaml
var defaultPolicies embed.FS

// DefaultPolicyBytes returns the embedded default policy text for env
// ("staging" or "prod"), so operators can print and adapt it.
func DefaultPolicyBytes(env string) ([]byte, error) {
	b, err := defaultPolicies.ReadFile("policies/" + env + ".yaml")
	if err != nil || strings.ContainsAny(env, "/.") {
		return nil, fmt.Errorf("gates: no default policy for environment %q (defaults exist for staging and prod)", env)
	}
	return b, nil
}

// DefaultPolicy loads the embedded default policy for env.
func DefaultPolicy(env string) (*Policy, error) {
	b, err := DefaultPolicyBytes(env)
	if err != nil {
		return nil, err
	}
	return LoadPolicy(b)
}

func kindsOverlap(a, b []registry.Kind) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, k := range a {
		if slices.Contains(b, k) {
			return true
		}
	}
	return false
}

// checkNodes returns the sequence items under the top-level "checks" key.
func checkNodes(body *yaml.Node) []*yaml.Node {
	if body.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(body.Content); i += 2 {
		if body.Content[i].Value == "checks" && body.Content[i+1].Kind == yaml.SequenceNode {
			return body.Content[i+1].Content
		}
	}
	return nil
}

// yamlPolicyError turns a yaml.v3 error ("yaml: line 7: ...") or a
// lineError into a *PolicyError with the line split out.
func yamlPolicyError(err error, check string) *PolicyError {
	var le *lineError
	if errors.As(err, &le) {
		return &PolicyError{Line: le.line, Check: check, Reason: le.msg}
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		if i := strings.Index(msg, ":"); i >= 0 {
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	return &PolicyError{Line: line, Check: check, Reason: msg}
}
