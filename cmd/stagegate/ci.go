package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/ci"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/registry"
)

// ciFlags are the switches every `ci` step shares.
type ciFlags struct {
	quiet bool
}

func (c *cli) ciCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Pipeline steps with CI integration: publish (push, evidence, promote) in one step, promote, approve",
		Long: "The ci verbs are for pipelines. They read every flag from STAGEGATE_* variables too, never prompt, retry " +
			"transient failures, and inside GitHub Actions (GITHUB_ACTIONS=true) write the step outputs (digest, version, " +
			"release, gate-result, gate-run) to $GITHUB_OUTPUT, a table of gate results to $GITHUB_STEP_SUMMARY and an " +
			"::error or ::warning annotation for each failed check. With --oidc-audience they fetch the job's OIDC token " +
			"instead of using an API key. Exit codes: 0 ok, 1 error, 2 usage, 3 a gate refused.",
	}
	cmd.AddCommand(c.ciPublishCommand(), c.ciPromoteCommand(), c.ciApproveCommand())
	return cmd
}

func (c *cli) addCIFlags(cmd *cobra.Command, f *ciFlags) {
	c.addClientFlags(cmd, true)
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress output")
}

// ciClient builds a client for a credential: an OIDC audience (the token
// is fetched from the Actions job, and again before it expires) or an API
// key. The audience wins when both are set: it was asked for explicitly,
// while an API key may linger in the environment.
func (c *cli) ciClient(token, audience, what string) (*client.Client, error) {
	if c.output != "text" && c.output != "json" && c.output != "" {
		return nil, usageError{fmt.Errorf("--output must be text or json, not %q", c.output)}
	}
	u := c.url
	if u == "" {
		u = c.getenv("STAGEGATE_URL")
	}
	if u == "" {
		u = "http://127.0.0.1:8080"
	}
	switch {
	case audience != "":
		ts, err := client.NewActionsTokenSource(c.getenv, audience)
		if err != nil {
			return nil, usageError{err}
		}
		return client.New(u, "", nil).WithTokenSource(ts).WithRetry(c.retryPolicy()), nil
	case token != "":
		return client.New(u, token, nil).WithRetry(c.retryPolicy()), nil
	}
	return nil, usageError{fmt.Errorf("no credential for %s: set --oidc-audience (GitHub Actions OIDC) or an API key (--token, $STAGEGATE_TOKEN)", what)}
}

func (c *cli) mainToken() string {
	if c.token != "" {
		return c.token
	}
	return c.getenv("STAGEGATE_TOKEN")
}

// evidenceFile is one --evidence TYPE=FILE, read before anything is sent.
type evidenceFile struct {
	typ, file string
	data      []byte
}

