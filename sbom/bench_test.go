package sbom

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// benchPair builds two CycloneDX 1.6 JSON documents of n components each,
// with purls spread over npm, golang, pypi, deb, maven and rpm, and a few
// thousand changes between them: upgrades, downgrades, removals,
// additions, rebuilt hashes, license and supplier changes and edges.
func benchPair(tb testing.TB, n int) (old, new []byte) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	type spec struct{ purl, name, group, version string }
	ecos := []func(i int) spec{
		func(i int) spec {
			return spec{fmt.Sprintf("pkg:npm/%%40scope%d/pkg-%d", i%97, i), fmt.Sprintf("pkg-%d", i), fmt.Sprintf("@scope%d", i%97), fmt.Sprintf("%d.%d.%d", i%9, i%23, i%17)}
		},
		func(i int) spec {
			return spec{fmt.Sprintf("pkg:golang/github.com/org%d/mod%d", i%113, i), fmt.Sprintf("github.com/org%d/mod%d", i%113, i), "", fmt.Sprintf("v0.0.0-2021%02d%02d120000-abcdef%06d", i%12+1, i%28+1, i%999999)}
		},
		func(i int) spec {
			return spec{fmt.Sprintf("pkg:pypi/py-lib-%d", i), fmt.Sprintf("py-lib-%d", i), "", fmt.Sprintf("%d.%d.post%d", i%7, i%31, i%3)}
		},
		func(i int) spec {
			return spec{fmt.Sprintf("pkg:deb/debian/libdeb%d", i), fmt.Sprintf("libdeb%d", i), "", fmt.Sprintf("1:%d.%d-%d+deb12u%d", i%5, i%19, i%4+1, i%9)}
		},
		func(i int) spec {
			return spec{fmt.Sprintf("pkg:maven/org.example%d/artifact-%d", i%61, i), fmt.Sprintf("artifact-%d", i), fmt.Sprintf("org.example%d", i%61), fmt.Sprintf("%d.%d.%d-RELEASE", i%4, i%13, i%11)}
		},
		func(i int) spec {
			return spec{fmt.Sprintf("pkg:rpm/redhat/rpmlib%d", i), fmt.Sprintf("rpmlib%d", i), "", fmt.Sprintf("%d.%d-%d.el9", i%8, i%21, i%30)}
		},
	}
	licenses := []string{"MIT", "Apache-2.0", "BSD-3-Clause", "GPL-2.0-only", "ISC"}
	mk := func(i int, version, hash, lic, supplier string) cdx.Component {
		s := ecos[i%len(ecos)](i)
		if version == "" {
			version = s.version
		}
		return cdx.Component{
			BOMRef: fmt.Sprintf("ref-%d", i), Type: cdx.ComponentTypeLibrary, Name: s.name, Group: s.group, Version: version,
			PackageURL: s.purl + "@" + version + "?repository_url=https%3A%2F%2Fmirror.example",
			Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: hash}},
			Licenses:   &cdx.Licenses{{License: &cdx.License{ID: lic}}},
			Supplier:   &cdx.OrganizationalEntity{Name: supplier},
		}
	}
	var oc, nc []cdx.Component
	var od, nd []cdx.Dependency
	for i := range n {
		h := fmt.Sprintf("%064x", rng.Uint64())
		lic := licenses[i%len(licenses)]
		sup := fmt.Sprintf("Vendor %d", i%50)
		o := mk(i, "", h, lic, sup)
		oc = append(oc, o)
		nv, nh, nl, ns := "", h, lic, sup
		switch {
		case i%25 == 0: // 2,000 upgrades
			nv = o.Version + ".1"
		case i%101 == 0: // ~500 rebuilt with the same version
			nh = fmt.Sprintf("%064x", rng.Uint64())
		case i%151 == 0: // ~330 relicensed
			nl = "AGPL-3.0-only"
		case i%211 == 0: // ~240 new supplier
			ns = "Rebuilder Ltd"
		}
		if i%97 == 1 { // ~500 removed, replaced by new components
			nc = append(nc, mk(n+i, "", h, lic, sup))
		} else {
			nc = append(nc, mk(i, nv, nh, nl, ns))
		}
		if i > 0 {
			od = append(od, cdx.Dependency{Ref: fmt.Sprintf("ref-%d", i), Dependencies: &[]string{fmt.Sprintf("ref-%d", i/2)}})
			to := i / 2
			if i%331 == 0 {
				to = i / 3
			}
			from := fmt.Sprintf("ref-%d", i)
			if i%97 == 1 {
				from = fmt.Sprintf("ref-%d", n+i)
			}
			nd = append(nd, cdx.Dependency{Ref: from, Dependencies: &[]string{fmt.Sprintf("ref-%d", to)}})
		}
	}
	enc := func(cs []cdx.Component, ds []cdx.Dependency) []byte {
		bom := cdx.NewBOM()
		bom.Components, bom.Dependencies = &cs, &ds
		var buf bytes.Buffer
		if err := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
			tb.Fatal(err)
		}
		return buf.Bytes()
	}
	return enc(oc, od), enc(nc, nd)
}

