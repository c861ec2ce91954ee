package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newDocsCmd writes the man pages and shell completions from the command tree
// itself, so that the Debian package ships documentation that cannot drift
// from the binary it documents. Hidden: it is a build step, not an operator's
// command.
func newDocsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "docs",
		Short:  "Write man pages and shell completions generated from the command tree",
		Hidden: true,
		Args:   cobra.NoArgs,
	}
	cmd.AddCommand(
		newDocsWriterCmd("man", "Write one man page (section 1) per command into DIR: vigil.1, vigil-ctl-switchover.1, ...", writeManPages),
		newDocsWriterCmd("completions", "Write the bash, zsh and fish completions into DIR as vigil.bash, _vigil and vigil.fish", writeCompletions),
	)
	return cmd
}

// newDocsWriterCmd is a docs subcommand that writes files generated from
// the command tree into --dir.
func newDocsWriterCmd(name, short string, write func(root *cobra.Command, dir string) error) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   name + " --dir DIR",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create %s directory: %w", name, err)
			}
			return write(cmd.Root(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write to (created if missing)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func writeManPages(root *cobra.Command, dir string) error {
	// The generator's footer would carry today's date, and pages built twice
	// from one commit would differ. The header's date follows
	// SOURCE_DATE_EPOCH when the build sets it.
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{
		Title:   "VIGIL",
		Section: "1",
		Source:  "vigil " + version,
		Manual:  "Vigil Manual",
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("write man pages to %s: %w", dir, err)
	}
	return nil
}

func writeCompletions(root *cobra.Command, dir string) error {
	scripts := []struct {
		file     string
		generate func(io.Writer) error
	}{
		{"vigil.bash", func(w io.Writer) error { return root.GenBashCompletionV2(w, true) }},
		{"_vigil", root.GenZshCompletion},
		{"vigil.fish", func(w io.Writer) error { return root.GenFishCompletion(w, true) }},
	}
	for _, s := range scripts {
		var script bytes.Buffer
		if err := s.generate(&script); err != nil {
			return fmt.Errorf("generate %s: %w", s.file, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.file), script.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write completion: %w", err)
		}
	}
	return nil
}
