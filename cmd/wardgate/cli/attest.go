package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/verify"
)

// NewAttestCmd groups the verdict log and evidence pack commands.
func NewAttestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Signed verdicts: the tamper-evident log and evidence packs for auditors",
	}
	cmd.AddCommand(newAttestKeygenCmd(), newAttestLogCmd(), newAttestExportCmd(), newAttestVerifyCmd())
	return cmd
}

func newAttestKeygenCmd() *cobra.Command {
	var out, output, ref string
	cmd := &cobra.Command{
		Use:   "keygen [--key KMS_OR_PKCS11_URI]",
		Short: "Make the service key pair: cosign key files (password from $" + attest.PasswordEnv + "), or a key in a KMS or HSM",
		Long: `Make the service signing key.

Without --key: PREFIX.key (cosign's encrypted format, password from
$` + attest.PasswordEnv + `, mode 0600) and PREFIX.pub.

With --key: the key is created where the reference points and never leaves
it; only PREFIX.pub is written. KMS references are cosign's
(cosign generate-key-pair --kms): awskms://, gcpkms://, azurekms://,
hashivault://, each provider's default algorithm. A pkcs11: URI makes an
ECDSA P-256 key pair in the token under the URI's object label (and id);
the PIN comes from pin-value in the URI or $COSIGN_PKCS11_PIN. Then give
the same reference to admit and serve with --signing-key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			var key, pub string
			if ref != "" {
				if !verify.IsKeyRef(ref) {
					return noVerdict(fmt.Errorf("--key %s: want a KMS (awskms://, gcpkms://, azurekms://, hashivault://) or pkcs11: reference; without --key, key files are written", ref))
				}
				key, pub = ref, out+".pub"
				if err := attest.KeygenRef(cmd.Context(), ref, pub); err != nil {
					return noVerdict(err)
				}
			} else {
				var err error
				if key, pub, err = attest.Keygen(out); err != nil {
					return noVerdict(err)
				}
			}
			if output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"privateKey": key, "publicKey": pub})
			}
			if ref != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "created the key %s and wrote its public key %s\n", ref, pub)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (mode 0600) and %s\n", key, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "wardgate", "file prefix: writes PREFIX.key and PREFIX.pub (with --key, PREFIX.pub only)")
	cmd.Flags().StringVar(&ref, "key", "", "create the key in a KMS or PKCS#11 token instead: awskms://, gcpkms://, azurekms://, hashivault:// or pkcs11:")
	addOutputFlag(cmd, &output)
	return cmd
}

// logFlags locate the log and its key.
type logFlags struct {
	state, key, origin string
	// unencryptedKey lets admit and serve create the service key without
	// a password (--unencrypted-key).
	unencryptedKey bool
	// store is where the store is when not in the state directory (a
	// PostgreSQL DSN): --store, $WARDGATE_STORE.
	store string
}

// registerKeyCreation adds --unencrypted-key, for the commands that create
// the service key on first use (admit, serve).
func (f *logFlags) registerKeyCreation(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.unencryptedKey, "unencrypted-key", false, "create the service signing key, if it does not exist, without a password (else $"+attest.PasswordEnv+" is required to create it)")
}

func (f *logFlags) register(cmd *cobra.Command) {
	addStateFlag(cmd, &f.state)
	addStoreFlag(cmd, &f.store)
	cmd.Flags().StringVar(&f.key, "signing-key", "", "service signing key: a cosign key file (password from $"+attest.PasswordEnv+"), or a KMS or pkcs11: reference (see attest keygen); default STATE/"+gate.SigningKeyFile)
	cmd.Flags().StringVar(&f.origin, "origin", "", "log origin in checkpoints (default wardgate/<key id>)")
}

func (f *logFlags) keyPath() string {
	if f.key != "" {
		return f.key
	}
	return filepath.Join(f.state, gate.SigningKeyFile)
}

// storedLog is a log and the store it is kept in; Close closes the store.
type storedLog struct {
	*attest.Log
	st store.Store
}

func (l storedLog) Close() error { return l.st.Close() }

func (f *logFlags) open(cmd *cobra.Command) (storedLog, error) {
	s, err := attest.LoadSigner(cmd.Context(), f.keyPath())
	if err != nil {
		return storedLog{}, err
	}
	st, err := store.Open(cmd.Context(), storeLocation(f.state, f.store))
	if err != nil {
		return storedLog{}, err
	}
	l, err := attest.OpenLog(cmd.Context(), st, s, f.origin)
	if err != nil {
		st.Close()
		return storedLog{}, err
	}
	return storedLog{l, st}, nil
}

func newAttestLogCmd() *cobra.Command {
	var lf logFlags
	var output, artifact, device string
	var limit int
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show log entries and the current checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			l, err := lf.open(cmd)
			if err != nil {
				return noVerdict(err)
			}
			defer l.Close()
			w := cmd.OutOrStdout()
			cp := l.Checkpoint()
			type row struct {
				Index    uint64   `json:"index"`
				Time     string   `json:"time"`
				Artifact string   `json:"artifact"`
				Vendor   string   `json:"vendor,omitempty"`
				Product  string   `json:"product,omitempty"`
				Version  string   `json:"version,omitempty"`
				Device   string   `json:"device,omitempty"`
				Result   string   `json:"result"`
				Reasons  []string `json:"reasons"`
				// Warnings are the verdict's findings that did not deny
				// (an allowed downgrade, with its reason).
				Warnings []attest.Warning `json:"warnings,omitempty"`
			}
			var rows []row
			v := l.Signer().Verifier()
			err = l.Entries(cmd.Context(), attest.Filter{Artifact: artifact, Device: device, Limit: limit}, func(e attest.Entry) error {
				st, err := v.VerifyStatement(e.Envelope)
				if err != nil {
					return fmt.Errorf("entry %d: %w", e.Index, err)
				}
				r := row{Index: e.Index, Time: e.Time.Format(time.RFC3339), Artifact: e.Artifact, Device: e.Device, Result: st.Predicate.VerificationResult, Reasons: []string{}}
				if x := st.Predicate.Wardgate; x != nil {
					r.Reasons, r.Warnings = x.ReasonCodes, x.Warnings
					r.Vendor, r.Product, r.Version = x.Vendor, x.Product, x.Version
				}
				rows = append(rows, r)
				return nil
			})
			if err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				if rows == nil {
					rows = []row{}
				}
				return json.NewEncoder(w).Encode(map[string]any{"checkpoint": map[string]any{"origin": cp.Origin, "size": cp.Size, "root": fmt.Sprintf("%x", cp.Root), "note": string(cp.Note)}, "entries": rows})
			}
			fmt.Fprintf(w, "log %s: %d entries, root %x\n", cp.Origin, cp.Size, cp.Root)
			for _, r := range rows {
				release := "-"
				if r.Vendor != "" || r.Product != "" {
					release = r.Vendor + "/" + r.Product + " " + r.Version
				}
				fmt.Fprintf(w, "%6d  %s  %-6s  %s  %s  %s %v\n", r.Index, r.Time, termSafe(r.Result), termSafe(release), termSafe(r.Artifact), termSafe(r.Device), r.Reasons)
			}
			fmt.Fprintf(w, "\n%s", cp.Note)
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&artifact, "artifact", "", "only entries for this artifact digest (sha256:...)")
	cmd.Flags().StringVar(&device, "device", "", "only entries for this device")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries")
	addOutputFlag(cmd, &output)
	return cmd
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339, e.g. 2026-11-01T00:00:00Z", name, v)
	}
	return t, nil
}

func newAttestExportCmd() *cobra.Command {
	var lf logFlags
	var since, until, artifact, device, out, sinceCP, output string
	cmd := &cobra.Command{
		Use:   "export --out PACK",
		Short: "Write a self-contained evidence pack (a directory, or .tar.gz)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return noVerdict(errors.New("--out is required"))
			}
			s, err := parseTimeFlag("since", since)
			if err != nil {
				return noVerdict(err)
			}
			u, err := parseTimeFlag("until", until)
			if err != nil {
				return noVerdict(err)
			}
			var old []byte
			if sinceCP != "" {
				if old, err = readSmall(sinceCP); err != nil {
					return noVerdict(err)
				}
			}
			l, err := lf.open(cmd)
			if err != nil {
				return noVerdict(err)
			}
			defer l.Close()
			streamingGC()
			m, err := l.Export(cmd.Context(), out, attest.ExportOptions{Filter: attest.Filter{Since: s, Until: u, Artifact: artifact, Device: device}, SinceCheckpoint: old})
			if err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d of %d entries, %d files\n", out, m.Entries, m.TreeSize, len(m.Files))
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "pack to write: a directory, or a file ending in .tar.gz")
	cmd.Flags().StringVar(&since, "since", "", "only verdicts at or after this time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "only verdicts at or before this time (RFC 3339)")
	cmd.Flags().StringVar(&artifact, "artifact", "", "only verdicts on this artifact digest")
	cmd.Flags().StringVar(&device, "device", "", "only verdicts for this device")
	cmd.Flags().StringVar(&sinceCP, "since-checkpoint", "", "an earlier checkpoint: include a consistency proof from it")
	addOutputFlag(cmd, &output)
	return cmd
}

// streamingGC keeps the heap close to what is live while a pack streams:
// export and verify hold one entry at a time, so collecting more often
// costs little and keeps the process's memory flat however large the log.
func streamingGC() { debug.SetGCPercent(25) }

// maxSmallFile bounds the small files the CLI reads whole (public keys,
// checkpoints, the server configuration).
const maxSmallFile = 1 << 20

// readSmall reads a small regular file with verify's bounded reader.
func readSmall(path string) ([]byte, error) { return verify.ReadFileLimited(path, maxSmallFile) }

func newAttestVerifyCmd() *cobra.Command {
	var key, sinceCP, output string
	cmd := &cobra.Command{
		Use:   "verify PACK --key PUB",
		Short: "Verify an evidence pack offline: exit 0 intact, 1 tampered, 2 unreadable",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			if key == "" {
				return noVerdict(errors.New("--key is required: the service public key you trust"))
			}
			pub, err := readSmall(key)
			if err != nil {
				return noVerdict(err)
			}
			var old []byte
			if sinceCP != "" {
				if old, err = readSmall(sinceCP); err != nil {
					return noVerdict(err)
				}
			}
			streamingGC()
			rep, err := attest.VerifyPack(cmd.Context(), args[0], pub, old)
			if err != nil {
				return noVerdict(err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				if err := json.NewEncoder(w).Encode(rep); err != nil {
					return noVerdict(err)
				}
			} else if rep.Intact {
				fmt.Fprintf(w, "INTACT    %s: %d entries, tree size %d, log %s\n", args[0], rep.Entries, rep.TreeSize, rep.Origin)
			} else if p, ok := keyMismatch(rep); ok {
				// Every signature fails with another key: that is one fact,
				// not three problems.
				fmt.Fprintf(w, "WRONG KEY %s: signed by another key; nothing in it can be checked with the key given\n  [%s] %s: %s\n", args[0], p.Code, p.File, p.Message)
			} else {
				fmt.Fprintf(w, "TAMPERED  %s: %s\n", args[0], plural(len(rep.Problems), "problem"))
				for _, p := range rep.Problems {
					where := p.File
					if p.Index != nil {
						where = fmt.Sprintf("%s entry %d", p.File, *p.Index)
					}
					fmt.Fprintf(w, "  [%s] %s: %s\n", p.Code, where, p.Message)
				}
			}
			if !rep.Intact {
				return verdict(ExitFail)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the service public key (PEM)")
	cmd.Flags().StringVar(&sinceCP, "since-checkpoint", "", "an earlier checkpoint you kept: the pack must extend it")
	addOutputFlag(cmd, &output)
	return cmd
}

// keyMismatch finds the pack's "signed by another key" problem, when the
// other problems are only the signatures that key cannot check. A pack that
// is also altered is reported as tampered, every problem listed.
func keyMismatch(rep *attest.PackReport) (attest.Problem, bool) {
	var found attest.Problem
	ok := false
	for _, p := range rep.Problems {
		switch p.Code {
		case attest.ProblemKey:
			found, ok = p, true
		case attest.ProblemManifestSignature, attest.ProblemCheckpoint, attest.ProblemEntrySignature:
		default:
			return attest.Problem{}, false
		}
	}
	return found, ok
}

// plural writes "1 problem", "3 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
