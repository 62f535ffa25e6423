package ocisign

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ggcrstatic "github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	cempty "github.com/sigstore/cosign/v2/pkg/oci/empty"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Media and artifact types and annotations used when storing attachments.
const (
	// BundleMediaType is the media type (and referrer artifact type) of a
	// Sigstore bundle v0.3.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// CosignSignPredicateType is what cosign sign --new-bundle-format signs.
	CosignSignPredicateType = ctypes.CosignSignPredicateType

	emptyMediaType     = "application/vnd.oci.empty.v1+json"
	refNameAnnotation  = "org.opencontainers.image.ref.name"
	kindAnnotation     = "kind"
	kindImage          = "dev.cosignproject.cosign/image"
	kindSignatures     = "dev.cosignproject.cosign/sigs"
	kindAttestations   = "dev.cosignproject.cosign/atts"
	bundleMediaTypeV01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
)

// SignImageClassic signs an image digest as `cosign sign --key` does: the
// simple-signing payload naming d, signed by s, as a .sig layer.
func SignImageClassic(ctx context.Context, d name.Digest, s signature.Signer) (oci.Signature, error) {
	pl, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("simple-signing payload: %w", err)
	}
	sig, err := s.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return nil, fmt.Errorf("sign payload: %w", err)
	}
	return static.NewSignature(pl, base64.StdEncoding.EncodeToString(sig))
}

// SignImageKeyless signs an image digest as keyless `cosign sign` does,
// with vs standing in for Fulcio, Rekor and a timestamp authority: the
// .sig layer carries the Fulcio-style certificate and chain, the Rekor
// bundle (entry and signed entry timestamp) and an RFC 3161 timestamp.
func SignImageKeyless(ctx context.Context, d name.Digest, vs *ca.VirtualSigstore, identity, issuer string) (oci.Signature, error) {
	pl, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("simple-signing payload: %w", err)
	}
	ent, err := vs.Sign(identity, issuer, pl)
	if err != nil {
		return nil, fmt.Errorf("virtual sigstore sign: %w", err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		return nil, err
	}
	ms := sc.MessageSignatureContent()
	if ms == nil {
		return nil, errors.New("virtual sigstore returned no message signature")
	}
	opts, err := keylessOptions(vs, ent)
	if err != nil {
		return nil, err
	}
	return static.NewSignature(pl, base64.StdEncoding.EncodeToString(ms.Signature()), opts...)
}

// keylessOptions turns a VirtualSigstore entity into cosign's layer
// options: certificate and chain, Rekor bundle, RFC 3161 timestamp.
func keylessOptions(vs *ca.VirtualSigstore, ent *ca.TestEntity) ([]static.Option, error) {
	vc, err := ent.VerificationContent()
	if err != nil {
		return nil, err
	}
	cert := vc.Certificate()
	if cert == nil {
		return nil, errors.New("virtual sigstore returned no certificate")
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(cert)
	if err != nil {
		return nil, err
	}
	opts := []static.Option{static.WithCertChain(certPEM, nil)}
	entries, err := logEntries(vs, ent)
	if err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		tle := entries[0]
		opts = append(opts, static.WithBundle(&cbundle.RekorBundle{
			SignedEntryTimestamp: tle.GetInclusionPromise().GetSignedEntryTimestamp(),
			Payload: cbundle.RekorPayload{
				Body:           base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()),
				IntegratedTime: tle.GetIntegratedTime(),
				LogIndex:       tle.GetLogIndex(),
				LogID:          hex.EncodeToString(tle.GetLogId().GetKeyId()),
			},
		}))
	}
	ts, err := ent.Timestamps()
	if err != nil {
		return nil, err
	}
	if len(ts) > 0 {
		opts = append(opts, static.WithRFC3161Timestamp(&cbundle.RFC3161Timestamp{SignedRFC3161Timestamp: ts[0]}))
	}
	return opts, nil
}

