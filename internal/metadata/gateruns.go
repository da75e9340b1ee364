package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

const gateRunColumns = `id, environment, source, name, version, manifest_digest, policy_digest,
	passed, dry_run, actor, started_at, duration_ms, report`

// RecordGateRun stores run, a gate run whose target is e's environment.
// run.Environment must be e's environment and run.Report empty or valid JSON
// (an Internal error otherwise). Ids are unique across environments: an
// id that is already stored is an Exists error with code
// registry.CodeGateRunExists.Name, and nothing is written.
func (e *Env) RecordGateRun(ctx context.Context, run registry.GateRun) error {
	if run.Environment != e.env {
		return internalf("record gate run: run for environment %q through handle for %q", run.Environment, e.env)
	}
	if run.ID == "" {
		return internalf("record gate run: id is required")
	}
	report := "null"
	if len(run.Report) > 0 {
		if !json.Valid(run.Report) {
			return internalf("record gate run: report is not valid JSON")
		}
		report = string(run.Report)
	}
	res, err := e.s.db.ExecContext(ctx, `INSERT INTO gate_runs (`+gateRunColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (id) DO NOTHING`,
		run.ID, run.Environment, run.Source, run.Name, run.Version, optionalHash(run.ManifestDigest),
		run.PolicyDigest, run.Passed, run.DryRun, run.Actor, formatTime(run.StartedAt), run.DurationMS, report)
	if err != nil {
		return dbError("record gate run", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError("record gate run", err)
	} else if n == 0 {
		return registry.CodeGateRunExists.Errorf("a gate run with id %q already exists", run.ID)
	}
	return nil
}

// GetGateRun returns gate run id of e's environment, or a NotFound error
// (code not_found) when there is none, even if another environment has it.
// A stored "null" report comes back as a nil Report.
func (e *Env) GetGateRun(ctx context.Context, id string) (registry.GateRun, error) {
	run, err := scanGateRun(e.s.rdb.QueryRowContext(ctx, `SELECT `+gateRunColumns+` FROM gate_runs
		WHERE environment = $1 AND id = $2`, e.env, id))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.GateRun{}, registry.CodeNotFound.Errorf("no gate run %q in %s", id, e.env)
	}
	if err != nil {
		return registry.GateRun{}, dbError("get gate run", err)
	}
	return run, nil
}

func scanGateRun(sc scanner) (registry.GateRun, error) {
	var (
		r                         registry.GateRun
		manifest, started, report string
	)
	if err := sc.Scan(&r.ID, &r.Environment, &r.Source, &r.Name, &r.Version, &manifest, &r.PolicyDigest,
		&r.Passed, &r.DryRun, &r.Actor, &started, &r.DurationMS, &report); err != nil {
		return registry.GateRun{}, err
	}
	var err error
	if manifest != "" { // stored by optionalHash
		if r.ManifestDigest, err = v1.NewHash(manifest); err != nil {
			return registry.GateRun{}, err
		}
	}
	if r.StartedAt, err = parseTime(started); err != nil {
		return registry.GateRun{}, err
	}
	if report != "null" {
		r.Report = json.RawMessage(report)
	}
	return r, nil
}

// optionalHash stores an unset digest as "".
func optionalHash(h v1.Hash) string {
	if h == (v1.Hash{}) {
		return ""
	}
	return h.String()
}
