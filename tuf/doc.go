// Package tuf checks a release against its vendor's signed release
// metadata, The Update Framework's way: the vendor, not the caller, says
// which file is which version of which product, for which device classes,
// until when.
//
// The whole TUF client workflow (root rotation, signature thresholds,
// expiry, version rollback, snapshot consistency, delegations) is go-tuf's
// (github.com/theupdateframework/go-tuf/v2 metadata/updater, config and
// fetcher); this package writes none of it. It adds what wardgate needs
// around it:
//
//   - Source: a vendor repository read offline, from a local mirror
//     directory (DIR/metadata/…) or an uploaded archive. A file the source
//     does not have is a 404 to go-tuf. Every file is size-capped, shape
//     checked (UTF-8 JSON, a signed object with a _type, TUF spec version
//     1) before go-tuf parses it, and one lookup reads at most
//     Limits.TotalBytes.
//   - State: the trusted metadata a vendor's client has seen (the versions
//     last seen), kept across runs, so a repository rolled back to older
//     metadata, or frozen, is refused as TUF clients refuse it. DirState
//     keeps it in a directory (STATE/tuf/VENDOR/); MemState in memory.
//   - Client.Lookup: one target path, PRODUCT/FILENAME, looked up as of a
//     given time; the outcome is a Release with a stable reason code, never
//     a panic. Release.CheckFile compares the artifact with the target's
//     length and hashes with go-tuf's VerifyLengthHashes.
//
// Imports: go-tuf (metadata, updater, config, fetcher) and the standard
// library. Must not import other wardgate packages (evidence, policy,
// gate...), net/http server types, or cobra: the gate converts a Release
// into evidence at its boundary.
package tuf
