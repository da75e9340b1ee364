package gates

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/stagegate/stagegate/registry"
)

// Run is the stored record of this report: a gate run of rec for a change
// into target whose inputs came from source (the target itself for a
// rollback), with a fresh id. Promotions and rollbacks record it before
// they act, so every decision can be looked up and explained later.
func (r Report) Run(target, source string, rec registry.VersionRecord, actor string, dryRun bool) (registry.GateRun, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return registry.GateRun{}, err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return registry.GateRun{}, err
	}
	return registry.GateRun{
		ID: "gr_" + hex.EncodeToString(b[:]), Environment: target, Source: source, Name: rec.Name, Version: rec.Version,
		ManifestDigest: rec.ManifestDigest, PolicyDigest: r.PolicyDigest, Passed: r.Passed, DryRun: dryRun,
		Actor: actor, StartedAt: r.StartedAt.UTC(), DurationMS: r.Duration.Milliseconds(), Report: raw,
	}, nil
}
