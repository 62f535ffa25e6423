// Package vuln matches SBOM components against an offline vulnerability
// database: OSV records (https://ossf.github.io/osv-schema/), as osv.dev
// exports them per ecosystem (a zip of JSON files) or as a directory of
// JSON files.
//
// Import reads the records, checks every one, and writes them to one file
// in the state directory; wardgate never downloads a database. Open loads
// that file once; DB.Match is then called per SBOM. Which records affect a
// component is decided by osv-scalibr's OSV matcher
// (enricher/vulnmatch/osvlocal.VulnerabilitiesAffectingPackage and the
// per-ecosystem version orderings of its semantic package); this package
// only indexes records by package name, converts package URLs into
// osv-scalibr packages, and rates severity from the records' CVSS vectors
// with github.com/pandatix/go-cvss.
//
// The database's age is the time since the newest record was modified:
// an export cannot be newer than its newest record, so the age is never
// understated.
//
// vuln imports osv-scalibr, the OSV schema bindings, go-cvss and the
// standard library, and no other wardgate package (gate converts a Result
// into the evidence); it must not import net/http or cobra (TestDeps).
package vuln
