// Package console is wardgate's web console: what the security team and
// the auditors look at. `wardgate serve` mounts it under /ui on the API's
// listener (same TLS); pages are rendered on the server with html/template
// and work offline: every asset (one stylesheet, one small script that
// shows times in the viewer's zone) is embedded, the plots are SVG drawn on
// the server with gonum/plot, and nothing is loaded from another origin.
//
// Pages: the updates list (filters and sort in the URL, pages of
// PageSize), one update (verdict and reasons, signatures and signers, SBOM
// diff and drift, findings, blast radius, two plots with tables as their
// text alternative), findings, devices and one device, and the log (the
// signed checkpoint and each entry's inclusion proof, checked here, and
// the evidence pack export). docs/console.md shows each.
//
// Access: people sign in with an existing API token of the auditor or
// admin role; a session (kept in memory on the server, see session.go)
// is then held in an HttpOnly, SameSite=Strict cookie (Secure and
// __Host- over TLS). Every POST carries the session's CSRF token and must
// come from the console's own origin (net/http's CrossOriginProtection).
// The Content-Security-Policy allows scripts, styles and images from the
// console's origin only, and no inline script.
//
// Data comes through the Data interface (data.go), one small interface
// per page family; console/adapter implements it over today's stores.
//
// Imports: evidence, policy (types), attest (checkpoint and envelope
// checks), gonum/plot. Must not import: server, gate, store, cobra, cmd/.
package console
