package server

import (
	"fmt"
	"os"

	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/config"
)

// loadPolicy reads the gate policy for promotions into e. A policy that does
// not load stops start-up with its line and reason.
func loadPolicy(e config.Environment) (*gates.Policy, error) {
	var data []byte
	switch {
	case e.Policy != "":
		b, err := os.ReadFile(e.Policy)
		if err != nil {
			return nil, fmt.Errorf("environment %s: policy: %w", e.Name, err)
		}
		data = b
	default:
		b, err := gates.DefaultPolicyBytes(e.Name)
		if err != nil {
			// An environment the defaults do not know still gets the
			// checks every promotion needs.
			b = []byte("environment: " + e.Name + "\nchecks:\n  - name: promotion-order\n  - name: digest-integrity\n")
		}
		data = b
	}
	p, err := gates.LoadPolicy(data)
	if err != nil {
		return nil, fmt.Errorf("environment %s: policy %s: %w", e.Name, e.Policy, err)
	}
	if p.Environment != e.Name {
		return nil, fmt.Errorf("environment %s: policy %s is written for environment %q", e.Name, e.Policy, p.Environment)
	}
	return p, nil
}