// logEntries returns the entity's Rekor entries as complete protobuf log
// entries. sigstore-go's tlog.Entry keeps the signed entry timestamp and
// the entry kind to itself, so the promise is re-signed with the virtual
// Rekor key over the same payload (what VirtualSigstore itself signed) and
// the kind and version are read from the canonicalized body.
func logEntries(vs *ca.VirtualSigstore, ent *ca.TestEntity) ([]*protorekor.TransparencyLogEntry, error) {
	entries, err := ent.TlogEntries()
	if err != nil {
		return nil, err
	}
	var out []*protorekor.TransparencyLogEntry
	for _, e := range entries {
		tle := proto.Clone(e.TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
		set, err := vs.RekorSignPayload(tlog.RekorPayload{
			Body:           base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()),
			IntegratedTime: tle.GetIntegratedTime(),
			LogIndex:       tle.GetLogIndex(),
			LogID:          hex.EncodeToString(tle.GetLogId().GetKeyId()),
		})
		if err != nil {
			return nil, fmt.Errorf("sign entry timestamp: %w", err)
		}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
		var kv struct {
			Kind       string `json:"kind"`
			APIVersion string `json:"apiVersion"`
		}
		if err := json.Unmarshal(tle.GetCanonicalizedBody(), &kv); err != nil {
			return nil, fmt.Errorf("log entry body: %w", err)
		}
		tle.KindVersion = &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion}
		out = append(out, tle)
	}
	return out, nil
}

// Statement builds the in-toto statement cosign attest makes for an image:
// predicate type predicateType, the predicate JSON, subject d.
func Statement(d name.Digest, predicateType string, predicate []byte) ([]byte, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, err
	}
	st, err := attestation.GenerateStatement(attestation.GenerateOpts{
		Predicate: bytes.NewReader(predicate),
		Type:      predicateType,
		Digest:    h.Hex,
		Repo:      d.Context().String(),
	})
	if err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	return json.Marshal(st)
}

// AttestImage attests an image digest as `cosign attest --key` does: an
// in-toto statement about d in a DSSE envelope signed by s, as a .att layer.
func AttestImage(ctx context.Context, d name.Digest, predicateType string, predicate []byte, s signature.Signer) (oci.Signature, error) {
	st, err := Statement(d, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	env, err := sigdsse.WrapSigner(s, ctypes.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		return nil, fmt.Errorf("sign statement: %w", err)
	}
	return static.NewAttestation(env, static.WithLayerMediaType(ctypes.DssePayloadType))
}

// SignBundle signs an image digest as `cosign sign --key
// --new-bundle-format` does: a CosignSignPredicateType statement about d,
// signed in DSSE, in a Sigstore bundle v0.3 (no log entry).
func SignBundle(ctx context.Context, d name.Digest, s signature.Signer) ([]byte, error) {
	return AttestBundle(ctx, d, CosignSignPredicateType, []byte(`{}`), s)
}

// AttestBundle attests an image digest as `cosign attest --key
// --new-bundle-format` does: the statement in DSSE in a Sigstore bundle,
// made with cosign's MakeNewBundle.
func AttestBundle(ctx context.Context, d name.Digest, predicateType string, predicate []byte, s signature.Signer) ([]byte, error) {
	st, err := Statement(d, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	env, err := sigdsse.WrapSigner(s, ctypes.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		return nil, fmt.Errorf("sign statement: %w", err)
	}
	pub, err := s.PublicKey()
	if err != nil {
		return nil, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, err
	}
	return cbundle.MakeNewBundle(pub, nil, st, env, pubPEM, nil)
}

// KeylessAttestBundle is AttestBundle keyless, with vs as Fulcio, Rekor
// and the timestamp authority: a Sigstore bundle v0.1 (the log entry has a
// signed entry timestamp, not an inclusion proof) with the certificate,
// the log entry, an RFC 3161 timestamp and the DSSE envelope.
func KeylessAttestBundle(ctx context.Context, d name.Digest, predicateType string, predicate []byte, vs *ca.VirtualSigstore, identity, issuer string) ([]byte, error) {
	st, err := Statement(d, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	ent, err := vs.Attest(identity, issuer, st)
	if err != nil {
		return nil, fmt.Errorf("virtual sigstore attest: %w", err)
	}
	vc, err := ent.VerificationContent()
	if err != nil {
		return nil, err
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		return nil, err
	}
	ec := sc.EnvelopeContent()
	if ec == nil || vc.Certificate() == nil {
		return nil, errors.New("virtual sigstore returned no envelope or certificate")
	}
	raw := ec.RawEnvelope()
	env := &protodsse.Envelope{Payload: st, PayloadType: raw.PayloadType}
	for _, s := range raw.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, err
		}
		env.Signatures = append(env.Signatures, &protodsse.Signature{Sig: sig, Keyid: s.KeyID})
	}
	pb := &protobundle.Bundle{
		MediaType: bundleMediaTypeV01,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env},
	}
	entries, err := logEntries(vs, ent)
	if err != nil {
		return nil, err
	}
	pb.VerificationMaterial.TlogEntries = entries
	ts, err := ent.Timestamps()
	if err != nil {
		return nil, err
	}
	if len(ts) > 0 {
		tvd := &protobundle.TimestampVerificationData{}
		for _, t := range ts {
			tvd.Rfc3161Timestamps = append(tvd.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: t})
		}
		pb.VerificationMaterial.TimestampVerificationData = tvd
	}
	if _, err := sgbundle.NewBundle(pb); err != nil {
		return nil, fmt.Errorf("keyless bundle: %w", err)
	}
	return protojson.Marshal(pb)
}

