package ci

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type actionFile struct {
	Inputs map[string]struct {
		Required bool    `yaml:"required"`
		Default  *string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Value string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID   string            `yaml:"id"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

type workflow struct {
	On          map[string]any    `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Jobs        map[string]struct {
		Environment any `yaml:"environment"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var pinned = regexp.MustCompile(`^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$`)

const thisAction = "stagegate/stagegate"

func TestActionDefinition(t *testing.T) {
	var a actionFile
	loadYAML(t, "../action.yml", &a)
	if a.Runs.Using != "composite" {
		t.Fatalf("runs.using = %q, want composite", a.Runs.Using)
	}
	for _, in := range []string{"command", "name", "version", "kind", "paths", "evidence", "promote-to", "url", "token", "oidc-audience"} {
		if _, ok := a.Inputs[in]; !ok {
			t.Errorf("input %q is missing", in)
		}
	}
	var outs []string
	for name, o := range a.Outputs {
		outs = append(outs, name)
		if o.Value != "${{ steps.run.outputs."+name+" }}" {
			t.Errorf("output %s = %q: want the run step's output of the same name", name, o.Value)
		}
	}
	slices.Sort(outs)
	if want := []string{"digest", "gate-result", "gate-run", "release", "version"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
	// Every step's action is pinned to a commit; the run step hands every
	// input to the script as a variable (never spliced into shell text).
	script, err := os.ReadFile("action.sh")
	if err != nil {
		t.Fatal(err)
	}
	var run bool
	for _, s := range a.Runs.Steps {
		if s.Uses != "" && !pinned.MatchString(strings.Fields(s.Uses)[0]) {
			t.Errorf("step uses %q: pin it to a full commit SHA", s.Uses)
		}
		if strings.Contains(s.Run, "${{ inputs.") {
			t.Errorf("a run script splices an input into shell: %q", s.Run)
		}
		if s.ID != "run" {
			continue
		}
		run = true
		for in := range a.Inputs {
			v := "INPUT_" + strings.ToUpper(strings.ReplaceAll(in, "-", "_"))
			if s.Env[v] != "${{ inputs."+in+" }}" {
				t.Errorf("input %s does not reach the script as $%s", in, v)
			}
			if !strings.Contains(string(script), v) {
				t.Errorf("ci/action.sh ignores input %s ($%s)", in, v)
			}
		}
	}
	if !run {
		t.Fatal("no step with id run")
	}
	for _, m := range regexp.MustCompile(`INPUT_[A-Z0-9_]+`).FindAllString(string(script), -1) {
		in := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(m, "INPUT_"), "_", "-"))
		if _, ok := a.Inputs[in]; !ok {
			t.Errorf("ci/action.sh reads $%s, but action.yml declares no input %q", m, in)
		}
	}
}

func TestExampleWorkflows(t *testing.T) {
	var a actionFile
	loadYAML(t, "../action.yml", &a)
	paths, err := filepath.Glob("examples/*.yml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			var w workflow
			loadYAML(t, p, &w)
			if w.Permissions["id-token"] != "write" {
				t.Error("the workflow does not grant id-token: write, so OIDC cannot work")
			}
			uses := 0
			for jobName, job := range w.Jobs {
				for _, s := range job.Steps {
					if s.Uses == "" {
						continue
					}
					if !strings.HasPrefix(s.Uses, thisAction+"@") {
						if !pinned.MatchString(s.Uses) {
							t.Errorf("job %s: %q is not pinned to a commit SHA", jobName, s.Uses)
						}
						continue
					}
					uses++
					for k := range s.With {
						if _, ok := a.Inputs[k]; !ok {
							t.Errorf("job %s passes input %q, which action.yml does not declare", jobName, k)
						}
					}
					for k, in := range a.Inputs {
						if _, ok := s.With[k]; in.Required && !ok {
							t.Errorf("job %s omits required input %q", jobName, k)
						}
					}
					if cmd, ok := s.With["command"]; ok && !slices.Contains([]string{"publish", "promote", "approve"}, cmd) {
						t.Errorf("job %s: command %q", jobName, cmd)
					}
					if s.With["token"] != "" || s.With["oidc-audience"] == "" {
						t.Errorf("job %s: examples authenticate with OIDC, not a stored token", jobName)
					}
				}
			}
			if uses == 0 {
				t.Fatal("the example does not use the action")
			}
		})
	}
	var pub, prod workflow
	loadYAML(t, "examples/publish.yml", &pub)
	loadYAML(t, "examples/promote-prod.yml", &prod)
	push, _ := pub.On["push"].(map[string]any)
	if branches, _ := push["branches"].([]any); len(branches) != 1 || branches[0] != "main" {
		t.Errorf("publish.yml runs on %v, want push to main", pub.On)
	}
	if _, ok := prod.On["workflow_dispatch"]; !ok {
		t.Error("promote-prod.yml is not a workflow_dispatch workflow")
	}
	envs := 0
	for _, j := range prod.Jobs {
		if j.Environment != nil {
			envs++
		}
	}
	if envs == 0 {
		t.Error("promote-prod.yml uses no GitHub Environment (required reviewers)")
	}
}
