package gate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/trust"
	"github.com/wardgate/wardgate/tuf"
)

// vendorTUF is a vendor's TUF client, built once from the pinned root, and
// its configured mirror.
type vendorTUF struct {
	client *tuf.Client
	mirror string // "" when none is configured
}

// WithTUFState keeps the vendors' trusted TUF metadata in s (the CLI and
// the server use a tuf.DirState in the state directory, so a rolled-back
// or frozen repository is refused across runs). The default keeps it in
// memory, for the life of the Gate.
func WithTUFState(s tuf.State) Option {
	return func(g *Gate) error {
		if s == nil {
			return errors.New("gate: nil TUF state")
		}
		g.tufState = s
		return nil
	}
}

// buildTUF makes one TUF client per vendor that pins a root.
func (g *Gate) buildTUF(cfg *trust.Config) error {
	if g.tufState == nil {
		g.tufState = tuf.NewMemState()
	}
	g.tuf = map[string]vendorTUF{}
	for _, name := range cfg.VendorNames() {
		t := cfg.Vendors[name].TUF
		if t == nil {
			continue
		}
		c, err := tuf.NewClient(name, t.RootJSON, g.tufState)
		if err != nil {
			return fmt.Errorf("gate: %s: %w", t.Root, err)
		}
		g.tuf[name] = vendorTUF{client: c, mirror: t.Repository}
	}
	return nil
}

// PinsTUF reports whether the trust configuration pins a TUF root for the
// vendor: its releases' versions may then come from its TUF metadata.
func (g *Gate) PinsTUF(vendor string) bool {
	_, ok := g.tuf[vendor]
	return ok
}

// lookupRelease checks the update against its vendor's TUF metadata when
// the vendor pins a TUF root: the metadata given with the update, else the
// vendor's configured mirror. The target is PRODUCT/FILENAME. A version
// the caller did not give is the target's. The outcome, whatever it is,
// becomes evidence (u.release); the error is for a state or file that
// cannot be read.
func (g *Gate) lookupRelease(ctx context.Context, u *Update, now time.Time) error {
	vt, ok := g.tuf[u.Vendor]
	if !ok {
		if u.TUF != nil {
			return fmt.Errorf("TUF metadata was given for %s, but the trust configuration pins no TUF root for that vendor (vendors.%s.tuf.root)", u.Vendor, u.Vendor)
		}
		return nil
	}
	src := u.TUF
	if src == nil && vt.mirror != "" {
		src = tuf.Dir(vt.mirror)
	}
	target := u.Product + "/" + filepath.Base(u.Source)
	if u.Kind != evidence.KindBlob {
		u.release = &tuf.Release{Target: target, Reason: tuf.ReasonUnknownTarget,
			Detail: "TUF targets name firmware files; an image of a vendor that pins a TUF root cannot be matched with one"}
		return nil
	}
	rel, err := vt.client.Lookup(ctx, src, target, now)
	if err != nil {
		return fmt.Errorf("TUF metadata of %s: %w", u.Vendor, err)
	}
	if err := rel.CheckFile(u.Source); err != nil {
		return fmt.Errorf("TUF target %s: %w", target, err)
	}
	if u.Version == "" && rel.Version != "" {
		u.Version = rel.Version
	}
	u.release = rel
	return nil
}

// releaseEvidence puts what the vendor's TUF metadata says into the
// evidence: the tuf section, the expected digest, the metadata's expiry,
// and the target's device classes when the caller named none.
func releaseEvidence(ev *evidence.Evidence, rel *tuf.Release, callerClasses bool) {
	t := &evidence.TUF{Verified: rel.OK(), Reason: string(rel.Reason), Detail: rel.Detail, Target: rel.Target,
		Version: rel.Version, DeviceClasses: slices.Clone(rel.DeviceClasses), Roles: []evidence.TUFRole{}}
	for _, r := range rel.Roles {
		t.Roles = append(t.Roles, evidence.TUFRole{Name: r.Name, Version: r.Version, Expires: r.Expires, Digest: r.Digest})
	}
	ev.Metadata.TUF = t
	if h := rel.Hashes["sha256"]; h != "" {
		ev.Artifact.ExpectedDigest = "sha256:" + h
	}
	if !rel.Expires.IsZero() {
		e := rel.Expires
		ev.Metadata.Expires = &e
	}
	if !callerClasses && len(rel.DeviceClasses) > 0 {
		ev.Artifact.DeviceClasses = slices.Clone(rel.DeviceClasses)
	}
}

// releaseRefs are the TUF metadata a verdict relied on, for the VSA.
func releaseRefs(rel *tuf.Release) []attest.MetadataRef {
	if rel == nil {
		return nil
	}
	out := make([]attest.MetadataRef, 0, len(rel.Roles))
	for _, r := range rel.Roles {
		out = append(out, attest.MetadataRef{Role: r.Name, Version: r.Version, Digest: digestMap(r.Digest)})
	}
	return out
}
