// Command mklog builds a large verdict log for the attest benchmarks: N
// signed VSA envelopes appended in large transactions, with the service key
// written beside it (empty password).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/store"
	_ "github.com/wardgate/wardgate/store/sqlite"
)

func main() {
	dir := flag.String("dir", "bench/out/log", "output directory")
	n := flag.Int("n", 1_000_000, "entries")
	flag.Parse()
	if err := run(*dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "mklog:", err)
		os.Exit(1)
	}
}

func run(dir string, n int) error {
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	os.Setenv(attest.PasswordEnv, "")
	keyPath := filepath.Join(dir, "signing.key")
	if _, err := os.Stat(keyPath); err != nil {
		if _, _, err := attest.Keygen(filepath.Join(dir, "signing")); err != nil {
			return err
		}
	}
	s, err := attest.LoadSigner(ctx, keyPath)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer st.Close()
	l, err := attest.OpenLog(ctx, st, s, "")
	if err != nil {
		return err
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 10_000
	start := l.Checkpoint().Size
	for i := int(start); i < n; {
		items := make([]attest.Item, 0, batch)
		for ; i < n && len(items) < batch; i++ {
			sum := sha256.Sum256([]byte(fmt.Sprint("fw", i%5000)))
			d := hex.EncodeToString(sum[:])
			st, err := attest.NewStatement(attest.Verdict{SubjectName: "fw.bin", SubjectDigest: map[string]string{"sha256": d},
				Passed: i%10 != 0, DeviceID: fmt.Sprintf("dev-%05d", i%20000), Time: t0.Add(time.Duration(i) * time.Second)}, "bench")
			if err != nil {
				return err
			}
			env, err := s.SignStatement(ctx, st)
			if err != nil {
				return err
			}
			items = append(items, attest.Item{Envelope: env, Artifact: "sha256:" + d, Device: fmt.Sprintf("dev-%05d", i%20000), Time: t0.Add(time.Duration(i) * time.Second)})
		}
		if _, err := l.AppendBatch(ctx, items); err != nil {
			return err
		}
	}
	fmt.Printf("%s: %d entries\n", filepath.Join(dir, "wardgate.db"), l.Checkpoint().Size)
	return nil
}