// decodeBoth decodes the two documents concurrently, as `wardgate sbom
// diff` does.
func decodeBoth(b *testing.B, old, new []byte) (*Document, *Document) {
	b.Helper()
	var (
		o, n       *Document
		errO, errN error
		wg         sync.WaitGroup
	)
	wg.Go(func() { o, errO = Decode(bytes.NewReader(old)) })
	wg.Go(func() { n, errN = Decode(bytes.NewReader(new)) })
	wg.Wait()
	if err := errors.Join(errO, errN); err != nil {
		b.Fatal(err)
	}
	return o, n
}

// BenchmarkDecode50k decodes both 50,000-component documents, concurrently:
// the reading cost the diff is measured against.
func BenchmarkDecode50k(b *testing.B) {
	old, new := benchPair(b, 50_000)
	b.SetBytes(int64(len(old) + len(new)))
	b.ReportAllocs()
	for b.Loop() {
		decodeBoth(b, old, new)
	}
}

// BenchmarkDiff50k diffs the decoded pair; the documents are decoded once,
// outside the loop.
func BenchmarkDiff50k(b *testing.B) {
	old, new := benchPair(b, 50_000)
	o, n := decodeBoth(b, old, new)
	ch := Diff(o, n)
	b.ReportMetric(float64(len(ch.Changes)), "changes")
	b.ReportAllocs()
	for b.Loop() {
		Diff(o, n)
	}
}

// BenchmarkDecodeAndDiff50k is what `wardgate sbom diff` does end to end.
func BenchmarkDecodeAndDiff50k(b *testing.B) {
	old, new := benchPair(b, 50_000)
	b.ReportAllocs()
	for b.Loop() {
		Diff(decodeBoth(b, old, new))
	}
}

func TestBenchPairChanges(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds two 5,000-component documents")
	}
	old, new := benchPair(t, 5_000)
	o, n := mustDecode(t, old), mustDecode(t, new)
	ch := Diff(o, n)
	// The generator's arithmetic, at 5,000: every 25th upgraded (200);
	// i%97==1 replaced (52 removed, 52 added, minus the overlap with
	// upgrades); the rest as counted here, so a change to Diff that loses
	// or invents changes shows.
	want := map[Code]int{}
	for i := range 5_000 {
		switch {
		case i%97 == 1:
			want[Removed]++
			want[Added]++
		case i%25 == 0:
			want[Upgraded]++
		case i%101 == 0:
			want[HashChanged]++
		case i%151 == 0:
			want[LicenseChanged]++
		case i%211 == 0:
			want[SupplierChanged]++
		}
	}
	for _, c := range []Code{Added, Removed, Upgraded, HashChanged, LicenseChanged, SupplierChanged, Downgraded} {
		if ch.Summary[c] != want[c] {
			t.Errorf("%s: %d, want %d", c, ch.Summary[c], want[c])
		}
	}
	if ch.Summary[DependencyAdded] == 0 || ch.Summary[DependencyRemoved] == 0 {
		t.Errorf("no edge changes: %v", ch.Summary)
	}
}

var benchPairDir = flag.String("benchpair", "", "write the 50,000-component benchmark pair to `DIR` as old.cdx.json and new.cdx.json (bench/sbom/diff.sh)")

// TestWriteBenchPair writes the benchmark documents for measuring the CLI
// end to end; it runs only with -benchpair.
func TestWriteBenchPair(t *testing.T) {
	if *benchPairDir == "" {
		t.Skip("no -benchpair DIR")
	}
	old, new := benchPair(t, 50_000)
	for name, data := range map[string][]byte{"old.cdx.json": old, "new.cdx.json": new} {
		if err := os.WriteFile(filepath.Join(*benchPairDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
