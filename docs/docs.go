// Package docs embeds the documents the binary serves: the OpenAPI
// description of the HTTP gate (GET /openapi.yaml). It imports only the
// standard library.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the description of every route of
// wardgate serve.
//
//go:embed openapi.yaml
var OpenAPI []byte
