package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardgate/wardgate/server"
	"github.com/wardgate/wardgate/store"
)

// NewTokenCmd groups the API token commands.
func NewTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "API tokens for wardgate serve: create, list, revoke",
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

// storedTokens are the tokens of a state's store; Close closes the store.
type storedTokens struct {
	*server.Tokens
	st store.Store
}

func (t storedTokens) Close() error { return t.st.Close() }

// tokenStore locates the store of the token commands.
type tokenStore struct{ state, store string }

func (l *tokenStore) register(cmd *cobra.Command) {
	addStateFlag(cmd, &l.state)
	addStoreFlag(cmd, &l.store)
}

func openTokens(cmd *cobra.Command, l tokenStore) (storedTokens, error) {
	st, err := store.Open(cmd.Context(), storeLocation(l.state, l.store))
	if err != nil {
		return storedTokens{}, err
	}
	return storedTokens{server.NewTokens(st), st}, nil
}

func newTokenCreateCmd() *cobra.Command {
	var loc tokenStore
	var role, name, output string
	cmd := &cobra.Command{
		Use:   "create --role ROLE [--name NAME]",
		Short: "Create a token and print it once (only its SHA-256 is stored)",
		Long: `Create an API token for wardgate serve and print it on standard output,
once: only its SHA-256 is kept (in the store: STATE/wardgate.db, or the
--store database), so it cannot be shown again. Roles: ci (POST /v1/updates), update-server (POST /v1/admissions),
sensor (POST /v1/telemetry), auditor (the read routes and evidence
packs), admin (everything), kubernetes (the admission webhook routes,
docs/kubernetes.md). A running server sees a new token at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			r, err := server.ParseRole(role)
			if err != nil {
				return noVerdict(fmt.Errorf("--role: %w", err))
			}
			t, err := openTokens(cmd, loc)
			if err != nil {
				return noVerdict(err)
			}
			defer t.Close()
			secret, err := t.Create(cmd.Context(), r, name)
			if err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				out := map[string]string{"token": string(secret), "role": string(r)}
				if name != "" {
					out["name"] = name
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(out); err != nil {
					return noVerdict(err)
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), string(secret))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wardgate: created a token with role %s; it is shown only this once\n", r)
			return nil
		},
	}
	loc.register(cmd)
	cmd.Flags().StringVar(&role, "role", "", "ci, update-server, sensor, auditor, admin or kubernetes (required)")
	cmd.Flags().StringVar(&name, "name", "", "a name for the token (default ROLE-<random>); it appears in the audit table and the logs")
	addOutputFlag(cmd, &output)
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var loc tokenStore
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (names and roles, never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			t, err := openTokens(cmd, loc)
			if err != nil {
				return noVerdict(err)
			}
			defer t.Close()
			ts, err := t.List(cmd.Context())
			if err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(ts)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tREVOKED")
			for _, ti := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", ti.Name, ti.Role, ti.Created.Format(time.RFC3339), ti.Revoked)
			}
			return tw.Flush()
		},
	}
	loc.register(cmd)
	addOutputFlag(cmd, &output)
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var loc tokenStore
	var output string
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token (a running server refuses it within 10 seconds)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "" {
				return noVerdict(errors.New("a token name is required"))
			}
			if err := checkOutput(output); err != nil {
				return noVerdict(err)
			}
			t, err := openTokens(cmd, loc)
			if err != nil {
				return noVerdict(err)
			}
			defer t.Close()
			if err := t.Revoke(cmd.Context(), args[0]); err != nil {
				return noVerdict(err)
			}
			if output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"name": args[0], "revoked": true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	loc.register(cmd)
	addOutputFlag(cmd, &output)
	return cmd
}
