package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stagegate/stagegate/api"
	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/gates"
	"github.com/stagegate/stagegate/internal/auth"
	"github.com/stagegate/stagegate/registry"
)

// ownedKey mints a key for owner directly in the store, as
// `stagegate keys create --owner` does on the server host.
func (s *stack) ownedKey(env string, role auth.Role, name, owner string) string {
	s.t.Helper()
	handle, err := s.srv.Metadata().Env(env)
	if err != nil {
		s.t.Fatal(err)
	}
	token, _, err := auth.CreateKey(context.Background(), handle, env,
		auth.KeySpec{Name: name, Role: role, Owner: owner, CreatedByOwner: auth.HostIdentity}, audit.Actor{Name: "test"}, time.Now())
	if err != nil {
		s.t.Fatalf("create key: %v", err)
	}
	return token
}

// legacyKey stores a key as it was before owners existed: no owner, no
// minter identity. CreateKey would refuse such a key for these roles.
func (s *stack) legacyKey(env string, role auth.Role, name string) string {
	s.t.Helper()
	handle, err := s.srv.Metadata().Env(env)
	if err != nil {
		s.t.Fatal(err)
	}
	token, hash, err := auth.NewToken()
	if err != nil {
		s.t.Fatal(err)
	}
	now := time.Now().UTC()
	k := auth.Key{ID: "key_legacy_" + name, Name: name, Environment: env, Role: role, TokenHash: hash, CreatedAt: now, CreatedBy: "admin"}
	if err := handle.CreateKey(context.Background(), k, audit.Event{Time: now, Actor: "test", Action: audit.ActionKeyCreate, Outcome: audit.Success}); err != nil {
		s.t.Fatal(err)
	}
	return token
}

// mintKey asks the API, as the holder of token, for a key of env; it
// returns the new key and token, or the refusal's status and code.
func mintKey(t *testing.T, s *stack, token, env string, req api.CreateKeyRequest) (api.CreateKeyResponse, int, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, data, err := rawRequest(t, http.MethodPost, s.url+"/v1/environments/"+env+"/keys", token, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		var e api.ErrorBody
		_ = json.Unmarshal(data, &e)
		return api.CreateKeyResponse{}, resp.StatusCode, e.Error.Code
	}
	var out api.CreateKeyResponse
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out, resp.StatusCode, ""
}

// approvalDetails decodes the approvals check's details from a report.
func approvalDetails(t *testing.T, r client.GateReport) (string, gates.ApprovalDetails) {
	t.Helper()
	for _, c := range r.Results {
		if c.Check == "approvals" {
			var d gates.ApprovalDetails
			if err := json.Unmarshal(c.Details, &d); err != nil {
				t.Fatalf("approvals details %s: %v", c.Details, err)
			}
			return c.Status, d
		}
	}
	t.Fatalf("no approvals result in %+v", r)
	return "", gates.ApprovalDetails{}
}

func discountedRules(d gates.ApprovalDetails) []string {
	var out []string
	for _, x := range d.Discounted {
		out = append(out, x.Key+"="+x.Rule)
	}
	return out
}

