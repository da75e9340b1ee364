package server_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/stagegate/stagegate/client"
	"github.com/stagegate/stagegate/internal/auth"
)

// chromiumPath finds a Chromium to drive; scripts/test.sh installs
// Debian's chromium when it is missing.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInBrowser drives the dashboard in headless Chromium against
// a live service: a release manager signs in with a staging and a prod key,
// reads the matrix, opens the gate run of a refused promotion, follows a
// refused promotion's audit row to its gate run and downloads a version's
// evidence; an approver approves; the release manager promotes and rolls
// back, all through the pages, and the screen says so at each step. Screenshots of each page are
// written to a temporary directory whose path the test logs.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	bin := chromiumPath()
	if bin == "" {
		t.Skip("chromium is not installed (scripts/test.sh installs Debian's chromium): skipping the browser test")
	}
	s := newStack(t, "embedded", nil)
	ctx := context.Background()
	pub := s.client(s.key("dev", auth.RolePublisher))
	stagingKey, prodKey := s.key("staging", auth.RolePromoter), s.key("prod", auth.RolePromoter)
	approverKey := s.key("prod", auth.RoleApprover)
	// 1.1.0 carries a test report, which travels with it into staging.
	junit := `<testsuite name="eval" tests="3"><testcase name="a"/><testcase name="b"/><testcase name="c"><skipped/></testcase></testsuite>`
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := push(t, pub, "dev", "team/agent@"+v, "generic", map[string][]byte{"prompt.txt": []byte("v" + v)}); err != nil {
			t.Fatal(err)
		}
		if v == "1.1.0" {
			if _, _, err := pub.AddEvidence(ctx, "dev", "team/agent", v, "junit", []byte(junit)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.client(stagingKey).Promote(ctx, "staging", client.PromoteRequest{Name: "team/agent", Version: v, Reason: "eval green"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.client(approverKey).Approve(ctx, "prod", "team/agent", "1.0.0", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client(prodKey).Promote(ctx, "prod", client.PromoteRequest{Name: "team/agent", Version: "1.0.0", Reason: "first"}); err != nil {
		t.Fatal(err)
	}
	// 1.1.0 is not approved for prod yet: refused, and audited with its gate run.
	_, err := s.client(prodKey).Promote(ctx, "prod", client.PromoteRequest{Name: "team/agent", Version: "1.1.0"})
	var refused *client.APIError
	if !errors.As(err, &refused) || refused.Code != "gate_failed" {
		t.Fatalf("promoting unapproved 1.1.0 into prod: want gate_failed, got %v", err)
	}
	refusedRun := regexp.MustCompile(`"gateRunId":"([^"]+)"`).FindSubmatch(refused.Details)
	if refusedRun == nil {
		t.Fatalf("refusal names no gate run: %s", refused.Details)
	}

	shots, err := os.MkdirTemp("", "stagegate-dashboard-shots-")
	downloads := t.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	// chromedp v0.23: actions are typed values (Action[T]); selectors are
	// typed strings (chromedp.ID, chromedp.CSS).
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG
			if err != nil {
				return err
			}
			p := filepath.Join(shots, name+".png")
			t.Logf("screenshot %s", p)
			return os.WriteFile(p, buf, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		got, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.Join(strings.Fields(got), " ")
	}
	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	signIn := func(keys ...string) {
		t.Helper()
		run("open sign-in", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(id("key1")))
		for i, k := range keys {
			run("type key", chromedp.SendKeys(id("key"+string(rune('1'+i))), k))
		}
		run("sign in", chromedp.Click(css(`form.signin button[type="submit"]`)), chromedp.WaitVisible(id("matrix")))
	}
	signOut := func() {
		t.Helper()
		run("sign out", chromedp.Click(css(`form[action="/ui/signout"] button`)), chromedp.WaitVisible(id("key1")))
	}
	prodCell := `tr[data-name="team/agent"] td[data-env="prod"]`

	// The release manager: staging and prod keys; dev is not theirs.
	signIn(stagingKey, prodKey)
	run("matrix", shot("1-matrix"))
	if got := text(prodCell); !strings.Contains(got, "1.0.0") || !strings.Contains(got, "differs: staging has 1.1.0") {
		t.Errorf("prod cell = %q, want 1.0.0 marked as behind staging's 1.1.0", got)
	}
	if got := text(`#matrix thead`); !strings.Contains(got, "staging prod") || strings.Contains(got, "dev") {
		t.Errorf("matrix columns = %q, want staging then prod only", got)
	}
	// Keyboard: the first Tab lands on the skip link, the next ones walk
	// the navigation; each is a real focusable element.
	focused := func() string {
		t.Helper()
		got, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.activeElement.textContent.trim()`))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	var walk []string
	for range 4 {
		run("tab", chromedp.KeyEvent("\t"))
		walk = append(walk, focused())
	}
	if want := []string{"Skip to content", "stagegate", "Environments", "Audit"}; strings.Join(walk, "|") != strings.Join(want, "|") {
		t.Errorf("Tab walks %q, want %q", walk, want)
	}

	// Promoting 1.1.0 into prod: the preview is refused, and its gate run says why.
	run("artifact page", chromedp.Click(css(`tr[data-name="team/agent"] th a`)), chromedp.WaitVisible(id("env-prod")), shot("2-artifact"))
	run("preview", chromedp.SetValue(id("promote-prod"), "1.1.0"),
		chromedp.Click(css(`#env-prod form[action="/ui/promote/preview"] button`)),
		chromedp.WaitVisible(id("preview-outcome")), shot("3-preview-refused"))
	if got := text("#preview-outcome"); got != "refused" {
		t.Errorf("preview outcome = %q, want refused (no prod approval yet)", got)
	}
	run("gate run", chromedp.Click(id("preview-run")), chromedp.WaitVisible(id("policy-digest")), shot("4-gate-run"))
	if got := text(`tr.st-failed`); !strings.Contains(got, "approvals") || !strings.Contains(got, "failed") {
		t.Errorf("failed check row = %q, want approvals, failed in words", got)
	}

	// The refused promotion's audit row leads to the gate run that refused it.
	run("audit of refusals", chromedp.Navigate(s.url+"/ui/audit?env=prod&action=artifact.promote&outcome=denied"),
		chromedp.WaitVisible(css("table.audit a.gate-run")), shot("4b-audit-refusal"),
		chromedp.Click(css("table.audit a.gate-run")), chromedp.WaitVisible(id("policy-digest")))
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/ui/environments/prod/gate-runs/"+string(refusedRun[1])) {
		t.Errorf("audit row links to %q (%v), want the refused promotion's gate run %s", loc, err, refusedRun[1])
	}
	if got := text(`tr.st-failed`); !strings.Contains(got, "approvals") {
		t.Errorf("refused run's failed check = %q, want approvals", got)
	}

	// The evidence of 1.1.0 in staging: its JUnit totals on the page, and
	// the document itself through the download link.
	detail := css(`[id="detail-staging-1.1.0"]`)
	run("evidence", chromedp.Navigate(s.url+"/ui/artifacts/team/agent"), chromedp.WaitVisible(detail), shot("4c-evidence"))
	if got := text(`[id="detail-staging-1.1.0"] .junit`); got != "3 tests, 0 failures, 0 errors, 1 skipped" {
		t.Errorf("staging 1.1.0 JUnit totals = %q", got)
	}
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	run("download evidence", chromedp.Click(css(`[id="detail-staging-1.1.0"] a[download]`)))
	saved := filepath.Join(downloads, "team_agent-1.1.0-junit.xml")
	var got []byte
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = os.ReadFile(saved); err == nil && len(got) == len(junit) {
			break
		}
	}
	if string(got) != junit {
		entries, _ := os.ReadDir(downloads)
		t.Errorf("downloaded evidence %s = %q (%v; directory holds %v), want the attached document", saved, got, err, entries)
	}

	// The approver signs in with their own prod key and approves.
	signOut()
	signIn(approverKey)
	run("approve", chromedp.Navigate(s.url+"/ui/artifacts/team/agent"), chromedp.WaitVisible(id("approve-prod")),
		chromedp.SendKeys(id("approve-prod"), "1.1.0"),
		chromedp.Click(css(`#env-prod form[action="/ui/approve"] button`)),
		chromedp.WaitVisible(id("confirm-approve")), shot("5-approve-confirm"),
		chromedp.Click(id("confirm-approve")), chromedp.WaitVisible(id("result")))
	if got := text("#result"); !strings.Contains(got, "Approved team/agent@1.1.0 for prod") {
		t.Errorf("approval result = %q", got)
	}
	signOut()

	// The release manager promotes after a passing preview.
	signIn(stagingKey, prodKey)
	run("promote", chromedp.Navigate(s.url+"/ui/artifacts/team/agent"), chromedp.WaitVisible(id("promote-prod")),
		chromedp.SetValue(id("promote-prod"), "1.1.0"),
		chromedp.Click(css(`#env-prod form[action="/ui/promote/preview"] button`)),
		chromedp.WaitVisible(id("confirm-promote")), shot("6-preview-passed"))
	if got := text("#preview-outcome"); got != "all required checks pass" {
		t.Errorf("preview outcome = %q", got)
	}
	run("confirm promote", chromedp.SendKeys(id("reason"), "approved in review"),
		chromedp.Click(id("confirm-promote")), chromedp.WaitVisible(id("result")), shot("7-promoted"))
	if got := text("#result"); !strings.Contains(got, "team/agent@1.1.0 is released in prod") {
		t.Errorf("promotion result = %q", got)
	}
	run("matrix after promotion", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(id("matrix")))
	if got := text(prodCell); !strings.Contains(got, "1.1.0") || strings.Contains(got, "differs") {
		t.Errorf("prod cell after promotion = %q", got)
	}

	// And rolls prod back, with a reason.
	run("rollback", chromedp.Navigate(s.url+"/ui/artifacts/team/agent"), chromedp.WaitVisible(id("env-prod")),
		chromedp.Click(css(`#env-prod a.button`)), chromedp.WaitVisible(id("rb-version")),
		chromedp.SetValue(id("rb-version"), "1.0.0"),
		chromedp.SendKeys(id("rb-reason"), "latency regression"),
		chromedp.Click(id("rb-confirm")), shot("8-rollback-confirm"),
		chromedp.Click(id("confirm-rollback")), chromedp.WaitVisible(id("result")))
	if got := text("#result"); !strings.Contains(got, "is back on 1.0.0") {
		t.Errorf("rollback result = %q", got)
	}
	run("matrix after rollback", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(id("matrix")), shot("9-matrix-after-rollback"))
	if got := text(prodCell); !strings.Contains(got, "1.0.0") || !strings.Contains(got, "differs: staging has 1.1.0") {
		t.Errorf("prod cell after rollback = %q", got)
	}
	run("audit", chromedp.Navigate(s.url+"/ui/audit?env=prod&action=artifact.rollback"), chromedp.WaitVisible(id("export")), shot("10-audit"))
	if got := text("table.audit tbody"); !strings.Contains(got, "artifact.rollback") || !strings.Contains(got, "success") {
		t.Errorf("audit rows = %q", got)
	}

	// Phone width: the page itself never scrolls sideways (wide tables do,
	// inside their own box).
	run("phone width", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.url+"/ui/artifacts/team/agent"),
		chromedp.WaitVisible(id("env-prod")), shot("11-artifact-phone"))
	fits, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if !fits {
		t.Error("the artifact page scrolls sideways at 390 px")
	}
}
