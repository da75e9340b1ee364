package gates

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

// TestJSONSchemaFixtures validates every file under
// testdata/<kind>/{valid,invalid}: valid ones must pass, invalid ones fail.
func TestJSONSchemaFixtures(t *testing.T) {
	c := buildCheck(t, "json-schema", "")
	for _, kind := range []registry.Kind{registry.KindAgentConfig, registry.KindFeatures} {
		for _, dir := range []string{"valid", "invalid"} {
			root := filepath.Join("testdata", string(kind), dir)
			entries, err := os.ReadDir(root)
			if err != nil {
				t.Fatal(err)
			}
			// An emptied or renamed fixture folder must not pass vacuously.
			if len(entries) == 0 {
				t.Fatalf("no fixtures in %s", root)
			}
			for _, e := range entries {
				t.Run(string(kind)+"/"+dir+"/"+e.Name(), func(t *testing.T) {
					f := memFile(e.Name(), readFixture(t, filepath.Join(root, e.Name())))
					r := c.Run(context.Background(), subject(kind, f))
					if dir == "valid" {
						wantStatus(t, r, Passed)
						return
					}
					wantStatus(t, r, Failed)
					d := r.Details.(JSONSchemaDetails)
					if len(d.Violations) == 0 || d.Violations[0].Path != e.Name() {
						t.Errorf("violations %+v", d.Violations)
					}
					t.Log(r.Reason)
				})
			}
		}
	}
}

func TestJSONSchemaKinds(t *testing.T) {
	c := buildCheck(t, "json-schema", "")
	ok := memFile("agent.json", []byte(`{"model":"m","system_prompt":"p"}`))
	wantStatus(t, c.Run(context.Background(), subject(registry.KindModel, ok)), Skipped)
	wantStatus(t, c.Run(context.Background(), subject(registry.KindAgentConfig, memFile("README.md", []byte("x")))), Failed)
	// YAML and JSON of the same content agree, and the features schema is
	// chosen by kind: an agent config is not a feature set.
	wantStatus(t, c.Run(context.Background(), subject(registry.KindFeatures, ok)), Failed)
	broken := ok
	broken.Open = failingOpener
	wantStatus(t, c.Run(context.Background(), subject(registry.KindAgentConfig, broken)), Errored)
	big := buildCheck(t, "json-schema", "max_file_bytes: 8")
	wantStatus(t, big.Run(context.Background(), subject(registry.KindAgentConfig, ok)), Failed)
}
