package tuf_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wardgate/wardgate/internal/tufrepo"
	"github.com/wardgate/wardgate/tuf"
)

// fresh is a lookup with a state of its own (nothing seen before).
func (f *fixture) fresh(t testing.TB, src tuf.Source, target string, opts ...tuf.Option) *tuf.Release {
	t.Helper()
	c, err := tuf.NewClient(vendor, f.repo.RootJSON(), tuf.NewMemState(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.Lookup(t.Context(), src, target, f.now)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	return rel
}

func (f *fixture) file(name string) string { return filepath.Join(f.mirror, "metadata", name) }

func rewrite(t testing.TB, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Truncated, oversized, non-UTF-8 and malformed metadata is a deny with a
// reason, never a panic or an error.
func TestLookupMalformedMetadata(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		edit       func([]byte) []byte
		want       string
	}{
		{"truncated timestamp", "timestamp.json", func(b []byte) []byte { return b[:len(b)/2] }, "timestamp.json: not TUF metadata: unexpected end of JSON input"},
		{"oversized timestamp", "timestamp.json", func(b []byte) []byte { return append(b, bytes.Repeat([]byte(" "), 20000)...) }, "timestamp.json is larger than the 16384 bytes"},
		{"non-UTF-8 targets", "1.targets.json", func(b []byte) []byte { return bytes.Replace(b, []byte(`"_type"`), []byte("\"_type\xff\""), 1) }, "1.targets.json: not UTF-8"},
		{"signed is a list", "timestamp.json", func([]byte) []byte { return []byte(`{"signed": [], "signatures": []}`) }, `no "signed" object`},
		{"no _type", "1.snapshot.json", func([]byte) []byte { return []byte(`{"signed": {"spec_version": "1.0.31"}, "signatures": []}`) }, `no "_type"`},
		{"_type a number", "timestamp.json", func([]byte) []byte {
			return []byte(`{"signed": {"_type": 7, "spec_version": "1.0.31"}, "signatures": []}`)
		}, "cannot unmarshal number"},
		{"wrong type", "timestamp.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"_type": "timestamp"`), []byte(`"_type": "targets"`), 1)
		}, "expected metadata type timestamp, got - targets"},
		{"null", "timestamp.json", func([]byte) []byte { return []byte(`null`) }, `no "signed" object`},
		{"edited after signing", "1.targets.json", func(b []byte) []byte { return bytes.Replace(b, []byte(`"2.4.0"`), []byte(`"2.9.0"`), 1) }, "Verifying targets failed, not enough signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rewrite(t, f.file(tc.file), tc.edit)
			wantReason(t, f.fresh(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonUntrusted, tc.want)
		})
	}
}

// Metadata of another TUF specification version is refused even when
// correctly signed (go-tuf v2.3.0 does not check the version).
func TestLookupWrongSpecVersion(t *testing.T) {
	f := newFixture(t)
	f.repo.Timestamp.Signed.SpecVersion = "2.0.0"
	if err := f.repo.Publish(f.mirror); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.fresh(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonUntrusted, `timestamp.json: TUF specification version "2.0.0"; wardgate reads version 1`)
}

func TestLookupSymlinkInMirror(t *testing.T) {
	f := newFixture(t)
	moved := filepath.Join(t.TempDir(), "timestamp.json")
	if err := os.Rename(f.file("timestamp.json"), moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, f.file("timestamp.json")); err != nil {
		t.Skipf("symlinks: %v", err)
	}
	wantReason(t, f.fresh(t, tuf.Dir(f.mirror), pumpTarget), tuf.ReasonUntrusted, "timestamp.json: not a regular file")
}

func TestLookupByteBudget(t *testing.T) {
	f := newFixture(t)
	rel := f.fresh(t, tuf.Dir(f.mirror), pumpTarget, tuf.WithLimits(tuf.Limits{TotalBytes: 1500, MaxDelegations: 32, MaxRootRotations: 32}))
	wantReason(t, rel, tuf.ReasonUntrusted, "exceeds the byte budget of one lookup")
}

// delegate makes parent delegate to role (a role already made, or a new
// name) with the key k, for paths.
func delegate(parent *metadata.Metadata[metadata.TargetsType], role string, k *metadata.Key, threshold int, paths ...string) {
	if parent.Signed.Delegations == nil {
		parent.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	parent.Signed.Delegations.Keys[k.ID()] = k
	parent.Signed.Delegations.Roles = append(parent.Signed.Delegations.Roles, metadata.DelegatedRole{Name: role, KeyIDs: []string{k.ID()}, Threshold: threshold, Paths: paths})
}

// Hostile delegation graphs signed by the vendor's own keys (a compromised
// or careless targets key) end in a deny: a chain deeper than the
// delegation limit, a cycle, ten thousand roles, a role name that is a
// path, a threshold of zero.
func TestLookupHostileDelegations(t *testing.T) {
	t.Run("chain of 40", func(t *testing.T) {
		f := newFixture(t)
		parent := metadata.TARGETS
		for i := range 40 {
			role := fmt.Sprintf("level-%02d", i)
			if err := f.repo.Delegate(parent, role, []string{"infusion-pump/*"}, f.now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			parent = role
		}
		if err := f.repo.AddTarget(parent, "infusion-pump/deep.bin", []byte("deep"), tufrepo.Custom{Version: "1.0.0"}); err != nil {
			t.Fatal(err)
		}
		if err := f.repo.Publish(f.mirror); err != nil {
			t.Fatal(err)
		}
		wantReason(t, f.fresh(t, tuf.Dir(f.mirror), "infusion-pump/deep.bin"), tuf.ReasonUnknownTarget, "target infusion-pump/deep.bin not found")
	})
	t.Run("cycle", func(t *testing.T) {
		f := newFixture(t)
		if err := f.repo.Delegate(metadata.TARGETS, "a", []string{"infusion-pump/*"}, f.now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := f.repo.Delegate("a", "b", []string{"infusion-pump/*"}, f.now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		delegate(f.repo.Targets["b"], "a", tufrepo.PublicKey(f.repo.Keys["a"][0]), 1, "infusion-pump/*")
		if err := f.repo.Publish(f.mirror); err != nil {
			t.Fatal(err)
		}
		wantReason(t, f.fresh(t, tuf.Dir(f.mirror), "infusion-pump/nowhere.bin"), tuf.ReasonUnknownTarget, "not found")
	})
	t.Run("ten thousand roles", func(t *testing.T) {
		f := newFixture(t)
		k, err := tufrepo.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10000 {
			delegate(f.repo.Targets[metadata.TARGETS], fmt.Sprintf("bin-%05d", i), tufrepo.PublicKey(k), 1, "infusion-pump/*")
		}
		f.repo.Touch(metadata.TARGETS)
		if err := f.repo.Publish(f.mirror); err != nil {
			t.Fatal(err)
		}
		wantReason(t, f.fresh(t, tuf.Dir(f.mirror), "infusion-pump/other.bin"), tuf.ReasonUntrusted, "role bin-00000 not found in snapshot")
		wantReason(t, f.fresh(t, tuf.Dir(f.mirror), "mri-console/other.bin"), tuf.ReasonUnknownTarget, "not found")
	})
	t.Run("role name is a path", func(t *testing.T) {
		f := newFixture(t)
		k, err := tufrepo.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		delegate(f.repo.Targets[metadata.TARGETS], "../../escape", tufrepo.PublicKey(k), 1, "infusion-pump/*")
		f.repo.Touch(metadata.TARGETS)
		f.repo.Snapshot.Signed.Meta["../../escape.json"] = metadata.MetaFile(1)
		if err := f.repo.Publish(f.mirror); err != nil {
			t.Fatal(err)
		}
		wantReason(t, f.fresh(t, tuf.Dir(f.mirror), "infusion-pump/other.bin"), tuf.ReasonUntrusted, "not a metadata file name wardgate reads")
	})
	t.Run("threshold zero", func(t *testing.T) {
		f := newFixture(t)
		if err := f.repo.Delegate(metadata.TARGETS, "open", []string{"infusion-pump/*"}, f.now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		f.repo.Targets[metadata.TARGETS].Signed.Delegations.Roles[0].Threshold = 0
		if err := f.repo.AddTarget("open", "infusion-pump/open.bin", []byte("anyone"), tufrepo.Custom{Version: "1.0.0"}); err != nil {
			t.Fatal(err)
		}
		if err := f.repo.Publish(f.mirror); err != nil {
			t.Fatal(err)
		}
		// Nobody's signature on the delegated role: go-tuf would accept it.
		rogue, err := tufrepo.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := tufrepo.SignWith(f.repo.Targets["open"], rogue); err != nil {
			t.Fatal(err)
		}
		if err := f.repo.Write(f.mirror); err != nil {
			t.Fatal(err)
		}
		wantReason(t, f.fresh(t, tuf.Dir(f.mirror), "infusion-pump/open.bin"), tuf.ReasonUntrusted, "targets delegates to open with a threshold below 1")
	})
}

func tarOf(t testing.TB, gz bool, entries map[string][]byte, extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	var zw *gzip.Writer
	tw := tar.NewWriter(w)
	if gz {
		zw = gzip.NewWriter(w)
		tw = tar.NewWriter(zw)
	}
	for name, b := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range extra {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func mirrorFiles(t testing.TB, f *fixture, prefix string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(f.mirror, "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(f.file(e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[prefix+e.Name()] = b
	}
	return out
}

func TestArchiveSource(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		gz     bool
		prefix string
	}{{"tar", false, "metadata/"}, {"tar.gz", true, "./metadata/"}, {"flat", false, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := tuf.ReadArchive(bytes.NewReader(tarOf(t, tc.gz, mirrorFiles(t, f, tc.prefix))))
			if err != nil {
				t.Fatal(err)
			}
			if rel := f.fresh(t, src, pumpTarget); !rel.OK() || rel.Version != "2.4.0" {
				t.Fatalf("%s: %s", rel.Reason, rel.Detail)
			}
		})
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", tarOf(t, false, nil), "no metadata files"},
		{"garbage", []byte("not a tar"), "tuf: metadata archive: unexpected EOF"},
		{"bad gzip", []byte{0x1f, 0x8b, 0, 0}, "gzip"},
		{"nested", tarOf(t, false, map[string][]byte{"metadata/x/timestamp.json": []byte("{}")}), "want metadata/NAME.json"},
		{"not json", tarOf(t, false, map[string][]byte{"metadata/timestamp.txt": []byte("{}")}), "want metadata/NAME.json"},
		{"symlink", tarOf(t, false, nil, &tar.Header{Name: "metadata/timestamp.json", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}), "not a regular file"},
		{"duplicate", tarOf(t, false, map[string][]byte{"metadata/timestamp.json": []byte("{}"), "timestamp.json": []byte("{}")}), "more than one entry for timestamp.json"},
		{"too large", tarOf(t, false, map[string][]byte{"metadata/timestamp.json": bytes.Repeat([]byte(" "), tuf.MaxArchiveBytes+1)}), "more than 16777216 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tuf.ReadArchive(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The directory state keeps each vendor apart, survives a new State value
// (a new run), and writes only what changed.
func TestDirState(t *testing.T) {
	dir := t.TempDir()
	s := tuf.NewDirState(dir)
	put := func(s tuf.State, vendor string, files tuf.Files) {
		t.Helper()
		if err := s.Update(t.Context(), vendor, func(tuf.Files) (tuf.Files, error) { return files, nil }); err != nil {
			t.Fatal(err)
		}
	}
	get := func(s tuf.State, vendor string) tuf.Files {
		t.Helper()
		var got tuf.Files
		if err := s.Update(t.Context(), vendor, func(have tuf.Files) (tuf.Files, error) { got = have; return nil, nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	put(s, "acme/infusion", tuf.Files{"timestamp.json": []byte("a")})
	put(s, "medimaging", tuf.Files{"timestamp.json": []byte("b")})
	again := tuf.NewDirState(dir)
	if got := get(again, "acme/infusion"); string(got["timestamp.json"]) != "a" || len(got) != 1 {
		t.Fatalf("acme/infusion = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme%2Finfusion", "timestamp.json")); err != nil {
		t.Fatalf("vendor directory: %v", err)
	}
	if err := again.Update(t.Context(), "..", func(tuf.Files) (tuf.Files, error) { return nil, nil }); err == nil {
		t.Fatal("vendor .. accepted")
	}
	if err := again.Update(t.Context(), "medimaging", func(tuf.Files) (tuf.Files, error) { return tuf.Files{"../x.json": nil}, nil }); err == nil {
		t.Fatal("file name ../x.json accepted")
	}
}
