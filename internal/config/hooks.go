package config

import (
	"fmt"
	"regexp"
)

// Hooks configures the webhooks an environment accepts. Each is off until
// its secret is set.
type Hooks struct {
	// AlertmanagerSecretEnv names the variable holding the secret that
	// Alertmanager sends as a bearer token to
	// POST /v1/environments/<env>/hooks/alertmanager (the recommended form:
	// the secret stays out of the file).
	AlertmanagerSecretEnv string `yaml:"alertmanager_secret_env"`
	// AlertmanagerSecret is the secret itself, for trials.
	AlertmanagerSecret string `yaml:"alertmanager_secret"`
	// alertmanagerFromEnv is the value of AlertmanagerSecretEnv, resolved
	// by ApplyEnv.
	alertmanagerFromEnv string
}

// minHookSecret is the shortest hook secret accepted: a secret is all that
// stands between the internet and an unattended rollback.
const minHookSecret = 16

// AlertmanagerToken is the secret the Alertmanager hook accepts, "" when
// the hook is off.
func (h Hooks) AlertmanagerToken() string {
	if h.AlertmanagerSecretEnv != "" {
		return h.alertmanagerFromEnv
	}
	return h.AlertmanagerSecret
}

// resolveHooks reads each environment's hook secret variables.
func (c *Config) resolveHooks(getenv func(string) string) {
	for i := range c.Environments {
		h := &c.Environments[i].Hooks
		if h.AlertmanagerSecretEnv != "" {
			h.alertmanagerFromEnv = getenv(h.AlertmanagerSecretEnv)
		}
	}
}

var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validateHooks() []error {
	var errs []error
	for _, e := range c.Environments {
		h := e.Hooks
		switch {
		case h.AlertmanagerSecretEnv != "" && h.AlertmanagerSecret != "":
			errs = append(errs, fmt.Errorf("environment %s: set hooks.alertmanager_secret_env or hooks.alertmanager_secret, not both", e.Name))
		case h.AlertmanagerSecretEnv != "" && !variableName.MatchString(h.AlertmanagerSecretEnv):
			errs = append(errs, fmt.Errorf("environment %s: hooks.alertmanager_secret_env %q is not a variable name", e.Name, h.AlertmanagerSecretEnv))
		case h.AlertmanagerSecretEnv != "" && h.alertmanagerFromEnv == "":
			errs = append(errs, fmt.Errorf("environment %s: hooks.alertmanager_secret_env names $%s, which is empty or unset", e.Name, h.AlertmanagerSecretEnv))
		case h.AlertmanagerToken() != "" && len(h.AlertmanagerToken()) < minHookSecret:
			errs = append(errs, fmt.Errorf("environment %s: the alertmanager hook secret is shorter than %d characters", e.Name, minHookSecret))
		}
	}
	return errs
}
