// Package egress reads device network telemetry and joins it with the
// fleet's update installations to flag compromised updates.
//
// It has three layers:
//
//   - Streaming parsers (Scan) for Microsoft Defender DeviceNetworkEvents
//     (JSON Lines and CSV), Zeek conn.log (TSV, including IoT-23's
//     space-separated tail columns, and JSON) and OCSF Network Activity
//     (class 4001) JSON. They read line by line in constant memory, count
//     malformed lines with their first line numbers, and never stop at one.
//   - Hunt, the exfiltration-volume hunting rule run straight over files
//     with a purpose-built Defender JSON scanner on every core, nothing
//     stored; memory is bounded by the distinct (device, URL, hour) keys.
//   - The fleet model (Inventory, Installation, Config) and Analyzer,
//     which learns a per-class baseline (destinations and hourly volume),
//     raises findings with stable codes (Code) and blames an update only
//     for what its devices do differently from comparable devices of the
//     same class without it, over the same period (Contrast: exact tests
//     at each onset and over the period); behaviour shared by devices
//     with and without an update is a fleet-change notice about the
//     class. An update's risk state (clean, suspicious, quarantined) is
//     converted to the evidence document's fleet section by Report.Fleet.
//
// Storage is behind the small Store interface; the store package keeps
// events and installations (store/sqlite on SQLite).
//
// Imports: the standard library, golang.org/x/net/publicsuffix (which
// brings net/http/cookiejar for an interface, nothing more),
// gonum.org/v1/gonum/stat/combin (log binomial coefficients for the exact
// tests) and wardgate/evidence. Must not import net/http itself, cobra,
// wardgate/server, or a storage driver (that lives in store/sqlite);
// TestDeps checks it.
package egress
