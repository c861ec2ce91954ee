package packaging

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo is a throwaway repository with one commit made on 2026-03-04 UTC.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	runGit(t, dir, "init", "-q", "-b", "main")
	writeTestFile(t, filepath.Join(dir, ".gitignore"), "/bin/\n")
	writeTestFile(t, filepath.Join(dir, "main.go"), "package main\n")
	runGit(t, dir, "add", ".")
	runGit(t, dir, "commit", "-q", "-m", "first")
	return dir
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null",
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.invalid",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.invalid",
		// 23:30 at UTC-2 is the next day in UTC: the version's date is UTC.
		"GIT_AUTHOR_DATE=2026-03-03T23:30:00-02:00", "GIT_COMMITTER_DATE=2026-03-03T23:30:00-02:00")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func versionOf(t *testing.T, dir string) string {
	t.Helper()
	v, err := Version(context.Background(), dir)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	return v
}

func TestVersionWithoutReleaseTagIsCommitDateAndName(t *testing.T) {
	dir := gitRepo(t)
	sha := runGit(t, dir, "rev-parse", "--short=12", "HEAD")
	if got, want := versionOf(t, dir), "0.0.0~git20260304."+sha; got != want {
		t.Fatalf("clean tree: version %q, want %q", got, want)
	}
	// A tag that is not a release (vX.Y.Z) does not make a version.
	runGit(t, dir, "tag", "nightly")
	if got, want := versionOf(t, dir), "0.0.0~git20260304."+sha; got != want {
		t.Fatalf("with a non-release tag: version %q, want %q", got, want)
	}
}

func TestVersionOfDirtyTreeEndsInDirty(t *testing.T) {
	dir := gitRepo(t)
	clean := versionOf(t, dir)
	if strings.HasSuffix(clean, DirtySuffix) {
		t.Fatalf("clean tree: version %q ends in %q", clean, DirtySuffix)
	}

	// Build output the repository ignores leaves the tree clean.
	writeTestFile(t, filepath.Join(dir, "bin", "vigil"), "binary")
	if got := versionOf(t, dir); got != clean {
		t.Fatalf("after writing an ignored file: version %q, want %q", got, clean)
	}

	cases := []struct {
		name   string
		change func()
		undo   func()
	}{
		{"edited tracked file",
			func() { writeTestFile(t, filepath.Join(dir, "main.go"), "package main // edited\n") },
			func() { runGit(t, dir, "checkout", "--", "main.go") }},
		{"staged edit",
			func() {
				writeTestFile(t, filepath.Join(dir, "main.go"), "package main // staged\n")
				runGit(t, dir, "add", "main.go")
			},
			func() { runGit(t, dir, "reset", "-q", "--hard") }},
		{"untracked source file",
			func() { writeTestFile(t, filepath.Join(dir, "extra.go"), "package main\n") },
			func() { os.Remove(filepath.Join(dir, "extra.go")) }},
	}
	for _, c := range cases {
		c.change()
		if got, want := versionOf(t, dir), clean+DirtySuffix; got != want {
			t.Errorf("%s: version %q, want %q", c.name, got, want)
		}
		c.undo()
		if got := versionOf(t, dir); got != clean {
			t.Fatalf("after undoing the %s: version %q, want %q", c.name, got, clean)
		}
	}
}

func TestVersionFromReleaseTag(t *testing.T) {
	dir := gitRepo(t)
	runGit(t, dir, "tag", "v1.2.3")
	if got := versionOf(t, dir); got != "1.2.3" {
		t.Fatalf("at tag v1.2.3: version %q, want 1.2.3", got)
	}
	writeTestFile(t, filepath.Join(dir, "main.go"), "package main // next\n")
	if got := versionOf(t, dir); got != "1.2.3"+DirtySuffix {
		t.Fatalf("at tag v1.2.3 with an edit: version %q, want 1.2.3%s", got, DirtySuffix)
	}
	runGit(t, dir, "commit", "-q", "-am", "second")
	sha := runGit(t, dir, "rev-parse", "--short=12", "HEAD")
	if got, want := versionOf(t, dir), "1.2.3+git1.g"+sha; got != want {
		t.Fatalf("one commit after v1.2.3: version %q, want %q", got, want)
	}
}

func TestVersionOfPreReleaseSortsBeforeRelease(t *testing.T) {
	dir := gitRepo(t)
	runGit(t, dir, "tag", "v1.2.3-rc1")
	if got := versionOf(t, dir); got != "1.2.3~rc1" {
		t.Fatalf("at tag v1.2.3-rc1: version %q, want 1.2.3~rc1", got)
	}
	if err := exec.Command("dpkg", "--compare-versions", "1.2.3~rc1", "lt", "1.2.3").Run(); err != nil {
		t.Fatalf("dpkg --compare-versions 1.2.3~rc1 lt 1.2.3: %v", err)
	}
}

func TestVersionRejectsTagDebianCannotRead(t *testing.T) {
	st := treeState{describe: "v1_2-0-gabc", commitDate: "20260304", shortSHA: "abc"}
	if v, err := st.version(); err == nil {
		t.Fatalf("describe %q: version %q, want an error (an underscore is not allowed in a Debian version)", st.describe, v)
	}
}

func TestVersionOutsideGitFails(t *testing.T) {
	if v, err := Version(context.Background(), t.TempDir()); err == nil {
		t.Fatalf("a directory outside git: version %q, want an error", v)
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.2.3": true, "0.0.0~git20260304.abc-dirty": true, "1.2.3+git4.gabc": true,
		"v1.2.3": false, "": false, "1.2 3": false, "1.2.3 -X main.x=y": false, "1.2_3": false, "1.2.3-": false,
	} {
		if err := CheckVersion(v); (err == nil) != ok {
			t.Errorf("CheckVersion(%q) = %v, want accepted %v", v, err, ok)
		}
	}
}
