package schemas

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestJSONSchemasCompile checks each embedded schema against its
// meta-schema (the compiler validates it) and its $id against SchemaID.
func TestJSONSchemasCompile(t *testing.T) {
	for _, name := range []string{AgentConfig, Features} {
		t.Run(name, func(t *testing.T) {
			b, err := JSONSchema(name)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if id := doc.(map[string]any)["$id"]; id != SchemaID(name) {
				t.Errorf("$id = %v, want %s", id, SchemaID(name))
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource(SchemaID(name), doc); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Compile(SchemaID(name)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := JSONSchema("openapi.yaml"); err == nil {
		t.Error("only the listed JSON Schemas are embedded")
	}
}
