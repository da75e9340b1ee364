package gates

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"gopkg.in/yaml.v3"
)

// requiredEvidence requires evidence documents of the listed types.
type requiredEvidence struct{ types []string }

type requiredEvidenceParams struct {
	Types []string `yaml:"types"`
}

// validEvidenceType checks the syntax of an evidence type name: lowercase
// letters, digits, '.', '_' and '-', at most 63 characters.
func validEvidenceType(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || !strings.ContainsRune("._-", c)) {
			return false
		}
	}
	return true
}

func newRequiredEvidenceCheck(n *yaml.Node) (Check, error) {
	var p requiredEvidenceParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if len(p.Types) == 0 {
		return nil, errAt(n, "types: list at least one evidence type, e.g. [junit, metrics]")
	}
	for _, t := range p.Types {
		if !validEvidenceType(t) {
			return nil, errAt(n, "types: %q is not an evidence type name", truncate(t, 40))
		}
	}
	return requiredEvidence{types: p.Types}, nil
}

func (requiredEvidence) Name() string { return "required-evidence" }

// EvidenceDetails lists present and missing evidence types.
type EvidenceDetails struct {
	Present []string `json:"present"`
	Missing []string `json:"missing,omitempty"`
}

func (c requiredEvidence) Run(_ context.Context, s *Subject) Result {
	d := EvidenceDetails{Present: []string{}}
	for _, t := range c.types {
		if len(evidenceOfType(s.Evidence, t)) > 0 {
			d.Present = append(d.Present, t)
		} else {
			d.Missing = append(d.Missing, t)
		}
	}
	if len(d.Missing) > 0 {
		return fail(d, "missing evidence: %s", strings.Join(d.Missing, ", "))
	}
	return pass(d, "evidence present: %s", strings.Join(d.Present, ", "))
}

// junit requires JUnit XML evidence with no failures or errors and at
// least min_tests tests.
type junit struct {
	evidenceType string
	minTests     int
	maxBytes     int64
}

type junitParams struct {
	EvidenceType string `yaml:"evidence_type"`
	MinTests     int    `yaml:"min_tests"`
	MaxFileBytes int64  `yaml:"max_file_bytes"`
}

func newJUnitCheck(n *yaml.Node) (Check, error) {
	p := junitParams{EvidenceType: "junit", MinTests: 1, MaxFileBytes: 32 << 20}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if !validEvidenceType(p.EvidenceType) {
		return nil, errAt(n, "evidence_type: %q is not an evidence type name", truncate(p.EvidenceType, 40))
	}
	if p.MinTests < 0 {
		return nil, errAt(n, "min_tests must not be negative")
	}
	if p.MaxFileBytes <= 0 {
		return nil, errAt(n, "max_file_bytes must be positive")
	}
	return junit{evidenceType: p.EvidenceType, minTests: p.MinTests, maxBytes: p.MaxFileBytes}, nil
}

func (junit) Name() string { return "junit" }

// JUnitCounts totals one or more JUnit reports.
type JUnitCounts struct {
	Tests    int `json:"tests"`
	Failures int `json:"failures"`
	Errors   int `json:"errors"`
	Skipped  int `json:"skipped"`
}

// JUnitDetails lists totals and the first failing test cases.
type JUnitDetails struct {
	Reports  int         `json:"reports"`
	Totals   JUnitCounts `json:"totals"`
	Failing  []string    `json:"failing,omitempty"` // "suite/classname.name", at most 20
	MinTests int         `json:"minTests"`
}

func (c junit) Run(ctx context.Context, s *Subject) Result {
	d := JUnitDetails{MinTests: c.minTests}
	docs := evidenceOfType(s.Evidence, c.evidenceType)
	if len(docs) == 0 {
		return fail(d, "no %q evidence attached", c.evidenceType)
	}
	for i, e := range docs {
		b, err := readLimited(ctx, e.Open, c.maxBytes)
		var de *docError
		if errors.As(err, &de) {
			return fail(d, "%s evidence #%d: %s", c.evidenceType, i+1, de.msg)
		}
		if err != nil {
			return errored(d, "%s evidence #%d: %v", c.evidenceType, i+1, err)
		}
		rep, err := parseJUnit(b)
		if err != nil {
			return fail(d, "%s evidence #%d: %v", c.evidenceType, i+1, err)
		}
		d.Reports++
		d.Totals.Tests = addCount(d.Totals.Tests, rep.Tests)
		d.Totals.Failures = addCount(d.Totals.Failures, rep.Failures)
		d.Totals.Errors = addCount(d.Totals.Errors, rep.Errors)
		d.Totals.Skipped = addCount(d.Totals.Skipped, rep.Skipped)
		for _, f := range rep.Failing {
			if len(d.Failing) < 20 {
				d.Failing = append(d.Failing, f)
			}
		}
	}
	t := d.Totals
	switch {
	case t.Failures > 0 || t.Errors > 0:
		first := ""
		if len(d.Failing) > 0 {
			first = ", first " + d.Failing[0]
		}
		return fail(d, "%d failure(s) and %d error(s) in %d test(s)%s", t.Failures, t.Errors, t.Tests, first)
	case t.Tests < c.minTests:
		return fail(d, "%d test(s) reported, at least %d required", t.Tests, c.minTests)
	}
	return pass(d, "%d test(s): %d passed, %d skipped", t.Tests, t.Tests-t.Skipped, t.Skipped)
}

