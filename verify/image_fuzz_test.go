package verify

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/sigstore/cosign/v2/pkg/oci/static"
)

// FuzzCosignAnnotations: a classic cosign signature layer's annotations,
// as any registry may serve them, either become a bundle or a malformed
// error; never a panic.
func FuzzCosignAnnotations(f *testing.F) {
	f.Add("MEUCIQ==", "", `{"SignedEntryTimestamp":"AAAA","Payload":{"body":"e30=","integratedTime":1,"logIndex":1,"logID":"00"}}`, "")
	f.Add("AAAA", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "", `{"SignedRFC3161Timestamp":"AAAA"}`)
	f.Add("", "", "", "")
	digest := sha256.Sum256([]byte("payload"))
	f.Fuzz(func(t *testing.T, sig, cert, rekor, tsa string) {
		ann := map[string]string{}
		for k, v := range map[string]string{static.SignatureAnnotationKey: sig, static.CertificateAnnotationKey: cert,
			static.BundleAnnotationKey: rekor, static.RFC3161TimestampAnnotationKey: tsa} {
			if v != "" {
				ann[k] = v
			}
		}
		p, err := classicParsed(ann, digest[:])
		if err != nil {
			var m *malformedError
			if !errors.As(err, &m) {
				t.Fatalf("error is not malformed-signature: %T %v", err, err)
			}
			return
		}
		if p.b == nil {
			t.Fatal("no bundle and no error")
		}
	})
}
