package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/control"
	"github.com/vigil-ha/vigil/internal/dcs"
)

func newCtlShowConfigCmd(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show-config",
		Short: "Print the cluster-wide settings (PostgreSQL parameters, shared timing) as YAML",
		Args:  cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			v, err := o.snapshot(cmd.Context(), s)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return writeJSON(cmd.OutOrStdout(), v.Settings)
			}
			data, err := control.DocumentOf(v.Settings).Marshal()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !v.Settings.Timing.IsSet() {
				fmt.Fprintln(w, "# timing and failover: not set cluster-wide, each node's file decides")
			}
			_, err = w.Write(data)
			return err
		}),
	}
}

func newCtlEditConfigCmd(o *ctlOptions) *cobra.Command {
	var assignments []string
	var file string
	cmd := &cobra.Command{
		Use:   "edit-config",
		Short: "Change the cluster-wide settings: in $EDITOR, with --set KEY=VALUE, or from --file",
		Long: `Change the settings every member shares: postgresql.parameters (applied
by every agent with ALTER SYSTEM and a reload; a parameter that needs a
restart shows as pending restart in ctl list), and the timing and failover
policy (timing.lease_ttl, loop_interval, dcs_timeout,
failover.maximum_lag_on_failover, synchronous_mode, primary_crash), which
once set here win over every node's file at the agent's next start.

The edit is checked before it is written: parameters against the leader's
pg_settings (name, type, range), timing with the rules of a node's file
(the lease arithmetic). A refused edit prints the rule and changes nothing;
an edit made by someone else meanwhile is never overwritten.`,
		Example: `  vigil ctl edit-config --config /etc/vigil/vigil.yaml --set postgresql.parameters.work_mem=8MB
  vigil ctl edit-config --config /etc/vigil/vigil.yaml --set timing.lease_ttl=10s
  vigil ctl edit-config --config /etc/vigil/vigil.yaml --file settings.yaml`,
		Args: cobra.NoArgs,
		RunE: o.withStore(func(cmd *cobra.Command, _ []string, s *dcs.Store) error {
			if len(assignments) > 0 && file != "" {
				return usageError(errors.New("--set and --file do not go together"))
			}
			base, err := o.sharedBase()
			if err != nil {
				return err
			}
			edit := func(d *control.Document) error {
				for _, a := range assignments {
					if err := d.Set(a, base); err != nil {
						return err
					}
				}
				return nil
			}
			// The DCS requests are bounded by --timeout, except that an
			// operator in an editor takes the time they need.
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			switch {
			case file != "":
				data, err := os.ReadFile(file)
				if err != nil {
					cancel()
					return usageError(fmt.Errorf("--file: %w", err))
				}
				edit = replaceWith(data)
			case len(assignments) == 0:
				edit = editInEditor(cmd.Context())
				cancel()
				ctx, cancel = context.WithCancel(cmd.Context())
			}
			defer cancel()
			got, err := o.controller(s).EditSettings(ctx, s, base, edit)
			if err != nil {
				return controlError(err)
			}
			w := cmd.OutOrStdout()
			if len(got.Changed) == 0 {
				fmt.Fprintln(w, "no change")
				return nil
			}
			fmt.Fprintf(w, "settings written (revision %d): %s\n", got.Revision, strings.Join(got.Changed, ", "))
			if len(got.NeedRestart) > 0 {
				fmt.Fprintf(w, "pending restart on every member: %s (vigil ctl restart --pending)\n", strings.Join(got.NeedRestart, ", "))
			}
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&assignments, "set", nil, "KEY=VALUE, repeatable: postgresql.parameters.NAME=VALUE, timing.lease_ttl=10s, failover.synchronous_mode=on, ...")
	cmd.Flags().StringVar(&file, "file", "", "YAML file with the whole settings (the form show-config prints)")
	return cmd
}

// sharedBase is the timing the cluster runs with while the DCS holds
// none: --config's file, else the defaults.
func (o *ctlOptions) sharedBase() (dcs.SharedTiming, error) {
	if o.config == "" {
		c := config.Defaults()
		return control.SharedOf(&c), nil
	}
	cfg, err := loadValidConfig(o.config)
	if err != nil {
		return dcs.SharedTiming{}, err
	}
	return control.SharedOf(cfg), nil
}

// replaceWith makes the document the YAML data.
func replaceWith(data []byte) func(*control.Document) error {
	return func(d *control.Document) error {
		next, err := control.ParseDocument(data)
		if err != nil {
			return err
		}
		*d = next
		return nil
	}
}

// editInEditor opens $EDITOR (else vi) on the current document's YAML.
func editInEditor(ctx context.Context) func(*control.Document) error {
	return func(d *control.Document) error {
		data, err := d.Marshal()
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "vigil-edit-config-")
		if err != nil {
			return fmt.Errorf("edit settings: %w", err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "settings.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("edit settings: %w", err)
		}
		editor := strings.Fields(os.Getenv("EDITOR"))
		if len(editor) == 0 {
			editor = []string{"vi"}
		}
		ed := exec.CommandContext(ctx, editor[0], append(editor[1:], path)...)
		ed.Stdin, ed.Stdout, ed.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := ed.Run(); err != nil {
			return fmt.Errorf("run editor %s: %w", editor[0], err)
		}
		edited, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("edit settings: %w", err)
		}
		return replaceWith(edited)(d)
	}
}