// TestDutiesSelfMintedApprover is Hardening item 7: an admin of prod minted
// an approver key through the API, approved with it, and promoted with
// another of their keys, and the approvals check counted it. Approvals are
// now counted per person (key owner), and a key's owner is its minter's
// say-so, so neither the promoter's own approvals nor approvals through
// keys the promoter minted, nor approvals by whoever minted the promoting
// key, count. The default prod policy requires one approval.
func TestDutiesSelfMintedApprover(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		const alice, bob, carol, dave = "alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test"
		pub := s.client(s.key("dev", auth.RolePublisher))
		stagingPromoter := s.client(s.key("staging", auth.RolePromoter))
		versions := []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"}
		for _, v := range versions {
			if _, err := push(t, pub, "dev", "ranker@"+v, "generic", map[string][]byte{"w.bin": []byte("weights " + v)}); err != nil {
				t.Fatal(err)
			}
			if _, err := stagingPromoter.Promote(ctx, "staging", client.PromoteRequest{Name: "ranker", Version: v}); err != nil {
				t.Fatalf("promote %s to staging: %v", v, err)
			}
		}
		aliceAdmin := s.ownedKey("prod", auth.RoleAdmin, "alice-admin", alice)
		aliceDeploy := s.client(s.ownedKey("prod", auth.RolePromoter, "alice-deploy", alice))
		carolAdmin := s.ownedKey("prod", auth.RoleAdmin, "carol-admin", carol)
		approve := func(token, version string) {
			t.Helper()
			if _, err := s.client(token).Approve(ctx, "prod", "ranker", version, "lgtm"); err != nil {
				t.Fatalf("approve %s: %v", version, err)
			}
		}
		refused := func(cl *client.Client, version string, wantRules ...string) {
			t.Helper()
			_, err := cl.Promote(ctx, "prod", client.PromoteRequest{Name: "ranker", Version: version})
			gf := gateFailure(t, err)
			status, d := approvalDetails(t, gf.Report)
			if status != "failed" || len(d.Counted) != 0 {
				t.Fatalf("promote %s: approvals %s counting %v, want failed counting none (%+v)", version, status, d.Counted, d)
			}
			if got := discountedRules(d); !slices.Equal(got, wantRules) {
				t.Fatalf("promote %s: discounted %v, want %v", version, got, wantRules)
			}
		}

		// An approver key names its owner: the API refuses one without.
		if _, status, code := mintKey(t, s, aliceAdmin, "prod", api.CreateKeyRequest{Name: "anon", Role: "approver"}); status != http.StatusBadRequest || code != registry.CodeInvalidRequest.Name {
			t.Fatalf("approver key without owner: %d %s", status, code)
		}

		// The report: alice mints an approver key for herself, approves,
		// and promotes through another of her keys.
		selfKey, _, code := mintKey(t, s, aliceAdmin, "prod", api.CreateKeyRequest{Name: "rubber-stamp", Role: "approver", Owner: alice})
		if code != "" || selfKey.Key.Owner != alice || selfKey.Key.CreatedByOwner != alice || selfKey.Key.CreatedBy != "alice-admin" {
			t.Fatalf("mint rubber-stamp: %s %+v", code, selfKey.Key)
		}
		approve(selfKey.Token, "1.0.0")
		refused(aliceDeploy, "1.0.0", "rubber-stamp="+gates.DiscountSelf)

		// The same, naming someone else as owner: the owner is alice's word.
		fakeBob, _, code := mintKey(t, s, aliceAdmin, "prod", api.CreateKeyRequest{Name: "bob-approver", Role: "approver", Owner: bob})
		if code != "" {
			t.Fatalf("mint bob-approver: %s", code)
		}
		approve(fakeBob.Token, "1.1.0")
		refused(aliceDeploy, "1.1.0", "bob-approver="+gates.DiscountMintedByPromoter)
		refused(s.client(aliceAdmin), "1.1.0", "bob-approver="+gates.DiscountMintedByPromoter)

		// The mirror image: carol mints a promoter key under dave's name and
		// approves with her own approver key.
		carolApprover, _, _ := mintKey(t, s, carolAdmin, "prod", api.CreateKeyRequest{Name: "carol-approver", Role: "approver", Owner: carol})
		fakeDave, _, _ := mintKey(t, s, carolAdmin, "prod", api.CreateKeyRequest{Name: "dave-deploy", Role: "promoter", Owner: dave})
		approve(carolApprover.Token, "1.2.0")
		refused(s.client(fakeDave.Token), "1.2.0", "carol-approver="+gates.DiscountMintedPromoter)

		// Genuine separation: carol mints bob's approver key, bob approves,
		// alice promotes. Bob counts; alice's minted "bob" still does not.
		realBob, _, _ := mintKey(t, s, carolAdmin, "prod", api.CreateKeyRequest{Name: "bob", Role: "approver", Owner: bob})
		approve(realBob.Token, "1.1.0")
		res, err := aliceDeploy.Promote(ctx, "prod", client.PromoteRequest{Name: "ranker", Version: "1.1.0"})
		if err != nil || !res.Created {
			t.Fatalf("promotion approved by bob: %+v %v", res, err)
		}
		if status, d := approvalDetails(t, *res.Report); status != "passed" || !slices.Equal(d.Counted, []string{bob}) || d.Promoter != alice ||
			!slices.Equal(discountedRules(d), []string{"bob-approver=" + gates.DiscountMintedByPromoter}) {
			t.Fatalf("approvals %s %+v, want bob counted and alice's minted key discounted", status, d)
		}
		// A host-minted approver key of another person counts too.
		approve(s.ownedKey("prod", auth.RoleApprover, "erin", "erin@example.test"), "1.0.0")
		if _, err := aliceDeploy.Promote(ctx, "prod", client.PromoteRequest{Name: "ranker", Version: "1.0.0"}); err != nil {
			t.Fatalf("promotion approved by erin: %v", err)
		}

		// The audit trail names the person behind each approval.
		evs, err := s.client(aliceAdmin).Audit(ctx, "prod", url.Values{"action": {"artifact.approve"}, "target": {"ranker@1.1.0"}})
		if err != nil || len(evs) != 2 || evs[0].Details["identity"] != bob || evs[0].Actor != "bob" {
			t.Fatalf("approve audit events %+v %v", evs, err)
		}
		// Listing keys shows owners and who minted them.
		keys, err := s.client(aliceAdmin).ListKeys(ctx, "prod")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.Name == "bob-approver" && (k.Owner != bob || k.CreatedByOwner != alice) {
				t.Fatalf("listed %+v, want owner bob minted by alice", k)
			}
		}
	})
}

