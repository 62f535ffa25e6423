// Command fsyncprobe measures the disk under a state directory as a
// commit sees it: at -rate a second, it writes -pages pages of 4 KiB at
// the end of a file of its own (reused from the start past 1 MiB, as
// SQLite reuses its write-ahead log) and fsyncs it, for -duration or -n
// writes. It reports the fsync latency (p50, p99, p99.9, max) and how
// many took over 5 ms and over 25 ms, each of which holds every commit
// queued behind it as long. Nothing of wardgate runs: it is the floor
// under any durable answer on that disk (docs/kubernetes.md).
//
//	fsyncprobe -dir /var/lib/wardgate -rate 200 -duration 30s
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure (a file is made in it and removed)")
	rate := flag.Float64("rate", 200, "fsyncs per second")
	dur := flag.Duration("duration", 30*time.Second, "how long to run")
	n := flag.Int("n", 0, "stop after this many fsyncs (0: only -duration)")
	pages := flag.Int("pages", 1, "pages of 4 KiB written before each fsync")
	flag.Parse()
	if *rate <= 0 || *pages < 1 || *pages > 256 || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "fsyncprobe: want -rate > 0, -pages 1 to 256, -duration > 0")
		os.Exit(2)
	}
	if err := run(*dir, *rate, *dur, *n, *pages); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
}

func run(dir string, rate float64, dur time.Duration, n, pages int) error {
	f, err := os.CreateTemp(dir, "fsyncprobe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, pages*4096)
	const wrap = 1 << 20
	var lat []time.Duration
	var off int64
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; n == 0 || i < n; i++ {
		next := start.Add(time.Duration(i) * interval)
		if next.Sub(start) >= dur {
			break
		}
		time.Sleep(time.Until(next))
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
		off = (off + int64(len(buf))) % wrap
		t := time.Now()
		if err := f.Sync(); err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	if len(lat) == 0 {
		return fmt.Errorf("no fsync in %s", dur)
	}
	over := func(d time.Duration) int {
		c := 0
		for _, l := range lat {
			if l > d {
				c++
			}
		}
		return c
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	abs, _ := filepath.Abs(dir)
	fmt.Printf("fsync of %d page(s) at %.0f/s on %s: %d in %s; p50 %s p99 %s p99.9 %s max %s; over 5ms %d, over 25ms %d\n",
		pages, rate, abs, len(s), time.Since(start).Round(time.Millisecond), ms(q(0.5)), ms(q(0.99)), ms(q(0.999)), ms(s[len(s)-1]), over(5*time.Millisecond), over(25*time.Millisecond))
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
