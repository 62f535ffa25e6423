package tuf

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// MaxRootBytes bounds a pinned root.json (go-tuf's own limit for roots).
const MaxRootBytes = 512000

// Limits bound the work of one lookup.
type Limits struct {
	// TotalBytes is how much metadata one lookup reads from its source.
	TotalBytes int64
	// MaxDelegations is how many targets roles one lookup visits.
	MaxDelegations int
	// MaxRootRotations is how many new root versions one lookup accepts.
	MaxRootRotations int64
}

// DefaultLimits are the limits a Client has unless WithLimits says
// otherwise.
var DefaultLimits = Limits{TotalBytes: 64 << 20, MaxDelegations: 32, MaxRootRotations: 32}

// Client looks up release targets of one vendor. Build it once per vendor
// (it parses and checks the pinned root) and use it for every release;
// it is safe for concurrent use (the State serialises lookups of a vendor).
type Client struct {
	vendor      string
	root        []byte
	rootVersion int64
	state       State
	limits      Limits
}

// Option configures a Client.
type Option func(*Client) error

// WithLimits replaces DefaultLimits; every limit must be positive.
func WithLimits(l Limits) Option {
	return func(c *Client) error {
		if l.TotalBytes <= 0 || l.MaxDelegations <= 0 || l.MaxRootRotations <= 0 {
			return fmt.Errorf("tuf: limits must be positive, got %+v", l)
		}
		c.limits = l
		return nil
	}
}

// NewClient checks the vendor's pinned root (the initial root.json a
// client trusts: TUF metadata of spec version 1, signed by a threshold of
// its own root keys) and returns a client keeping its trusted metadata in
// state.
func NewClient(vendor string, root []byte, state State, opts ...Option) (*Client, error) {
	if state == nil {
		return nil, errors.New("tuf: nil state")
	}
	c := &Client{vendor: vendor, root: root, state: state, limits: DefaultLimits}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if len(root) > MaxRootBytes {
		return nil, fmt.Errorf("tuf: root of %s: larger than %d bytes", vendor, MaxRootBytes)
	}
	if err := checkShape(root); err != nil {
		return nil, fmt.Errorf("tuf: root of %s: %w", vendor, err)
	}
	v, err := rootVersion(root)
	if err != nil {
		return nil, fmt.Errorf("tuf: root of %s: %w", vendor, err)
	}
	if err := safe(func() error { _, err := trustedmetadata.New(root); return err }); err != nil {
		return nil, fmt.Errorf("tuf: root of %s: %w", vendor, err)
	}
	c.rootVersion = v
	return c, nil
}

// Vendor is the vendor the client looks up releases of.
func (c *Client) Vendor() string { return c.vendor }

func rootVersion(b []byte) (int64, error) {
	var v int64
	err := safe(func() error {
		r, err := metadata.Root().FromBytes(b)
		if err != nil {
			return err
		}
		if r.Signed.Type != metadata.ROOT {
			return fmt.Errorf("_type is %q, want root", r.Signed.Type)
		}
		v = r.Signed.Version
		return nil
	})
	return v, err
}

// safe runs fn, turning a panic in go-tuf (which v2.3.0 has on some
// malformed documents) into an error.
func safe(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &sourceError{file: "metadata", msg: fmt.Sprintf("go-tuf could not process it: %v", p)}
		}
	}()
	return fn()
}

// Role is one piece of TUF metadata a lookup relied on.
type Role struct {
	// Name is the role: root, timestamp, snapshot, targets or a delegated
	// role's name.
	Name string `json:"name"`
	// Version is the metadata's version.
	Version int64 `json:"version"`
	// Expires is when it expires.
	Expires time.Time `json:"expires"`
	// Digest is "sha256:<hex>" of the file as kept.
	Digest string `json:"digest,omitempty"`
}

