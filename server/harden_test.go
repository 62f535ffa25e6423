package server

import (
	"strings"
	"testing"
)

// The auth scheme is case-insensitive (RFC 7235 section 2.1): "bearer",
// "BEARER" and "Bearer" all carry the token; other schemes do not.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	tok := string(e.tokens[RoleAuditor])
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR  " + tok} {
		r := e.do("GET", "/v1/log/checkpoint", "", "", nil, "Authorization", h)
		if r.status != 200 {
			t.Errorf("%q: %d %s", strings.Replace(h, tok, "TOKEN", 1), r.status, r.body)
		}
	}
	for _, h := range []string{"Basic " + tok, "Bearer" + tok, tok, "Bearer "} {
		r := e.do("GET", "/v1/log/checkpoint", "", "", nil, "Authorization", h)
		if r.status != 401 || r.errorCode(t) != "unauthorized" {
			t.Errorf("%q: %d %s", strings.Replace(h, tok, "TOKEN", 1), r.status, r.body)
		}
	}
}
