package gates

import (
	"context"
	"fmt"
	"strings"
)

// RollbackPolicyVersion names the fixed gate set of rollbacks; it is part
// of every rollback policy digest, so a change of the set shows in the gate
// runs.
const RollbackPolicyVersion = "stagegate rollback gates v1"

// RollbackPolicy is the short, fixed gate set a rollback in environment env
// runs before an earlier release becomes current again. It is built in
// code, not loaded from a file: a rollback is the way out of a bad release,
// so it checks only that the bytes and the signature are still the ones
// released, and respects the freeze windows of env's own policy.
//
//   - digest-integrity: every file, evidence document, the config blob and
//     the manifest still hash to their digests in env's bucket;
//   - environment-signature: env's signature over the manifest verifies
//     with env's current key or one of the keys it rotated from;
//   - freeze-windows: each freeze-windows entry of envPolicy (nil: none),
//     as configured there. forced turns them advisory: reported, never
//     blocking — for an admin who overrides a freeze, which the report then
//     records.
//
// The policy digest covers this set, envPolicy's digest and whether it was
// forced, so a gate run names exactly what decided.
func RollbackPolicy(env string, envPolicy *Policy, forced bool) *Policy {
	p := &Policy{Environment: env, Checks: []PolicyCheck{
		{Check: digestIntegrity{}, Family: FamilySecurity, Required: true},
		{Check: environmentSignature{env: env}, Family: FamilySecurity, Required: true},
	}}
	var text strings.Builder
	fmt.Fprintf(&text, "%s\nenvironment: %s\nchecks: digest-integrity, environment-signature, freeze-windows\n", RollbackPolicyVersion, env)
	if envPolicy != nil {
		fmt.Fprintf(&text, "freeze windows from: %s\n", envPolicy.Digest)
		for _, pc := range envPolicy.Checks {
			if pc.Check.Name() != (freezeWindows{}).Name() {
				continue
			}
			pc.Required = pc.Required && !forced
			p.Checks = append(p.Checks, pc)
		}
	}
	fmt.Fprintf(&text, "forced: %t\n", forced)
	p.Digest = Digest([]byte(text.String()))
	return p
}

// environmentSignature requires the environment's own signature over the
// manifest to verify. The service verifies (it holds the keys and the
// bucket) and records the outcome in Subject.EnvironmentSignature; the
// check judges it, as signature does for CI signatures. It is not a policy
// check name: only RollbackPolicy uses it, since a promotion signs after
// its gates.
type environmentSignature struct{ env string }

func (environmentSignature) Name() string { return "environment-signature" }

func (c environmentSignature) Run(_ context.Context, s *Subject) Result {
	sig := s.EnvironmentSignature
	d := SignatureDetails{Status: sig.Status, KeyID: sig.KeyID, Detail: truncate(sig.Detail, 300)}
	switch sig.Status {
	case SignatureTrusted:
		return pass(d, "the manifest is signed by %s's key %s", c.env, sig.KeyID)
	case SignatureUntrusted:
		return fail(d, "%s's signature over the manifest does not verify with its current or rotated keys: %s", c.env, d.Detail)
	case SignatureAbsent:
		return fail(d, "no signature by %s's keys over the manifest: %s", c.env, d.Detail)
	case SignatureError:
		return errored(d, "the signature could not be checked: %s", d.Detail)
	case SignatureUnconfigured:
		return errored(d, "the signature was not verified")
	default:
		return errored(d, "unknown signature status %q", sig.Status)
	}
}