func readEvidenceFlags(pairs []string) ([]evidenceFile, error) {
	var out []evidenceFile
	for _, p := range pairs {
		typ, file, ok := strings.Cut(p, "=")
		if !ok || typ == "" || file == "" {
			return nil, usageError{fmt.Errorf("--evidence wants TYPE=FILE (junit, metrics or provenance), got %q", p)}
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		out = append(out, evidenceFile{typ: typ, file: file, data: data})
	}
	return out, nil
}

func (c *cli) ciPublishCommand() *cobra.Command {
	var f ciFlags
	var kind, env, commit, promoteTo, promoteToken, promoteAudience, reason, sums string
	var labels, evidence []string
	var noProvenance, dryRun bool
	cmd := &cobra.Command{
		Use:   "publish NAME@VERSION --kind KIND PATH... [--evidence TYPE=FILE]... [--promote-to ENV]",
		Short: "Push a version, attach its evidence and, optionally, promote it: the common pipeline in one step",
		Long: "publish pushes PATH... as NAME@VERSION into the first environment, attaches each --evidence document and, " +
			"inside CI, provenance evidence read from the job (repository, ref, commit, workflow, run), then with " +
			"--promote-to runs that environment's gates. The promotion needs a credential of the target: " +
			"--promote-oidc-audience (a second OIDC token, whose audience the server maps to the target) or " +
			"--promote-token. Every step is idempotent, so a re-run of a failed job finishes what it started. " +
			"Exit code 3 means a gate refused.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name, version, err := splitRef(args[0])
			if err != nil {
				return err
			}
			if kind == "" {
				return usageError{errors.New("--kind is required (model, schema, features, agent-config or generic)")}
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			docs, err := readEvidenceFlags(evidence)
			if err != nil {
				return err
			}
			files, err := client.CollectFiles(args[1:])
			if err != nil {
				return err
			}
			if sums != "" {
				if err := applySHA256Sums(files, sums); err != nil {
					return err
				}
			}
			prov, inCI := ci.DetectProvenance(c.getenv)
			if commit == "" && inCI {
				commit = prov.Commit
			}
			cl, err := c.ciClient(c.mainToken(), c.oidcAudience, "publishing")
			if err != nil {
				return err
			}
			var pcl *client.Client
			if promoteTo != "" {
				if promoteToken == "" && promoteAudience == "" {
					pcl = cl
				} else if pcl, err = c.ciClient(promoteToken, promoteAudience, "promoting"); err != nil {
					return err
				}
			}
			step := &ci.Step{Name: name, Version: version}
			for _, fl := range files {
				step.Files = append(step.Files, ci.LocalFile{Path: fl.Path, Disk: c.workspacePath(fl.Disk)})
			}
			err = c.publishSteps(ctx, cl, pcl, step, publishPlan{env: env, kind: kind, labels: lbls, commit: commit,
				files: files, docs: docs, quiet: f.quiet, provenance: prov, autoProvenance: inCI && !noProvenance,
				promoteTo: promoteTo, reason: reason, dryRun: dryRun})
			return c.finishStep(step, err)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "model, schema, features, agent-config or generic")
	cmd.Flags().StringVar(&env, "env", "", "environment to publish into (default: the credential's, the first)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	cmd.Flags().StringVar(&commit, "source-commit", "", "source commit (default in CI: the job's commit)")
	cmd.Flags().StringArrayVar(&evidence, "evidence", nil, "evidence TYPE=FILE to attach, e.g. junit=reports/junit.xml (repeatable)")
	cmd.Flags().BoolVar(&noProvenance, "no-provenance", false, "do not attach provenance evidence read from the CI job")
	cmd.Flags().StringVar(&promoteTo, "promote-to", "", "promote into this environment after publishing")
	cmd.Flags().StringVar(&promoteToken, "promote-token", "", "API key of the promotion's target (promoter role)")
	cmd.Flags().StringVar(&promoteAudience, "promote-oidc-audience", "", "OIDC audience of the token for the promotion's target")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the release; default in CI: the workflow run)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run the target's gates without promoting")
	cmd.Flags().StringVar(&sums, "sha256sums", "",
		"FILE in `sha256sum` format, e.g. written by the build: files it lists are sent without hashing them first (the server still verifies every byte)")
	c.addCIFlags(cmd, &f)
	return cmd
}

type publishPlan struct {
	env, kind, commit string
	labels            map[string]string
	files             []client.LocalFile
	docs              []evidenceFile
	quiet             bool
	provenance        gates.Provenance
	autoProvenance    bool
	promoteTo, reason string
	dryRun            bool
}

// publishSteps pushes, attaches evidence and promotes, filling step as it
// goes so that a failure still reports what was done.
func (c *cli) publishSteps(ctx context.Context, cl, pcl *client.Client, step *ci.Step, p publishPlan) error {
	env := p.env
	if env == "" {
		w, err := cl.Whoami(ctx)
		if err != nil {
			return err
		}
		env = w.Environment
	}
	opts := client.PushOptions{Kind: p.kind, Labels: p.labels, SourceCommit: p.commit, Transfer: client.NewProgress(c.stderr, p.quiet)}
	if !p.quiet {
		opts.Progress = func(f client.LocalFile, uploaded bool) {
			state := "exists"
			if uploaded {
				state = "uploaded"
			}
			fmt.Fprintf(c.stderr, "%-8s %s (%d bytes, %s)\n", state, f.Path, f.Size, f.Digest)
		}
	}
	res, err := cl.Push(ctx, env, step.Name, step.Version, p.files, opts)
	if err != nil {
		return err
	}
	step.Environment, step.Version, step.Published = env, res.Version.Version, res.Created
	step.Digest = res.Version.ManifestDigest.String()

	gaveProvenance := false
	for _, d := range p.docs {
		gaveProvenance = gaveProvenance || d.typ == registry.EvidenceProvenance
		doc, created, err := cl.AddEvidence(ctx, env, step.Name, step.Version, d.typ, d.data)
		if err != nil {
			return fmt.Errorf("attaching %s evidence %s: %w", d.typ, d.file, err)
		}
		step.Evidence = append(step.Evidence, ci.Evidence{Type: doc.Type, Digest: doc.Digest.String(), Created: created})
	}
	if p.autoProvenance && !gaveProvenance {
		data, err := ci.ProvenanceDocument(p.provenance)
		if err != nil {
			return err
		}
		doc, created, err := cl.AddEvidence(ctx, env, step.Name, step.Version, registry.EvidenceProvenance, data)
		if err != nil {
			return fmt.Errorf("attaching provenance evidence: %w", err)
		}
		step.Evidence = append(step.Evidence, ci.Evidence{Type: doc.Type, Digest: doc.Digest.String(), Created: created, Automatic: true})
	}
	if p.promoteTo == "" {
		return nil
	}
	return c.promoteStep(ctx, pcl, step, p.promoteTo, c.defaultReason(p.reason), p.dryRun)
}

// defaultReason names the workflow run, so a release can be traced to it.
func (c *cli) defaultReason(reason string) string {
	if reason != "" {
		return reason
	}
	if c.getenv("GITHUB_ACTIONS") == "true" && c.getenv("GITHUB_RUN_ID") != "" {
		return fmt.Sprintf("%s/%s/actions/runs/%s (attempt %s)", strings.TrimRight(c.getenv("GITHUB_SERVER_URL"), "/"),
			c.getenv("GITHUB_REPOSITORY"), c.getenv("GITHUB_RUN_ID"), c.getenv("GITHUB_RUN_ATTEMPT"))
	}
	return ""
}

// promoteStep promotes step's version into target and records the outcome;
// a refusal is recorded, then returned as gateRefused.
func (c *cli) promoteStep(ctx context.Context, cl *client.Client, step *ci.Step, target, reason string, dryRun bool) error {
	res, err := cl.Promote(ctx, target, client.PromoteRequest{Name: step.Name, Version: step.Version, Reason: reason, DryRun: dryRun})
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Code == registry.CodeGateFailed.Name {
		var gf client.GateFailure
		if json.Unmarshal(ae.Details, &gf) != nil {
			return err
		}
		step.Promotion = &ci.Promotion{Target: target, Outcome: ci.Refused, GateRunID: gf.GateRunID, Report: &gf.Report}
		return gateRefused{ae}
	}
	if err != nil {
		if errors.As(err, &ae) && ae.Code == registry.CodeWrongEnvironment.Name {
			return fmt.Errorf("%w (the promotion needs a credential of %s: --promote-oidc-audience or --promote-token)", err, target)
		}
		return err
	}
	p := &ci.Promotion{Target: target, Outcome: ci.AlreadyPromoted, Report: res.Report}
	switch {
	case res.DryRun:
		p.Outcome = ci.DryRun
	case res.Created:
		p.Outcome = ci.Promoted
	}
	if res.GateRun != nil {
		p.GateRunID = res.GateRun.ID
	}
	if r := res.Release; r != nil {
		p.ReleaseID = r.Number
		if p.ReleaseID == 0 {
			p.ReleaseID = r.ID
		}
		if p.GateRunID == "" {
			p.GateRunID = r.GateRunID
		}
		step.Version = r.Version
	}
	step.Promotion = p
	return nil
}

func (c *cli) ciPromoteCommand() *cobra.Command {
	var f ciFlags
	var to, reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "promote NAME@VERSION --to ENV [--reason TEXT] [--dry-run]",
		Short: "Promote a version through the target's gates, reporting to the CI (exit 3 when refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := splitRef(args[0])
			if err != nil {
				return err
			}
			if to == "" {
				return usageError{errors.New("--to is required")}
			}
			cl, err := c.ciClient(c.mainToken(), c.oidcAudience, "promoting")
			if err != nil {
				return err
			}
			step := &ci.Step{Name: name, Version: version}
			err = c.promoteStep(cmd.Context(), cl, step, to, c.defaultReason(reason), dryRun)
			if err == nil || step.Promotion != nil {
				if rec, gerr := cl.GetVersion(cmd.Context(), to, name, step.Version); gerr == nil {
					step.Digest = rec.ManifestDigest.String()
				}
			}
			return c.finishStep(step, err)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "target environment")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the release; default in CI: the workflow run)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run the gates without promoting")
	c.addCIFlags(cmd, &f)
	return cmd
}

func (c *cli) ciApproveCommand() *cobra.Command {
	var f ciFlags
	var env, comment string
	cmd := &cobra.Command{
		Use:   "approve NAME@VERSION --env ENV [--comment TEXT]",
		Short: "Approve promoting a version into ENV (an approver credential of ENV; in Actions, e.g. a job behind a GitHub Environment with required reviewers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := splitRef(args[0])
			if err != nil {
				return err
			}
			if env == "" {
				return usageError{errors.New("--env is required")}
			}
			cl, err := c.ciClient(c.mainToken(), c.oidcAudience, "approving")
			if err != nil {
				return err
			}
			step := &ci.Step{Name: name, Version: version}
			a, err := cl.Approve(cmd.Context(), env, name, version, c.defaultReason(comment))
			if err == nil {
				step.Version, step.Digest = a.Version, a.ManifestDigest.String()
				step.Approval = &ci.Approval{Environment: a.Environment, Identity: a.Identity}
			}
			return c.finishStep(step, err)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment the version is to be promoted into")
	cmd.Flags().StringVar(&comment, "comment", "", "note recorded with the approval (default in CI: the workflow run)")
	c.addCIFlags(cmd, &f)
	return cmd
}

// finishStep reports a step: one summary on stdout (text or JSON) and,
// inside GitHub Actions, the step outputs, the job summary and the
// annotations. It returns stepErr, so the exit code says how it ended.
func (c *cli) finishStep(step *ci.Step, stepErr error) error {
	step.Retries = c.retried
	if stepErr != nil && !isGateRefusal(stepErr) {
		var ue usageError
		if errors.As(stepErr, &ue) {
			return stepErr
		}
		step.Notes = append(step.Notes, "failed: "+errorLine(stepErr))
	}
	if gh, ok := ci.DetectGitHub(c.getenv, c.stdout); ok {
		as := step.Annotations()
		if stepErr != nil && !isGateRefusal(stepErr) {
			as = append(as, ci.Annotation{Level: "error", Title: "stagegate " + step.Name + "@" + step.Version, Message: errorLine(stepErr)})
		}
		for _, err := range []error{gh.SetOutputs(step.Outputs()), gh.AddSummary(step.Markdown()), gh.Annotate(as)} {
			if err != nil {
				fmt.Fprintf(c.stderr, "stagegate: %v\n", err)
			}
		}
	}
	if c.json() {
		if stepErr != nil && !isGateRefusal(stepErr) {
			return stepErr
		}
		out := map[string]any{"step": step, "outputs": outputsMap(step.Outputs())}
		if err := c.printJSON(out); err != nil {
			return err
		}
		return stepErr
	}
	c.printStep(step)
	return stepErr
}

func isGateRefusal(err error) bool {
	var r gateRefused
	return errors.As(err, &r)
}

func errorLine(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Code + ": " + ae.Message
	}
	return err.Error()
}

func outputsMap(os []ci.Output) map[string]string {
	m := make(map[string]string, len(os))
	for _, o := range os {
		m[o.Name] = o.Value
	}
	return m
}

// printStep is the human summary of a step.
func (c *cli) printStep(step *ci.Step) {
	ref := step.Name + "@" + step.Version
	if step.Environment != "" {
		verb := "published"
		if !step.Published {
			verb = "already published (identical content)"
		}
		fmt.Fprintf(c.stdout, "%s %s in %s (manifest %s)\n", verb, ref, step.Environment, step.Digest)
	}
	for _, e := range step.Evidence {
		verb := "attached"
		if !e.Created {
			verb = "already attached"
		}
		auto := ""
		if e.Automatic {
			auto = " (from the CI job)"
		}
		fmt.Fprintf(c.stdout, "%s %s evidence %s%s\n", verb, e.Type, e.Digest, auto)
	}
	if a := step.Approval; a != nil {
		fmt.Fprintf(c.stdout, "%s approved %s for %s (manifest %s)\n", a.Identity, ref, a.Environment, step.Digest)
	}
	if p := step.Promotion; p != nil {
		if p.Report != nil {
			c.printChecks(p.Report.Results)
		}
		switch p.Outcome {
		case ci.Refused:
			fmt.Fprintf(c.stdout, "promotion of %s refused by %s's gates (gate run %s)\n", ref, p.Target, p.GateRunID)
		case ci.DryRun:
			fmt.Fprintf(c.stdout, "dry run: %s passes %s's gates (gate run %s)\n", ref, p.Target, p.GateRunID)
		case ci.Promoted:
			fmt.Fprintf(c.stdout, "promoted %s into %s: release %d (gate run %s)\n", ref, p.Target, p.ReleaseID, p.GateRunID)
		default:
			fmt.Fprintf(c.stdout, "%s was already promoted into %s: release %d\n", ref, p.Target, p.ReleaseID)
		}
	}
	for _, n := range step.Notes {
		fmt.Fprintln(c.stderr, n)
	}
	if step.Retries > 0 {
		fmt.Fprintf(c.stderr, "%d request(s) retried after transient failures\n", step.Retries)
	}
}

// workspacePath is a pushed file's path as the CI sees it: relative to
// $GITHUB_WORKSPACE when under it, so an annotation lands on the file.
func (c *cli) workspacePath(disk string) string {
	abs, err := filepath.Abs(disk)
	if err != nil {
		return disk
	}
	if ws := c.getenv("GITHUB_WORKSPACE"); ws != "" {
		if rel, err := filepath.Rel(ws, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.ToSlash(disk)
}
