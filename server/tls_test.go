package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func issue(t *testing.T, tmpl *x509.Certificate, parent *testCert) *testCert {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	signer, parentCert := k, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &k.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: k, der: der}
}

func ca(t *testing.T, cn string) *testCert {
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil)
}

func (c *testCert) files(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	kd, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// With --client-ca the gate speaks TLS and admits only clients whose
// certificate the CA signed; a token is still required.
func TestMutualTLS(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	root := ca(t, "hospital-ca")
	other := ca(t, "someone-else")
	srvCert := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "gate"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, root)
	client := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "update-server-1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, root)
	stranger := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "intruder"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, other)
	certFile, keyFile := srvCert.files(t, dir, "server")
	caFile, _ := root.files(t, dir, "ca")
	cfg, err := TLSConfig(certFile, keyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := e.srv.HTTPServer(ln.Addr().String(), cfg)
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	get := func(c *testCert, token string) (*http.Response, error) {
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if c != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{c.der}, PrivateKey: c.key}}
		}
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/v1/log/checkpoint", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return cl.Do(req)
	}
	auditor := string(e.tokens[RoleAuditor])
	resp, err := get(client, auditor)
	if err != nil {
		t.Fatalf("trusted client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("trusted client: %d", resp.StatusCode)
	}
	if resp, err := get(client, ""); err != nil || resp.StatusCode != 401 {
		t.Fatalf("trusted client without token: %v %v", resp, err)
	}
	for name, c := range map[string]*testCert{"no client certificate": nil, "certificate from another CA": stranger} {
		resp, err := get(c, auditor)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: got HTTP %d, want a TLS failure", name, resp.StatusCode)
		}
		var ue interface{ Unwrap() error }
		if !errors.As(err, &ue) || !(strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "tls")) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := TLSConfig(certFile, keyFile, keyFile); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("key as client CA: %v", err)
	}
}
