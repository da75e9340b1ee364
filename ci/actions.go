package ci

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Output is one step output.
type Output struct {
	Name, Value string
}

var outputName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// WriteOutputs appends outputs to w in the multi-line delimiter form
// (`name<<DELIM`, value, `DELIM`), which holds any value: the plain
// `name=value` form would let a value with a newline set other outputs.
func WriteOutputs(w io.Writer, outputs []Output) error {
	var b strings.Builder
	for _, o := range outputs {
		if !outputName.MatchString(o.Name) {
			return fmt.Errorf("output name %q is not allowed", o.Name)
		}
		delim, err := delimiter(o.Value)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", o.Name, delim, o.Value, delim)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// delimiter is a random heredoc delimiter that value does not contain.
func delimiter(value string) (string, error) {
	for range 3 {
		var r [16]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", err
		}
		d := "ghadelimiter_" + hex.EncodeToString(r[:])
		if !strings.Contains(value, d) {
			return d, nil
		}
	}
	return "", errors.New("no delimiter found that the value does not contain")
}

// Annotation is a workflow command that GitHub shows on the run page (and,
// with File, on that file).
type Annotation struct {
	Level   string // error, warning or notice
	Title   string
	Message string
	File    string
	Line    int
}

// String is the workflow command, e.g.
// `::error file=model.pkl,title=pickle-scan failed::...`.
func (a Annotation) String() string {
	var props []string
	if a.File != "" {
		props = append(props, "file="+escapeProperty(a.File))
		if a.Line > 0 {
			props = append(props, fmt.Sprintf("line=%d", a.Line))
		}
	}
	if a.Title != "" {
		props = append(props, "title="+escapeProperty(a.Title))
	}
	cmd := "::" + a.Level
	if len(props) > 0 {
		cmd += " " + strings.Join(props, ",")
	}
	return cmd + "::" + escapeData(a.Message)
}

// escapeData and escapeProperty encode as the Actions runner decodes
// (actions/toolkit's command.ts): a newline in a reason must not end the
// command and start another one.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// GitHub is a step running in GitHub Actions (GITHUB_ACTIONS=true).
type GitHub struct {
	getenv func(string) string
	// Commands receives workflow commands (the step's stdout).
	Commands io.Writer
}

// DetectGitHub returns the Actions step this process runs in, if any.
func DetectGitHub(getenv func(string) string, commands io.Writer) (*GitHub, bool) {
	if getenv("GITHUB_ACTIONS") != "true" {
		return nil, false
	}
	return &GitHub{getenv: getenv, Commands: commands}, true
}

// SetOutputs appends outputs to $GITHUB_OUTPUT.
func (g *GitHub) SetOutputs(outputs []Output) error {
	return appendTo(g.getenv("GITHUB_OUTPUT"), "GITHUB_OUTPUT", func(w io.Writer) error { return WriteOutputs(w, outputs) })
}

// AddSummary appends Markdown to $GITHUB_STEP_SUMMARY.
func (g *GitHub) AddSummary(markdown string) error {
	return appendTo(g.getenv("GITHUB_STEP_SUMMARY"), "GITHUB_STEP_SUMMARY", func(w io.Writer) error {
		_, err := io.WriteString(w, markdown)
		return err
	})
}

// Annotate writes workflow commands for annotations.
func (g *GitHub) Annotate(as []Annotation) error {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	_, err := io.WriteString(g.Commands, b.String())
	return err
}

// Workspace is $GITHUB_WORKSPACE, where the job's checkout is.
func (g *GitHub) Workspace() string { return g.getenv("GITHUB_WORKSPACE") }

func appendTo(path, name string, write func(io.Writer) error) error {
	if path == "" {
		return fmt.Errorf("$%s is not set: outputs of this step are lost", name)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("$%s: %w", name, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("$%s: %w", name, err)
	}
	return f.Close()
}
