// Package schemas embeds the JSON Schemas that stagegate validates artifact
// content against, and the OpenAPI description of its HTTP API. They ship
// inside the binary so that a gate run never depends on the network or the
// working directory, and the served API description is the tested one.
package schemas

import (
	"embed"
	"fmt"
)

// Names of the embedded JSON Schema documents, as passed to [JSONSchema].
const (
	// AgentConfig validates `agent-config` artifacts: one agent's model,
	// system prompt, tools and limits.
	AgentConfig = "agent-config.schema.json"
	// Features validates `features` artifacts: a feature-definition set of
	// one entity, its source, freshness and typed features.
	Features = "features.schema.json"
)

// jsonSchemas lists its files explicitly (no glob) so other documents that
// live in this directory, such as the OpenAPI description, are not swept in.
//
//go:embed agent-config.schema.json features.schema.json
var jsonSchemas embed.FS

// openAPI is embedded on its own, not in jsonSchemas, so that JSONSchema
// cannot hand it out as a schema for artifact content.
//
//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI description of the HTTP API, as served at GET
// /v1/openapi.yaml. The slice is shared: callers must not modify it.
func OpenAPI() []byte { return openAPI }

// JSONSchema returns the bytes of the named embedded schema (one of the
// constants above). An unknown name is an error rather than a panic because
// names may come from configuration.
func JSONSchema(name string) ([]byte, error) {
	b, err := jsonSchemas.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("schemas: no embedded JSON Schema %q", name)
	}
	return b, nil
}

// SchemaID returns the canonical $id URL of the named schema, the key under
// which a JSON Schema compiler should register it.
func SchemaID(name string) string { return "https://stagegate.dev/schemas/" + name }
