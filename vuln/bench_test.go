package vuln_test

import (
	"archive/zip"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/proccpu"
	"github.com/wardgate/wardgate/vuln"
)

// Benchmark scale: an export the size of a distribution's (50,000 records
// over 3,000 source packages, each naming three Alpine branches) and an
// SBOM of 2,000 Alpine packages drawn from the same names.
const (
	benchRecords    = 50_000
	benchPackages   = 3_000
	benchComponents = 2_000
)

var benchData = flag.String("benchdata", "", "TestWriteBenchData writes the benchmark's OSV export and SBOM into this directory")

func benchVersion(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d-r%d", r.IntN(4), r.IntN(20), r.IntN(30), r.IntN(12))
}

// writeBenchExport writes the generated OSV records into dir/all.zip, as
// osv.dev exports an ecosystem, and returns its path.
func writeBenchExport(tb testing.TB, dir string) string {
	tb.Helper()
	f, err := os.Create(filepath.Join(dir, "all.zip"))
	if err != nil {
		tb.Fatal(err)
	}
	zw := zip.NewWriter(f)
	r := rand.New(rand.NewPCG(1, 2))
	modified := time.Date(2026, 8, 27, 0, 0, 0, 0, time.UTC)
	for i := range benchRecords {
		name := fmt.Sprintf("pkg%04d", r.IntN(benchPackages))
		var affected []map[string]any
		for _, branch := range []string{"v3.18", "v3.19", "v3.20"} {
			affected = append(affected, map[string]any{
				"package": map[string]any{"ecosystem": "Alpine:" + branch, "name": name},
				"ranges":  []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]any{"introduced": "0"}, map[string]any{"fixed": benchVersion(r)}}}},
			})
		}
		rec := map[string]any{
			"id": fmt.Sprintf("ALPINE-CVE-2026-%05d", i), "modified": modified.Add(time.Duration(i) * time.Second).Format(time.RFC3339),
			"upstream": []string{fmt.Sprintf("CVE-2026-%05d", i)}, "details": "generated for the benchmark",
			"affected": affected,
			"severity": []any{map[string]any{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H"}},
		}
		b, err := json.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		w, err := zw.Create(fmt.Sprintf("ALPINE-CVE-2026-%05d.json", i))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return f.Name()
}

func benchComponentsList() []vuln.Component {
	r := rand.New(rand.NewPCG(3, 4))
	cs := make([]vuln.Component, 0, benchComponents)
	for i := range benchComponents {
		name := fmt.Sprintf("pkg%04d", (i*7)%benchPackages)
		v := benchVersion(r)
		cs = append(cs, vuln.Component{Name: name, Version: v, PURL: "pkg:apk/alpine/" + name + "@" + v + "?arch=x86_64&distro=alpine-3.19.4"})
	}
	return cs
}

// BenchmarkMatch2000 is issue 17's figure: matching a 2,000-component SBOM
// warm (the database loaded once, as admit's gate and serve hold it).
func BenchmarkMatch2000(b *testing.B) {
	export := writeBenchExport(b, b.TempDir())
	state := b.TempDir()
	if _, err := vuln.Import(b.Context(), state, []string{export}); err != nil {
		b.Fatal(err)
	}
	db, err := vuln.Open(state)
	if err != nil {
		b.Fatal(err)
	}
	comps := benchComponentsList()
	res, err := db.Match(b.Context(), comps)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(res.Matches)), "matches")
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := proccpu.Time()
	for b.Loop() {
		if _, err := db.Match(b.Context(), comps); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time (all threads, the garbage collector's too) tells the cost
	// apart from waiting on a busy machine.
	b.ReportMetric(float64(proccpu.Time()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkOpen is the cold part: loading the imported database.
func BenchmarkOpen(b *testing.B) {
	export := writeBenchExport(b, b.TempDir())
	state := b.TempDir()
	if _, err := vuln.Import(b.Context(), state, []string{export}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := proccpu.Time()
	for b.Loop() {
		if _, err := vuln.Open(state); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(proccpu.Time()-cpu0)/float64(b.N), "cpu-ns/op")
}

// TestWriteBenchData writes the benchmark's export (DIR/all.zip) and a
// CycloneDX SBOM of its components (DIR/sbom.cdx.json) for bench/vuln-match.sh.
func TestWriteBenchData(t *testing.T) {
	if *benchData == "" {
		t.Skip("-benchdata not given")
	}
	writeBenchExport(t, *benchData)
	var comps []map[string]any
	for _, c := range benchComponentsList() {
		comps = append(comps, map[string]any{"type": "library", "bom-ref": c.PURL, "name": c.Name, "version": c.Version, "purl": c.PURL})
	}
	bom := map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": comps}
	b, err := json.Marshal(bom)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*benchData, "sbom.cdx.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
