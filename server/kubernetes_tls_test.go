package server

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// The webhook's own TLS listener: the API server's client certificate
// (signed by the Kubernetes client CA) is the kubernetes role; without one
// a kubernetes token is needed; a certificate from another CA is refused
// in the handshake; only the webhook routes and the health checks are
// served there.
func TestKubernetesListener(t *testing.T) {
	ke := newKubeEnv(t, false)
	dir := t.TempDir()
	root := ca(t, "hospital-ca")
	kubeCA := ca(t, "kubernetes-client-ca")
	srvCert := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "wardgate.wardgate.svc"}, DNSNames: []string{"wardgate.wardgate.svc"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, root)
	apiserver := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, kubeCA)
	stranger := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "update-server-1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, root)
	certFile, keyFile := srvCert.files(t, dir, "server")
	caFile, _ := kubeCA.files(t, dir, "kube-ca")
	cfg, err := KubernetesTLSConfig(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := ke.srv.KubernetesHTTPServer(ln.Addr().String(), cfg)
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	body := reviewJSON(podReview("facility", "p", podSpec(nil, []string{"registry.other.example/buildctl/bms-api:1.2.0"}, nil)))
	call := func(c *testCert, token, path string) (int, []byte, error) {
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if c != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{c.der}, PrivateKey: c.key}}
		}
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		req, _ := http.NewRequest("POST", "https://"+ln.Addr().String()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := cl.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	for _, c := range []struct {
		name  string
		cert  *testCert
		token string
	}{{"API server certificate", apiserver, ""}, {"kubernetes token", nil, string(ke.tokens[RoleKubernetes])}} {
		code, b, err := call(c.cert, c.token, "/v1/kubernetes/validate")
		var rv admissionv1.AdmissionReview
		if err != nil || code != 200 || json.Unmarshal(b, &rv) != nil || rv.Response.Allowed || !strings.Contains(rv.Response.Result.Message, "[registry-not-allowed]") {
			t.Fatalf("%s: %d %s %v", c.name, code, b, err)
		}
	}
	recs, err := ke.srv.deps.Tokens.AuditLog(t.Context(), AuditFilter{Action: "POST /v1/kubernetes/validate"})
	if err != nil || len(recs) != 2 || recs[0].Token != "mtls:kube-apiserver" || recs[0].Role != RoleKubernetes || recs[1].Token != "test-kubernetes" {
		t.Fatalf("audit %+v %v", recs, err)
	}
	if code, b, err := call(nil, "", "/v1/kubernetes/validate"); err != nil || code != 401 {
		t.Fatalf("no certificate, no token: %d %s %v", code, b, err)
	}
	// The certificate stands for the kubernetes role only: no other route
	// is served on this listener, even to an admin token.
	if code, _, err := call(apiserver, string(ke.tokens[RoleAdmin]), "/v1/updates"); err != nil || code != 404 {
		t.Fatalf("other route: %d %v", code, err)
	}
	// A certificate another CA signed is not the API server's: the client
	// does not offer it to a server asking for the Kubernetes CA's, or
	// the handshake fails; either way no principal.
	if code, b, err := call(stranger, "", "/v1/kubernetes/validate"); err == nil && code != 401 {
		t.Fatalf("certificate from another CA: %d %s", code, b)
	}
	// On the main listener a client certificate is no principal.
	if p, ok := ke.srv.certPrincipal(&http.Request{TLS: &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{apiserver.cert}}}}, []Role{RoleKubernetes}); ok {
		t.Fatalf("certificate principal %+v off the Kubernetes listener", p)
	}
}
