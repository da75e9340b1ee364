package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/registry"
)

// verifyStep is one check of `verify`, reported whether it passed or not.
// reportSteps prints verification steps (a table, or JSON with extra
// fields merged in) and reports whether every step passed.
func (c *cli) reportSteps(steps []verifyStep, width int, extra map[string]any) bool {
	failed := 0
	for _, s := range steps {
		if !s.OK {
			failed++
		}
	}
	if c.json() {
		out := map[string]any{"verified": failed == 0, "steps": steps}
		for k, v := range extra {
			out[k] = v
		}
		_ = c.printJSON(out)
		return failed == 0
	}
	for _, s := range steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(c.stdout, "%s  %-*s %s\n", mark, width, s.Check, s.Detail)
	}
	return failed == 0
}

type verifyStep struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func (c *cli) verifyCommand() *cobra.Command {
	var env, keyFile string
	cmd := &cobra.Command{
		Use:   "verify NAME@VERSION --env ENV [--key FILE]",
		Short: "Verify a version: manifest digest, the environment's signature, then every file's digest",
		Long: "verify checks the manifest bytes against the version's digest, the environment's signature over them " +
			"(with --key, a cosign public key you hold; otherwise the key the server publishes), and then downloads " +
			"every file and checks its size and sha256 against the manifest.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, cl, err := c.refClient(args[0])
			if err != nil {
				return err
			}
			steps, err := verifyVersion(cmd, cl, env, name, version, keyFile)
			if err != nil {
				return err
			}
			if !c.reportSteps(steps, 28, nil) {
				return errors.New("verification failed")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	cmd.Flags().StringVar(&keyFile, "key", "", "cosign public key of the environment (default: fetched from the server)")
	_ = cmd.MarkFlagRequired("env")
	c.addClientFlags(cmd, true)
	return cmd
}

func verifyVersion(cmd *cobra.Command, cl *client.Client, env, name, version, keyFile string) ([]verifyStep, error) {
	ctx := cmd.Context()
	rec, err := cl.GetVersion(ctx, env, name, version)
	if err != nil {
		return nil, err
	}
	manifest, err := cl.Manifest(ctx, env, rec.Name, rec.Version)
	if err != nil {
		return nil, err
	}
	var steps []verifyStep
	got := registry.DigestOf(manifest)
	steps = append(steps, verifyStep{"manifest digest", got == rec.ManifestDigest, got.String()})

	pem, source := []byte(nil), ""
	if keyFile != "" {
		if pem, err = os.ReadFile(keyFile); err != nil {
			return nil, err
		}
		source = keyFile
	} else {
		if pem, _, err = cl.PublicKey(ctx, env); err != nil {
			return nil, err
		}
		source = "server's " + env + " key (pass --key for an independent check)"
	}
	ring, err := signing.NewKeyring(pem)
	if err != nil {
		return nil, err
	}
	sigStep := verifyStep{Check: "environment signature", Detail: "no signature verifies with the " + source}
	for _, s := range rec.Signatures {
		if s.Role != registry.SignedByEnvironment || s.Subject != registry.SubjectManifest {
			continue
		}
		if keyID, err := ring.Identify(manifest, s.Signature); err == nil {
			sigStep = verifyStep{Check: "environment signature", OK: true, Detail: "signed by " + keyID + " (" + source + ")"}
			break
		}
	}
	steps = append(steps, sigStep)

	_, files, err := registry.ParseManifest(manifest)
	if err != nil {
		return append(steps, verifyStep{"manifest format", false, err.Error()}), nil
	}
	for _, f := range files {
		steps = append(steps, verifyFile(cmd, cl, env, rec, f))
	}
	return steps, nil
}

func verifyFile(cmd *cobra.Command, cl *client.Client, env string, rec registry.VersionRecord, f registry.File) verifyStep {
	step := verifyStep{Check: "file " + f.Path}
	body, err := cl.OpenFile(cmd.Context(), env, rec.Name, rec.Version, f.Path)
	if err != nil {
		step.Detail = err.Error()
		return step
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		step.Detail = "download failed: " + err.Error()
		return step
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	step.OK = n == f.Size && got == f.Digest.String()
	step.Detail = fmt.Sprintf("%d bytes, %s", n, got)
	if !step.OK {
		step.Detail += fmt.Sprintf(" (manifest says %d bytes, %s)", f.Size, f.Digest)
	}
	return step
}
