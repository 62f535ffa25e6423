// Package sbom reads, compares and generates software bills of materials for
// device updates: what changed between two releases (Diff), and whether a
// vendor's SBOM agrees with what is really inside the artifact (Drift).
//
// Every input format is normalised into one model, Document and Component,
// so the comparisons never see CycloneDX or SPDX types:
//
//   - CycloneDX JSON and XML, spec 1.2 to 1.7, are read with cyclonedx-go;
//     JSON first goes through a purpose-built one-pass reader that decodes
//     only what the model keeps and checks everything else against
//     cyclonedx-go's types, handing anything it does not handle exactly to
//     cyclonedx-go (see cyclonedx_fast.go; a differential fuzz test holds
//     the two to the same Document). Decoded strings share the document's
//     memory.
//   - SPDX 2.2 and 2.3, JSON and tag-value, are read with spdx/tools-golang,
//     the reader under syft's own SPDX decoders. Syft's decoders are not used
//     directly because they convert into syft's package model, which has no
//     place for package checksums or the supplier, and both are compared here.
//
// A component's identity is its package URL without the version and without
// the qualifiers that do not change what the package is (see Identity);
// components without a purl are identified by type, group and name. Versions
// are compared with the rules of the ecosystem named by the purl type (see
// CompareVersions).
//
// Generate runs syft as a library on a directory, a file, an OCI layout or
// archive, a docker archive, a registry image, or a firmware image, which
// package firmware first unpacks with limits against traversal, links and
// archive bombs (compressed streams, tar, cpio, zip, squashfs, ext4, FAT,
// ISO 9660, U-Boot and FIT images, payloads behind a vendor header); the
// CycloneDX SBOM then says in which layer of the firmware each component
// was found. syft itself never unpacks an archive to disk (see scan).
// Nothing reaches the network except the registry named by a registry:
// source.
//
// Imports: cyclonedx-go, spdx/tools-golang, syft, anchore/packageurl-go and
// the version libraries syft brings. Must not import: net/http server types,
// cobra, or any wardgate package other than evidence and firmware.
package sbom