// Attachments are what is stored next to one image.
type Attachments struct {
	// Signatures are layers of the sha256-HEX.sig image.
	Signatures []oci.Signature
	// Attestations are layers of the sha256-HEX.att image.
	Attestations []oci.Signature
	// Bundles are Sigstore bundles (JSON), each stored as an OCI 1.1
	// referrer of the image.
	Bundles [][]byte
}

// Push stores the attachments for the image d in its repository: the .sig
// and .att images with cosign's own writers (appending to what is there),
// and one referrer manifest per bundle.
func Push(ctx context.Context, d name.Digest, a Attachments, opts ...remote.Option) error {
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts...)
	copts := []ociremote.Option{ociremote.WithRemoteOptions(ropts...)}
	if len(a.Signatures) > 0 || len(a.Attestations) > 0 {
		se, err := ociremote.SignedEntity(d, copts...)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", d, err)
		}
		for _, s := range a.Signatures {
			if se, err = cmutate.AttachSignatureToEntity(se, s); err != nil {
				return fmt.Errorf("attach signature: %w", err)
			}
		}
		for _, s := range a.Attestations {
			if se, err = cmutate.AttachAttestationToEntity(se, s); err != nil {
				return fmt.Errorf("attach attestation: %w", err)
			}
		}
		if len(a.Signatures) > 0 {
			if err := ociremote.WriteSignatures(d.Repository, se, copts...); err != nil {
				return fmt.Errorf("write signatures: %w", err)
			}
		}
		if len(a.Attestations) > 0 {
			if err := ociremote.WriteAttestations(d.Repository, se, copts...); err != nil {
				return fmt.Errorf("write attestations: %w", err)
			}
		}
	}
	if len(a.Bundles) == 0 {
		return nil
	}
	subject, err := remote.Head(d, ropts...)
	if err != nil {
		return fmt.Errorf("head %s: %w", d, err)
	}
	for _, b := range a.Bundles {
		r, err := Referrer(*subject, b)
		if err != nil {
			return err
		}
		rd, err := r.Digest()
		if err != nil {
			return err
		}
		if err := remote.Write(d.Context().Digest(rd.String()), r, ropts...); err != nil {
			return fmt.Errorf("write referrer: %w", err)
		}
	}
	return nil
}

// Referrer builds the OCI 1.1 referrer manifest cosign writes for a
// Sigstore bundle: artifact type BundleMediaType, the empty config, the
// bundle as the one layer, and subject the image. go-containerregistry's
// mutate package cannot set a manifest's artifactType (v0.22), so the
// manifest is a v1.Manifest made into a v1.Image with ggcr's partial
// package, which serves the config and layer for remote.Write and layouts.
func Referrer(subject v1.Descriptor, bundleJSON []byte) (v1.Image, error) {
	layer := ggcrstatic.NewLayer(bundleJSON, BundleMediaType)
	config := ggcrstatic.NewLayer([]byte(`{}`), emptyMediaType)
	ld, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	cd, err := partial.Descriptor(config)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  BundleMediaType,
		Config:        *cd,
		Layers:        []v1.Descriptor{*ld},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations:   map[string]string{"dev.sigstore.bundle.content": "dsse-envelope"},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: raw, config: config, layer: layer})
}

