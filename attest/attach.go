package attest

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
)

// Attach stores a signed verdict (a DSSE envelope) in the registry next to
// the image it is about, the way cosign stores attestations: a layer of the
// image's sha256-<digest>.att manifest, written with cosign's own writers.
// `cosign verify-attestation --type https://slsa.dev/verification_summary/v1
// --key SERVICE.pub` and `wardgate verify attestation --image` read it.
func Attach(ctx context.Context, image name.Digest, envelope []byte, opts ...remote.Option) error {
	att, err := static.NewAttestation(envelope, static.WithLayerMediaType(ctypes.DssePayloadType))
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts...)
	copts := []ociremote.Option{ociremote.WithRemoteOptions(ropts...)}
	se, err := ociremote.SignedEntity(image, copts...)
	if err != nil {
		return fmt.Errorf("attach to %s: %w", image, err)
	}
	if se, err = cmutate.AttachAttestationToEntity(se, att); err != nil {
		return fmt.Errorf("attach to %s: %w", image, err)
	}
	if err := ociremote.WriteAttestations(image.Repository, se, copts...); err != nil {
		return fmt.Errorf("attach to %s: %w", image, err)
	}
	return nil
}
