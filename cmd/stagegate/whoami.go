package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stagegate/stagegate/client"
)

func (c *cli) whoamiCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the environment and role of the configured API key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			w, err := cl.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(w)
			}
			fmt.Fprintf(c.stdout, "%s (%s) in %s, key %s\n", w.Actor, w.Role, w.Environment, w.CredentialID)
			return nil
		},
	}
	c.addClientFlags(cmd, true)
	return cmd
}

// credentialEnvironment is the environment the API key is bound to: the
// default --env of verbs that act in one environment, since a key can act
// in no other.
func (c *cli) credentialEnvironment(cmd *cobra.Command, cl *client.Client) (string, error) {
	w, err := cl.Whoami(cmd.Context())
	if err != nil {
		return "", err
	}
	return w.Environment, nil
}
