package httpapi

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

// errorTable is the README's table of error codes as the server answers them.
func errorTable() string {
	var b strings.Builder
	b.WriteString("| code | status | meaning |\n| --- | --- | --- |\n")
	for _, c := range registry.Codes() {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c.Name, statusOf[c.Kind], c.Description)
	}
	return b.String()
}

// TestReadmeErrorTable keeps the README's error table equal to the codes
// the server answers with; on a mismatch it prints the table to paste.
func TestReadmeErrorTable(t *testing.T) {
	const begin, end = "<!-- error-codes:begin -->\n", "<!-- error-codes:end -->"
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the %q … %q markers", begin, end)
	}
	if want := errorTable(); table != want {
		t.Fatalf("README.md error table is out of date; replace it with:\n%s", want)
	}
}

func TestCodesDeclaredOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range registry.Codes() {
		if seen[c.Name] {
			t.Errorf("code %q is declared twice", c.Name)
		}
		seen[c.Name] = true
		if _, ok := statusOf[c.Kind]; !ok {
			t.Errorf("code %q has kind %v, which maps to no HTTP status", c.Name, c.Kind)
		}
		if c.Kind == registry.Internal && c.Name != registry.CodeInternal.Name {
			t.Errorf("code %q is Internal: its text would never reach a client", c.Name)
		}
		if status := statusOf[c.Kind]; c.Kind != registry.Unavailable && c.Kind != registry.Internal && status >= 500 {
			t.Errorf("code %q: a client's fault must be 4xx, not %d", c.Name, status)
		}
	}
	if statusOf[registry.MethodNotAllowed] != http.StatusMethodNotAllowed {
		t.Error("method_not_allowed is not 405")
	}
}