// Release is the outcome of a lookup: the target as the vendor's
// metadata describes it, or why it could not be had.
type Release struct {
	// Target is the path looked up, PRODUCT/FILENAME.
	Target string
	// Reason is empty when the metadata verified, lists the target, and
	// (after CheckFile) the artifact matches it.
	Reason Reason
	// Detail says what went wrong, in go-tuf's words where it decided.
	Detail string
	// Version and DeviceClasses are the target's custom fields.
	Version       string
	DeviceClasses []string
	// Length and Hashes (algorithm to hex) are the target's.
	Length int64
	Hashes map[string]string
	// Expires is the earliest expiry of the metadata relied on; zero when
	// none was loaded.
	Expires time.Time
	// Roles are the metadata the lookup relied on (or had loaded when it
	// failed): root, timestamp, snapshot, then targets roles by name.
	Roles []Role

	target *metadata.TargetFiles
}

// OK is true when nothing is wrong.
func (r *Release) OK() bool { return r.Reason == "" }

func (r *Release) fail(reason Reason, format string, args ...any) {
	r.Reason, r.Detail = reason, fmt.Sprintf(format, args...)
}

// custom is the custom field of a wardgate release target.
type custom struct {
	Version       string   `json:"version"`
	DeviceClasses []string `json:"deviceClasses"`
}

