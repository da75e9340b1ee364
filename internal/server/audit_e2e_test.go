package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/internal/signing"
	"github.com/stagegate/stagegate/registry"
)

// rawDatabase is a second connection to a stack's metadata database, as
// anyone with database access has one, and the statements that switch off
// its append-only triggers (which the database's owner may do).
func (s *stack) rawDatabase(t *testing.T) (*sql.DB, []string) {
	t.Helper()
	driver, dsn := "sqlite", s.cfg.SQLitePath()+"?_pragma=busy_timeout(10000)"
	disable := []string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`}
	if s.cfg.Database.Driver == "postgres" {
		driver, dsn = "pgx", s.cfg.Database.DSN
		disable = []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`}
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw, disable
}

func exportEvents(t *testing.T, cl *client.Client, env string, q url.Values) []audit.Event {
	t.Helper()
	var out []audit.Event
	if err := cl.ExportAudit(context.Background(), env, q, func(ev audit.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatalf("export %s: %v", env, err)
	}
	return out
}

// TestAuditQueriesAndExport: exact name and version filters, the next
// cursor, and the JSON Lines export, over HTTP on both stacks.
func TestAuditQueriesAndExport(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		reader := s.client(s.key("dev", auth.RoleReader))
		for _, ref := range []string{"fraud-detector@1.0.0", "fraud-detector@v1.1.0", "fraud-detector-v2@1.0.0"} {
			if _, err := push(t, pub, "dev", ref, "generic", map[string][]byte{"w.bin": []byte(ref)}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := push(t, pub, "dev", "fraud-detector@1.0.0", "generic", map[string][]byte{"w.bin": []byte("other")})
		wantAPIError(t, err, http.StatusConflict, registry.CodeVersionExists.Name)

		tests := []struct {
			query   url.Values
			targets []string // newest first
		}{
			{url.Values{"name": {"fraud-detector"}, "action": {audit.ActionPublish}},
				[]string{"fraud-detector@1.0.0", "fraud-detector@1.1.0", "fraud-detector@1.0.0"}},
			{url.Values{"name": {"fraud-detector"}, "version": {"v1.0.0"}}, // canonicalised
				[]string{"fraud-detector@1.0.0", "fraud-detector@1.0.0"}},
			{url.Values{"name": {"fraud-detector"}, "outcome": {"denied"}}, []string{"fraud-detector@1.0.0"}},
			{url.Values{"version": {"1.0.0"}, "action": {audit.ActionPublish}, "outcome": {"success"}},
				[]string{"fraud-detector-v2@1.0.0", "fraud-detector@1.0.0"}},
			{url.Values{"name": {"fraud"}}, nil}, // exact, not a substring
		}
		for _, tc := range tests {
			page, err := reader.AuditPage(ctx, "dev", tc.query)
			if err != nil {
				t.Fatalf("%v: %v", tc.query, err)
			}
			var got []string
			for _, ev := range page.Events {
				got = append(got, ev.Target)
			}
			if !slices.Equal(got, tc.targets) || page.Next != "" {
				t.Errorf("audit %v = %v (next %q), want %v", tc.query, got, page.Next, tc.targets)
			}
		}
		for q, code := range map[string]string{"name=Fraud": registry.CodeInvalidName.Name, "version=latest": registry.CodeInvalidVersion.Name,
			"since=yesterday": registry.CodeInvalidRequest.Name} {
			vals, _ := url.ParseQuery(q)
			_, err := reader.AuditPage(ctx, "dev", vals)
			wantAPIError(t, err, http.StatusBadRequest, code)
			_, err = reader.OpenAuditExport(ctx, "dev", vals)
			wantAPIError(t, err, http.StatusBadRequest, code)
		}

		// The cursor walks every event once, newest first.
		all := exportEvents(t, reader, "dev", nil)
		var paged []int64
		q := url.Values{"limit": {"3"}}
		for range len(all) {
			page, err := reader.AuditPage(ctx, "dev", q)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				paged = append(paged, ev.ID)
			}
			if page.Next == "" {
				break
			}
			q.Set("before", page.Next)
		}
		want := make([]int64, len(all))
		for i, ev := range all {
			want[len(all)-1-i] = ev.ID
		}
		if !slices.Equal(paged, want) {
			t.Errorf("paged ids %v, exported (reversed) %v", paged, want)
		}

		// The export is JSON Lines, oldest first, filtered like the query.
		body, err := reader.OpenAuditExport(ctx, "dev", url.Values{"name": {"fraud-detector"}})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			t.Fatal(err)
		}
		lines := string(data)
		if n := strings.Count(lines, "\n"); n != 3 || !strings.HasPrefix(lines, `{"id":`) {
			t.Errorf("export by name: %d lines:\n%s", n, lines)
		}
		resp, _, err := rawRequest(t, http.MethodGet, s.url+"/v1/environments/dev/audit/export", tokenOf(t, s, "dev"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != api.AuditExportMediaType {
			t.Errorf("export Content-Type %q, want %q", ct, api.AuditExportMediaType)
		}
		if len(all) < 6 || all[0].Seq != 1 {
			t.Errorf("export of dev: %d events, first %+v", len(all), all[0])
		}
	})
}

// tokenOf mints a reader key of env.
func tokenOf(t *testing.T, s *stack, env string) string {
	t.Helper()
	return s.key(env, auth.RoleReader)
}

// TestAuditExportLarge: an export of thousands of events arrives whole and
// in order (the store reads it in batches).
func TestAuditExportLarge(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		dev, err := s.srv.Metadata().Env("dev")
		if err != nil {
			t.Fatal(err)
		}
		const n = 2500
		for i := range n {
			if _, err := dev.AppendAudit(ctx, audit.Event{Environment: "dev", Actor: "bulk", Action: "artifact.read",
				Target: fmt.Sprintf("m@1.0.%d", i), Outcome: audit.Success}); err != nil {
				t.Fatal(err)
			}
		}
		reader := s.client(s.key("dev", auth.RoleReader)) // one more event
		events := exportEvents(t, reader, "dev", nil)
		if len(events) != n+1 {
			t.Fatalf("exported %d events, want %d", len(events), n+1)
		}
		for i, ev := range events {
			if ev.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, ev.Seq)
			}
		}
		rep, err := reader.VerifyAuditChain(ctx, "dev")
		if err != nil || rep.Broken != nil || rep.Events != n+1 {
			t.Fatalf("verify: %+v, %v", rep, err)
		}
	})
}