// TestDutiesLegacyKeys: keys minted before owners existed keep doing what
// needs no identity, and are refused what does, each with a clear code.
func TestDutiesLegacyKeys(t *testing.T) {
	forEachStack(t, func(t *testing.T, s *stack) {
		ctx := context.Background()
		pub := s.client(s.key("dev", auth.RolePublisher))
		if _, err := push(t, pub, "dev", "ranker@1.0.0", "generic", map[string][]byte{"w.bin": []byte("weights")}); err != nil {
			t.Fatal(err)
		}
		// A legacy promoter still promotes where no approval is required.
		if _, err := s.client(s.legacyKey("staging", auth.RolePromoter, "old-deploy")).Promote(ctx, "staging", client.PromoteRequest{Name: "ranker", Version: "1.0.0"}); err != nil {
			t.Fatalf("legacy promoter into staging: %v", err)
		}
		_, err := s.client(s.legacyKey("prod", auth.RoleApprover, "old-approver")).Approve(ctx, "prod", "ranker", "1.0.0", "")
		wantAPIError(t, err, http.StatusForbidden, registry.CodeOwnerRequired.Name)

		legacyAdmin := s.legacyKey("prod", auth.RoleAdmin, "old-admin")
		if _, status, code := mintKey(t, s, legacyAdmin, "prod", api.CreateKeyRequest{Name: "x", Role: "approver", Owner: "x@example.test"}); status != http.StatusForbidden || code != registry.CodeOwnerRequired.Name {
			t.Fatalf("legacy admin minting an approver key: %d %s", status, code)
		}
		if _, status, code := mintKey(t, s, legacyAdmin, "prod", api.CreateKeyRequest{Name: "dashboard", Role: "reader"}); status != http.StatusCreated {
			t.Fatalf("legacy admin minting a reader key: %d %s", status, code)
		}

		approve := s.client(s.key("prod", auth.RoleApprover))
		if _, err := approve.Approve(ctx, "prod", "ranker", "1.0.0", ""); err != nil {
			t.Fatal(err)
		}
		_, err = s.client(legacyAdmin).Promote(ctx, "prod", client.PromoteRequest{Name: "ranker", Version: "1.0.0"})
		if status, d := approvalDetails(t, gateFailure(t, err).Report); status != "failed" || d.Promoter != "" {
			t.Fatalf("legacy promoter into prod: approvals %s %+v, want failed", status, d)
		}
	})
}
