package server

import (
	"net/http"
	"strconv"

	"github.com/wardgate/wardgate/docs"
)

// getOpenAPI serves docs/openapi.yaml, embedded in the binary: the
// description of this server's routes, for clients and their generators.
func (s *Server) getOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Length", strconv.Itoa(len(docs.OpenAPI)))
	_, err := w.Write(docs.OpenAPI)
	return err
}