// artifact is a partial.CompressedImageCore for a referrer manifest.
type artifact struct {
	manifest      []byte
	config, layer v1.Layer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return []byte(`{}`), nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range []v1.Layer{a.layer, a.config} {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("referrer has no blob %s", h)
}

// WriteLayout writes img and its attachments as an OCI image layout in dir
// (created if needed; its index.json is replaced). The image is named tag
// (org.opencontainers.image.ref.name); the .sig and .att images are named
// by cosign's tags, sha256-HEX.sig and sha256-HEX.att, and also carry the
// kind annotations of cosign's own layout writer, so `cosign verify
// --local-image` reads the same directory; bundles become referrers.
func WriteLayout(dir string, img v1.Image, tag string, a Attachments) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: tag, kindAnnotation: kindImage})); err != nil {
		return fmt.Errorf("layout %s: write image: %w", dir, err)
	}
	h, err := img.Digest()
	if err != nil {
		return err
	}
	for _, set := range []struct {
		sigs   []oci.Signature
		suffix string
		kind   string
	}{{a.Signatures, ".sig", kindSignatures}, {a.Attestations, ".att", kindAttestations}} {
		if len(set.sigs) == 0 {
			continue
		}
		s, err := cmutate.AppendSignatures(cempty.Signatures(), false, set.sigs...)
		if err != nil {
			return fmt.Errorf("layout %s: %w", dir, err)
		}
		ann := map[string]string{refNameAnnotation: h.Algorithm + "-" + h.Hex + set.suffix, kindAnnotation: set.kind}
		if err := p.AppendImage(s, layout.WithAnnotations(ann)); err != nil {
			return fmt.Errorf("layout %s: write %s: %w", dir, set.suffix, err)
		}
	}
	if len(a.Bundles) == 0 {
		return nil
	}
	subject, err := partial.Descriptor(img)
	if err != nil {
		return err
	}
	for _, b := range a.Bundles {
		r, err := Referrer(*subject, b)
		if err != nil {
			return err
		}
		if err := p.AppendImage(r); err != nil {
			return fmt.Errorf("layout %s: write referrer: %w", dir, err)
		}
	}
	return nil
}

// WriteArchive writes the OCI layout in dir as a plain tar at dst (the
// oci-archive form): regular files only, names relative to dir, in lexical
// order with zero times, so the same layout gives the same bytes.
func WriteArchive(dst, dir string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", dst, err)
	}
	return nil
}

// LoadSigner reads an unencrypted PEM private key (as the fixture
// generator writes them) and returns a cosign-style SHA-256 signer.
func LoadSigner(path string) (signature.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(b, cryptoutils.SkipPassword)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return signature.LoadSigner(priv, crypto.SHA256)
}

// PushSignedImage pushes a small random image to tag (registry/repo:tag)
// and signs it the classic cosign way with s; it returns the image's
// digest reference.
func PushSignedImage(ctx context.Context, tag string, s signature.Signer, opts ...remote.Option) (name.Digest, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return name.Digest{}, err
	}
	return PushSigned(ctx, tag, img, s, opts...)
}

// PackageImage is a one-layer image holding an Alpine package database
// with one package (busybox), so a scan of it finds a component.
func PackageImage() (v1.Image, error) {
	layer, err := crane.Layer(map[string][]byte{
		"etc/os-release":       []byte("ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n"),
		"lib/apk/db/installed": []byte("P:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\n"),
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(empty.Image, layer)
}

// PushSigned pushes img to tag (registry/repo:tag) and signs it the
// classic cosign way with s; it returns the image's digest reference.
func PushSigned(ctx context.Context, tag string, img v1.Image, s signature.Signer, opts ...remote.Option) (name.Digest, error) {
	ref, err := name.ParseReference(tag)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(ref, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return name.Digest{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	d := ref.Context().Digest(h.String())
	sig, err := SignImageClassic(ctx, d, s)
	if err != nil {
		return name.Digest{}, err
	}
	return d, Push(ctx, d, Attachments{Signatures: []oci.Signature{sig}}, opts...)
}