// Lookup runs go-tuf's client workflow against src for one target path,
// as of now, starting from the vendor's trusted metadata in the state (the
// pinned root the first time, or when the pinned root is newer than the
// state's), and keeps in the state whatever metadata go-tuf verified, even
// when the lookup then fails (as a TUF client does). A Release is returned
// for every outcome the metadata decides, with Reason set when it is not
// backed; the error is for a state or temporary directory that cannot be
// used, or a cancelled context. A nil src is ReasonMissing.
func (c *Client) Lookup(ctx context.Context, src Source, target string, now time.Time) (*Release, error) {
	rel := &Release{Target: target}
	if src == nil {
		rel.fail(ReasonMissing, "no TUF metadata was given for %s, which pins a TUF root", c.vendor)
		return rel, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err := c.state.Update(ctx, c.vendor, func(have Files) (Files, error) {
		return c.refresh(have, src, target, now, rel)
	})
	if err != nil {
		return nil, err
	}
	return rel, nil
}

func (c *Client) refresh(have Files, src Source, target string, now time.Time, rel *Release) (Files, error) {
	root := c.root
	if b, ok := have["root.json"]; ok {
		v, err := rootVersion(b)
		if err != nil {
			return nil, fmt.Errorf("tuf state of %s: root.json: %w", c.vendor, err)
		}
		if v >= c.rootVersion {
			root = b
		}
	}
	tmp, err := os.MkdirTemp("", "wardgate-tuf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for name, b := range have {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	cfg, err := config.New(remoteBase, root)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = tmp
	cfg.LocalTargetsDir = filepath.Join(tmp, "targets")
	cfg.Fetcher = &lookupFetcher{src: src, budget: c.limits.TotalBytes}
	cfg.MaxDelegations = c.limits.MaxDelegations
	cfg.MaxRootRotations = c.limits.MaxRootRotations
	var tf *metadata.TargetFiles
	var ts trustedmetadata.TrustedMetadata
	lerr := safe(func() error {
		up, err := updater.New(cfg)
		if err != nil {
			return err
		}
		up.UnsafeSetRefTime(now)
		tf, err = up.GetTargetInfo(target)
		ts = up.GetTrustedMetadataSet()
		return err
	})
	out, err := readFiles(tmp)
	if err != nil {
		return nil, err
	}
	rel.Roles, rel.Expires = relied(ts, out)
	var ioErr *ioError
	var pathErr *fs.PathError
	var linkErr *os.LinkError
	switch {
	case errors.As(lerr, &ioErr), errors.As(lerr, &pathErr), errors.As(lerr, &linkErr):
		return nil, fmt.Errorf("tuf %s: %w", c.vendor, lerr)
	case lerr != nil:
		rel.fail(classify(lerr), "%s", describe(lerr))
		if rel.Reason != ReasonExpired {
			rel.Expires = time.Time{}
		}
		return out, nil
	}
	if err := thresholds(ts); err != nil {
		rel.fail(ReasonUntrusted, "%v", err)
		rel.Expires = time.Time{}
		return out, nil
	}
	rel.target, rel.Length = tf, tf.Length
	rel.Hashes = map[string]string{}
	for alg, h := range tf.Hashes {
		rel.Hashes[alg] = hex.EncodeToString(h)
	}
	var cu custom
	switch {
	case tf.Custom == nil:
		rel.fail(ReasonUntrusted, "target %s has no custom field; wardgate needs {\"version\": ..., \"deviceClasses\": [...]}", target)
	case json.Unmarshal(*tf.Custom, &cu) != nil:
		rel.fail(ReasonUntrusted, "target %s: custom is not {\"version\": STRING, \"deviceClasses\": [STRING...]}", target)
	case strings.TrimSpace(cu.Version) == "":
		rel.fail(ReasonUntrusted, "target %s does not say its version (custom.version)", target)
	case slices.Contains(cu.DeviceClasses, ""):
		rel.fail(ReasonUntrusted, "target %s names an empty device class", target)
	default:
		rel.Version, rel.DeviceClasses = cu.Version, cu.DeviceClasses
	}
	return out, nil
}

// thresholds refuses a role whose threshold is below 1: go-tuf v2.3.0
// counts zero signatures as meeting a threshold of zero.
func thresholds(ts trustedmetadata.TrustedMetadata) error {
	if ts.Root != nil {
		for name, r := range ts.Root.Signed.Roles {
			if r == nil || r.Threshold < 1 {
				return fmt.Errorf("root gives role %s a threshold below 1", name)
			}
		}
	}
	for name, t := range ts.Targets {
		d := t.Signed.Delegations
		if d == nil {
			continue
		}
		for _, r := range d.Roles {
			if r.Threshold < 1 {
				return fmt.Errorf("%s delegates to %s with a threshold below 1", name, r.Name)
			}
		}
		if d.SuccinctRoles != nil && d.SuccinctRoles.Threshold < 1 {
			return fmt.Errorf("%s delegates to succinct roles with a threshold below 1", name)
		}
	}
	return nil
}

// relied lists the roles in the trusted set with their versions, expiries
// and file digests, and the earliest expiry.
func relied(ts trustedmetadata.TrustedMetadata, files Files) ([]Role, time.Time) {
	var roles []Role
	add := func(name string, version int64, expires time.Time) {
		r := Role{Name: name, Version: version, Expires: expires.UTC()}
		if b, ok := files[url.PathEscape(name)+".json"]; ok {
			sum := sha256.Sum256(b)
			r.Digest = "sha256:" + hex.EncodeToString(sum[:])
		}
		roles = append(roles, r)
	}
	if ts.Root != nil {
		add(metadata.ROOT, ts.Root.Signed.Version, ts.Root.Signed.Expires)
	}
	if ts.Timestamp != nil {
		add(metadata.TIMESTAMP, ts.Timestamp.Signed.Version, ts.Timestamp.Signed.Expires)
	}
	if ts.Snapshot != nil {
		add(metadata.SNAPSHOT, ts.Snapshot.Signed.Version, ts.Snapshot.Signed.Expires)
	}
	names := make([]string, 0, len(ts.Targets))
	for n := range ts.Targets {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		// "targets" first, then delegated roles by name
		return cmp.Or(cmp.Compare(boolInt(a != metadata.TARGETS), boolInt(b != metadata.TARGETS)), cmp.Compare(a, b))
	})
	for _, n := range names {
		add(n, ts.Targets[n].Signed.Version, ts.Targets[n].Signed.Expires)
	}
	var earliest time.Time
	for _, r := range roles {
		if earliest.IsZero() || r.Expires.Before(earliest) {
			earliest = r.Expires
		}
	}
	return roles, earliest
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CheckFile compares the artifact at path with the target's length and
// hashes (go-tuf's VerifyLengthHashes, over the file mapped read-only, not
// copied). A mismatch sets ReasonDigestMismatch; the error is for a file
// that cannot be read. It does nothing unless the lookup found the target.
func (r *Release) CheckFile(path string) error {
	if r.target == nil || !r.OK() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() != r.Length {
		r.fail(ReasonDigestMismatch, "the artifact is %d bytes, target %s is %d", fi.Size(), r.Target, r.Length)
		return nil
	}
	var data []byte
	if fi.Size() > 0 {
		b, unmap, err := mapFile(f, fi.Size())
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		defer unmap()
		data = b
	}
	if err := r.target.VerifyLengthHashes(data); err != nil {
		r.fail(ReasonDigestMismatch, "the artifact does not match target %s: %v", r.Target, err)
	}
	return nil
}
