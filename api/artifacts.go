package api

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stagegate/stagegate/registry"
)

// PublishRequest is the body of PUT
// /v1/environments/{env}/artifacts/{name}/-/versions/{version}. The blobs
// of Files must have been uploaded first, except those whose bytes are in
// Contents (by file path; base64 in JSON; registry.MaxInlineContents in
// all), which the service stores with the version.
type PublishRequest struct {
	Kind         string                 `json:"kind"`
	Files        []registry.File        `json:"files"`
	Labels       map[string]string      `json:"labels,omitempty"`
	SourceCommit string                 `json:"sourceCommit,omitempty"`
	CISignatures []registry.CISignature `json:"ciSignatures,omitempty"`
	Contents     map[string][]byte      `json:"contents,omitempty"`
}

// PublishResponse answers a publish; Created is false when the identical
// version already existed.
type PublishResponse struct {
	Created bool                   `json:"created"`
	Version registry.VersionRecord `json:"version"`
}

// BlobUploadResponse answers PUT /v1/environments/{env}/blobs/{digest};
// Created is false when the blob was already stored.
type BlobUploadResponse struct {
	Digest  v1.Hash `json:"digest"`
	Created bool    `json:"created"`
}

// ArtifactList answers GET /v1/environments/{env}/artifacts.
type ArtifactList struct {
	Environment string                     `json:"environment"`
	Artifacts   []registry.ArtifactSummary `json:"artifacts"`
}

// VersionList answers GET …/artifacts/{name}/-/versions, highest first.
type VersionList struct {
	Environment string                   `json:"environment"`
	Name        string                   `json:"name"`
	Versions    []registry.VersionRecord `json:"versions"`
}

// EnvironmentList answers GET /v1/environments, in promotion order.
type EnvironmentList struct {
	Environments []EnvironmentSummary `json:"environments"`
}

// EnvironmentSummary is one environment of EnvironmentList.
type EnvironmentSummary struct {
	Name string `json:"name"`
	// Position is the index in the promotion order, 0 for the first.
	Position int `json:"position"`
	// AcceptsPublish is true for the first environment only: every other
	// one is filled by promotion.
	AcceptsPublish bool `json:"acceptsPublish"`
}

// Whoami answers GET /v1/whoami with what the server knows of the caller's
// credential.
type Whoami struct {
	Environment  string `json:"environment"`
	Role         string `json:"role"`
	Actor        string `json:"actor"`
	CredentialID string `json:"credentialId"`
}