// TestAuditChainAndCheckpoint: the signed checkpoint verifies with the
// environment's key (and with cosign), names the head of the chain, and
// an edit, a deletion and a reordering made directly in the database are
// each reported as the first broken link; history rewritten with every
// later hash recomputed is caught by a checkpoint kept from before.
func TestAuditChainAndCheckpoint(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		readers := map[string]*client.Client{}
		for _, env := range []string{"dev", "staging", "prod"} {
			for range 4 { // each key.create is an event
				s.key(env, auth.RolePublisher)
			}
			readers[env] = s.client(s.key(env, auth.RoleReader))
		}
		pub := s.client(s.key("dev", auth.RolePublisher))
		for i := range 3 {
			if _, err := push(t, pub, "dev", fmt.Sprintf("m@1.0.%d", i), "generic", map[string][]byte{"f": {byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}

		// The checkpoint: signed by the environment's key, over the head.
		cp, err := readers["dev"].AuditCheckpoint(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		pem, keyID, err := readers["dev"].PublicKey(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		ring, err := signing.NewKeyring(pem)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ring.Identify(cp.Payload, cp.Signature); err != nil || got != keyID || cp.KeyID != keyID {
			t.Fatalf("checkpoint signature: key %q (%v), response says %q, want %q", got, err, cp.KeyID, keyID)
		}
		parsed, err := audit.ParseCheckpoint(cp.Payload)
		if err != nil || parsed != cp.Checkpoint {
			t.Fatalf("payload parses as %+v (%v), response says %+v", parsed, err, cp.Checkpoint)
		}
		devEvents := exportEvents(t, readers["dev"], "dev", nil)
		last := devEvents[len(devEvents)-1]
		if cp.Checkpoint.Count != last.Seq || cp.Checkpoint.HeadHash != last.Hash || cp.Checkpoint.Environment != "dev" {
			t.Fatalf("checkpoint %+v, the trail ends at seq %d %s", cp.Checkpoint, last.Seq, last.Hash)
		}
		if pcp, err := readers["prod"].AuditCheckpoint(ctx, "prod"); err != nil || ring.VerifyBlob(pcp.Payload, pcp.Signature) == nil {
			t.Errorf("prod's checkpoint verifies with dev's key (err %v)", err)
		}
		if bin := cosignOrEmpty(); bin != "" {
			dir := t.TempDir()
			for name, data := range map[string][]byte{"checkpoint.json": cp.Payload, "checkpoint.json.sig": []byte(cp.Signature), "dev.pub": pem} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := runCosign(t, bin, dir, "", "verify-blob", "--key", "dev.pub", "--signature", "checkpoint.json.sig",
				"--insecure-ignore-tlog=true", "checkpoint.json")
			if err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("cosign verify-blob of the checkpoint: %v\n%s", err, out)
			}
		} else {
			t.Log("cosign CLI not found (STAGEGATE_TEST_COSIGN): checkpoint checked with the signing package only")
		}
		for env, rd := range readers {
			rep, err := rd.VerifyAuditChain(ctx, env)
			if err != nil || rep.Broken != nil || rep.Events == 0 {
				t.Fatalf("%s before tampering: %+v, %v", env, rep, err)
			}
		}
		staging, err := readers["staging"].AuditCheckpoint(ctx, "staging")
		if err != nil {
			t.Fatal(err)
		}

		// Append-only holds until its triggers are switched off.
		raw, disable := s.rawDatabase(t)
		if _, err := raw.ExecContext(ctx, `UPDATE audit_events SET actor = 'mallory' WHERE environment = 'dev'`); err == nil {
			t.Fatal("the database let an audit event change")
		}
		for _, stmt := range disable {
			if _, err := raw.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		idOf := func(env string, seq int) int64 {
			var id int64
			if err := raw.QueryRowContext(ctx, `SELECT id FROM audit_events WHERE environment = $1 AND seq = $2`, env, seq).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		}
		a, b := idOf("dev", 4), idOf("dev", 5)
		for _, stmt := range []string{
			fmt.Sprintf(`UPDATE audit_events SET actor = 'mallory' WHERE id = %d`, idOf("staging", 2)),
			fmt.Sprintf(`DELETE FROM audit_events WHERE id = %d`, idOf("prod", 3)),
			fmt.Sprintf(`UPDATE audit_events SET id = -1 WHERE id = %d`, a),
			fmt.Sprintf(`UPDATE audit_events SET id = %d WHERE id = %d`, a, b),
			fmt.Sprintf(`UPDATE audit_events SET id = %d WHERE id = -1`, b),
		} {
			if _, err := raw.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		checks := []struct {
			env     string
			seq     int64
			problem string
		}{
			{"staging", 2, audit.ProblemHash},
			{"prod", 4, audit.ProblemSequence},
			{"dev", 5, audit.ProblemSequence},
		}
		for _, c := range checks {
			rep, err := readers[c.env].VerifyAuditChain(ctx, c.env)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Broken == nil || rep.Broken.Seq != c.seq || rep.Broken.Problem != c.problem {
				t.Errorf("%s: broken link %+v, want %s at seq %d", c.env, rep.Broken, c.problem, c.seq)
			} else if rep.Events != rep.Broken.WantSeq-1 {
				t.Errorf("%s: %d events verified before the break, want %d", c.env, rep.Events, rep.Broken.WantSeq-1)
			}
		}

		// Staging's attacker covers the edit by recomputing every later
		// hash: the chain holds again, but not through the checkpoint kept
		// from before.
		evs := exportEvents(t, readers["staging"], "staging", nil)
		head := audit.Head{Seq: evs[0].Seq, Hash: evs[0].Hash}
		for _, ev := range evs[1:] {
			ev = ev.Link(head)
			if _, err := raw.ExecContext(ctx, `UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3`, ev.PrevHash, ev.Hash, ev.ID); err != nil {
				t.Fatal(err)
			}
			head = audit.Head{Seq: ev.Seq, Hash: ev.Hash}
		}
		if rep, err := readers["staging"].VerifyAuditChain(ctx, "staging"); err != nil || rep.Broken != nil {
			t.Fatalf("rewritten chain without a checkpoint: %+v, %v (a consistent rewrite cannot be told apart alone)", rep, err)
		}
		rep, err := readers["staging"].VerifyAuditChain(ctx, "staging", staging.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Broken == nil || rep.Broken.Problem != audit.ProblemCheckpoint || rep.Broken.Seq != staging.Checkpoint.Count {
			t.Errorf("rewritten chain against the kept checkpoint: %+v, want a checkpoint break at seq %d", rep.Broken, staging.Checkpoint.Count)
		}
	})
}

// cosignOrEmpty is the cosign CLI when one is available.
func cosignOrEmpty() string {
	if p := os.Getenv("STAGEGATE_TEST_COSIGN"); p != "" {
		return p
	}
	return ""
}