// JUnitReport is a parsed JUnit XML document.
type JUnitReport struct {
	JUnitCounts
	Failing []string
}

type junitSuites struct {
	XMLName xml.Name
	Suites  []junitSuite `xml:"testsuite"`
	junitSuite
}

type junitSuite struct {
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Cases    []junitCase  `xml:"testcase"`
	Suites   []junitSuite `xml:"testsuite"` // nested suites
}

type junitCase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Failures  []xmlElem `xml:"failure"`
	Errors    []xmlElem `xml:"error"`
	Skipped   []xmlElem `xml:"skipped"`
}

type xmlElem struct{}

// maxJUnitDepth bounds nested testsuite elements.
const maxJUnitDepth = 32

// parseJUnit reads a <testsuites> or <testsuite> document. Counts come
// from the test cases; a suite's count attributes are used when they
// report more (some tools emit attributes only), so a report cannot hide
// failures by omitting either.
func parseJUnit(b []byte) (JUnitReport, error) {
	var rep JUnitReport
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	dec.Strict = true
	var root junitSuites
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return rep, fmt.Errorf("empty JUnit document")
		}
		return rep, fmt.Errorf("not valid JUnit XML: %s", truncate(err.Error(), 160))
	}
	switch root.XMLName.Local {
	case "testsuites":
		var top JUnitCounts
		for _, s := range root.Suites {
			if err := addSuite(&rep, s, 0); err != nil {
				return rep, err
			}
		}
		// Attributes on <testsuites> are totals; honour them if larger.
		top = JUnitCounts{Tests: root.Tests, Failures: root.Failures, Errors: root.Errors, Skipped: root.Skipped}
		rep.Tests = max(rep.Tests, top.Tests)
		rep.Failures = max(rep.Failures, top.Failures)
		rep.Errors = max(rep.Errors, top.Errors)
		rep.Skipped = max(rep.Skipped, top.Skipped)
	case "testsuite":
		s := root.junitSuite
		s.Suites = root.Suites
		if err := addSuite(&rep, s, 0); err != nil {
			return rep, err
		}
	default:
		return rep, fmt.Errorf("root element <%s>: want <testsuites> or <testsuite>", truncate(root.XMLName.Local, 40))
	}
	if rep.Tests < 0 || rep.Failures < 0 || rep.Errors < 0 || rep.Skipped < 0 {
		return rep, fmt.Errorf("negative test counts")
	}
	return rep, nil
}

func addSuite(rep *JUnitReport, s junitSuite, depth int) error {
	if depth > maxJUnitDepth {
		return fmt.Errorf("testsuite nesting deeper than %d", maxJUnitDepth)
	}
	var c JUnitCounts
	for _, tc := range s.Cases {
		c.Tests++
		switch {
		case len(tc.Failures) > 0:
			c.Failures++
		case len(tc.Errors) > 0:
			c.Errors++
		case len(tc.Skipped) > 0:
			c.Skipped++
		}
		if len(tc.Failures)+len(tc.Errors) > 0 && len(rep.Failing) < 20 {
			id := tc.Name
			if tc.Classname != "" {
				id = tc.Classname + "." + tc.Name
			}
			rep.Failing = append(rep.Failing, truncate(printable(s.Name+"/"+id), 200))
		}
	}
	var nested JUnitReport
	for _, ns := range s.Suites {
		if err := addSuite(&nested, ns, depth+1); err != nil {
			return err
		}
	}
	rep.Failing = append(rep.Failing, nested.Failing...)
	if len(rep.Failing) > 20 {
		rep.Failing = rep.Failing[:20]
	}
	rep.Tests = addCount(rep.Tests, max(addCount(c.Tests, nested.Tests), s.Tests))
	rep.Failures = addCount(rep.Failures, max(addCount(c.Failures, nested.Failures), s.Failures))
	rep.Errors = addCount(rep.Errors, max(addCount(c.Errors, nested.Errors), s.Errors))
	rep.Skipped = addCount(rep.Skipped, max(addCount(c.Skipped, nested.Skipped), s.Skipped))
	return nil
}

// addCount adds non-negative test counts, saturating at math.MaxInt.
// Count attributes are whatever a report claims; a sum that wrapped around
// could bring failures back to zero and pass the gate.
func addCount(a, b int) int {
	if b > 0 && a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}
