package cli_test

import (
	"net"
	"strings"
	"testing"
	"time"
)

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestKMSUnreachable: a KMS key reference whose service does not answer is
// "could not verify" (exit 2) with a message naming the key, within a
// bounded time, for verification keys and the service signing key. The
// services are pointed at a closed loopback port, with credentials in the
// environment, so nothing leaves the machine (no instance metadata lookup).
func TestKMSUnreachable(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("VAULT_ADDR", "http://"+closedPort(t))
	t.Setenv("VAULT_TOKEN", "test")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	pump, sig := fx+"/firmware/infusion-pump-2.4.0.bin", fx+"/sig/infusion-pump-2.4.0.bin.sig"
	for _, ref := range []string{"awskms://" + closedPort(t) + "/alias/wardgate", "hashivault://wardgate"} {
		t.Run(strings.Split(ref, ":")[0], func(t *testing.T) {
			start := time.Now()
			code, out, errOut := run(t, "verify", "blob", pump, "--key", ref, "--signature", sig)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "wardgate: key "+ref+": ") {
				t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if d := time.Since(start); d > 45*time.Second {
				t.Fatalf("verify took %s", d)
			}
			code, _, errOut = run(t, "attest", "log", "--state", t.TempDir(), "--signing-key", ref)
			if code != 2 || !strings.HasPrefix(errOut, "wardgate: signing key "+ref+": ") {
				t.Fatalf("signing key: exit %d, stderr %q", code, errOut)
			}
		})
	}
}
