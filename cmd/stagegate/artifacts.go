package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/registry"
)

// splitRef splits NAME@VERSION.
func splitRef(ref string) (name, version string, err error) {
	name, version, ok := strings.Cut(ref, "@")
	if !ok || name == "" || version == "" {
		return "", "", usageError{fmt.Errorf("want NAME@VERSION, got %q", ref)}
	}
	return name, version, nil
}

// refClient parses NAME@VERSION and builds the API client: the first steps
// of every verb that acts on one version.
func (c *cli) refClient(ref string) (name, version string, cl *client.Client, err error) {
	if name, version, err = splitRef(ref); err != nil {
		return "", "", nil, err
	}
	cl, err = c.client()
	return name, version, cl, err
}

// parseLabels parses repeated k=v flags.
func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--label wants key=value, got %q", kv)}
		}
		out[k] = v
	}
	return out, nil
}

// readSignatures reads PATH=SIGFILE pairs; PATH "manifest" names the manifest.
func readSignatures(pairs []string) ([]registry.CISignature, error) {
	var out []registry.CISignature
	for _, p := range pairs {
		subject, file, ok := strings.Cut(p, "=")
		if !ok || subject == "" || file == "" {
			return nil, usageError{fmt.Errorf("--signature wants PATH=SIGFILE, got %q", p)}
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		out = append(out, registry.CISignature{Subject: subject, Signature: strings.TrimSpace(string(data))})
	}
	return out, nil
}

func (c *cli) pushCommand() *cobra.Command {
	var kind, env, commit, sums string
	var labels, signatures []string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push NAME@VERSION PATH...",
		Short: "Publish files or directories as an immutable artifact version (into the first environment)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := splitRef(args[0])
			if err != nil {
				return err
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if env == "" {
				if env, err = c.credentialEnvironment(cmd, cl); err != nil {
					return err
				}
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
			ciSigs, err := readSignatures(signatures)
			if err != nil {
				return err
			}
			res, err := cl.Push(cmd.Context(), env, name, version, files, client.PushOptions{
				Kind: kind, Labels: lbls, SourceCommit: commit, CISignatures: ciSigs,
				Transfer: client.NewProgress(c.stderr, quiet),
				Progress: func(f client.LocalFile, uploaded bool) {
					if !c.json() {
						state := "exists"
						if uploaded {
							state = "uploaded"
						}
						fmt.Fprintf(c.stderr, "%-8s %s (%d bytes, %s)\n", state, f.Path, f.Size, f.Digest)
					}
				},
			})
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			verb := "published"
			if !res.Created {
				verb = "already published (identical content)"
			}
			fmt.Fprintf(c.stdout, "%s %s@%s in %s\nmanifest digest: %s\nCI signature: %s\n", verb, res.Version.Name, res.Version.Version,
				res.Version.Environment, res.Version.ManifestDigest, res.Version.CISignature)
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "model, schema, features, agent-config or generic")
	cmd.Flags().StringVar(&env, "env", "", "environment (default: the first, the only one that accepts publishes)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	cmd.Flags().StringVar(&commit, "source-commit", "", "source commit the artifact was built from")
	cmd.Flags().StringArrayVar(&signatures, "signature", nil,
		"CI signature PATH=SIGFILE: a `cosign sign-blob` signature of the file stored as PATH (repeatable)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no transfer progress (a bar on a terminal, else a line every ~10 s)")
	cmd.Flags().StringVar(&sums, "sha256sums", "",
		"FILE in `sha256sum` format: files it lists are sent without hashing them first (the server still verifies every byte)")
	_ = cmd.MarkFlagRequired("kind")
	c.addClientFlags(cmd, true)
	return cmd
}

// applySHA256Sums reads the checksum file at path into files.
func applySHA256Sums(files []client.LocalFile, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := client.ApplySHA256Sums(files, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (c *cli) pullCommand() *cobra.Command {
	var env, dir string
	var asJSON, withSignature, quiet bool
	cmd := &cobra.Command{
		Use:   "pull NAME@VERSION --env ENV [-o DIR] [--with-signature]",
		Short: "Download every file of a version, verifying each digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				c.output = "json"
			}
			name, version, cl, err := c.refClient(args[0])
			if err != nil {
				return err
			}
			if dir == "" {
				dir = "."
			}
			rec, err := cl.PullWithProgress(cmd.Context(), env, name, version, dir, client.NewProgress(c.stderr, quiet))
			if err != nil {
				return err
			}
			if withSignature {
				for _, f := range rec.Files {
					if f.Path == "manifest.json" || f.Path == "manifest.json.sig" {
						return fmt.Errorf("--with-signature would overwrite the artifact's own %s: pull into another directory without it", f.Path)
					}
				}
				keyID, err := cl.PullSignature(cmd.Context(), env, rec, dir)
				if err != nil {
					return err
				}
				if !c.json() {
					fmt.Fprintf(c.stderr, "wrote manifest.json and manifest.json.sig (key %s); verify with:\n  cosign verify-blob --key %s.pub --signature %s --insecure-ignore-tlog=true %s\n",
						keyID, env, filepath.Join(dir, "manifest.json.sig"), filepath.Join(dir, "manifest.json"))
				}
			}
			if c.json() {
				return c.printJSON(rec)
			}
			for _, f := range rec.Files {
				fmt.Fprintf(c.stdout, "%s  %s\n", f.Digest, f.Path)
			}
			fmt.Fprintf(c.stderr, "pulled %s@%s from %s into %s (%d files, manifest %s)\n", rec.Name, rec.Version, env, dir, len(rec.Files), rec.ManifestDigest)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment to read from")
	cmd.Flags().StringVarP(&dir, "output-dir", "o", ".", "directory to write the files into")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	cmd.Flags().BoolVar(&withSignature, "with-signature", false, "also write manifest.json and manifest.json.sig for `cosign verify-blob`")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no transfer progress")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, false)
	return cmd
}

func (c *cli) versionsCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "versions NAME --env ENV",
		Short: "List the versions of an artifact in an environment, highest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			versions, err := cl.ListVersions(cmd.Context(), env, args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"environment": env, "name": args[0], "versions": versions})
			}
			t := newTable(c.stdout, "VERSION", "KIND", "FILES", "SIZE", "DIGEST", "CREATED", "BY")
			for _, v := range versions {
				t.row(v.Version, string(v.Kind), strconv.Itoa(len(v.Files)), strconv.FormatInt(v.TotalSize(), 10),
					v.ManifestDigest.String(), v.CreatedAt.Format(time.RFC3339), v.CreatedBy)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}

func (c *cli) artifactsCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "artifacts --env ENV",
		Short: "List the artifacts of an environment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			arts, err := cl.ListArtifacts(cmd.Context(), env)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(map[string]any{"environment": env, "artifacts": arts})
			}
			t := newTable(c.stdout, "NAME", "KIND", "VERSIONS", "LAST PUBLISHED")
			for _, a := range arts {
				t.row(a.Name, string(a.Kind), strconv.Itoa(a.VersionCount), a.LastPublished.Format(time.RFC3339))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}

func (c *cli) printVersion(v registry.VersionRecord) error {
	if c.json() {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.stdout, "%s@%s (%s) in %s\nmanifest: %s\ncreated:  %s by %s\n", v.Name, v.Version, v.Kind, v.Environment,
		v.ManifestDigest, v.CreatedAt.Format(time.RFC3339), v.CreatedBy)
	for k, val := range v.Labels {
		fmt.Fprintf(c.stdout, "label:    %s=%s\n", k, val)
	}
	t := newTable(c.stdout, "PATH", "SIZE", "DIGEST")
	for _, f := range v.Files {
		t.row(f.Path, strconv.FormatInt(f.Size, 10), f.Digest.String())
	}
	return t.flush()
}

func (c *cli) showCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "show NAME@VERSION --env ENV",
		Short: "Show a version: manifest digest, files, labels, who published it and when",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, cl, err := c.refClient(args[0])
			if err != nil {
				return err
			}
			v, err := cl.GetVersion(cmd.Context(), env, name, version)
			if err != nil {
				return err
			}
			return c.printVersion(v)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}

func (c *cli) resolveCommand() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "resolve NAME CONSTRAINT --env ENV",
		Short: "Resolve a semver constraint (e.g. ^1.2) to the highest matching version",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			v, err := cl.Resolve(cmd.Context(), env, args[0], args[1])
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(v)
			}
			fmt.Fprintln(c.stdout, v.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}
