package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command an operator can run gets a man page; hidden ones (docs,
// workload) do not.
func TestDocsManWritesAPagePerCommand(t *testing.T) {
	dir := t.TempDir()
	runCLICases(t, "docs", []cliCase{
		{"man", []string{"man", "--dir", dir}, ExitOK, nil, ""},
		{"without --dir", []string{"man"}, ExitUsage, nil, `required flag(s) "dir" not set`},
	})
	var want []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRootCmd()
	root.InitDefaultCompletionCmd()
	walk(root)
	if !slices.Contains(want, "vigil-ctl-switchover.1") {
		t.Fatalf("the walk of the command tree missed ctl switchover: %v", want)
	}
	for _, page := range want {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Errorf("no man page for a command: %v", err)
		}
	}
	for _, hidden := range []string{"vigil-docs.1", "vigil-workload.1"} {
		if _, err := os.Stat(filepath.Join(dir, hidden)); err == nil {
			t.Errorf("%s written for a hidden command", hidden)
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "vigil-ctl-switchover.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `vigil ctl switchover [--to NODE]`) {
		t.Errorf("vigil-ctl-switchover.1 lacks the command's synopsis:\n%s", page)
	}
}

func TestDocsCompletionsWritesThreeShells(t *testing.T) {
	dir := t.TempDir()
	runCLICases(t, "docs", []cliCase{{"completions", []string{"completions", "--dir", dir}, ExitOK, nil, ""}})
	for file, want := range map[string]string{
		"vigil.bash": "complete -o default -F __start_vigil vigil",
		"_vigil":     "#compdef vigil",
		"vigil.fish": "complete -c vigil ",
	} {
		script, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(script), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}
