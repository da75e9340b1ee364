package schemas

import (
	"bytes"
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
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

// TestOpenAPIValid validates the embedded API description with a maintained
// OpenAPI library, so what GET /v1/openapi.yaml serves is a document clients
// can generate code from. Whether it matches the router is checked in
// internal/server (TestOpenAPIDocumentsRouter).
func TestOpenAPIValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi %q: the document is written for OpenAPI 3.1", doc.OpenAPI)
	}
}
