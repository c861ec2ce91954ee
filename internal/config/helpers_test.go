package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/certs"
)

// fakeBinDir returns a directory holding an executable named binary, enough
// for the bin_dir check.
func fakeBinDir(t *testing.T, binary string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, binary), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeFile writes content to a new file in a temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask may have removed bits
		t.Fatal(err)
	}
	return path
}

// minimalYAML is the smallest valid configuration: every required key, with
// bin_dir holding a fake pg_ctl.
func minimalYAML(t *testing.T) string {
	t.Helper()
	return "cluster: main\n" +
		"node:\n" +
		"  name: node1\n" +
		"  host: 198.18.0.11\n" +
		"database:\n" +
		"  bin_dir: " + fakeBinDir(t, "pg_ctl") + "\n" +
		"  data_dir: " + t.TempDir() + "\n" +
		"dcs:\n" +
		"  endpoints: [http://198.18.0.21:2379]\n" +
		"trusted_ips: [198.18.0.1]\n"
}

// validConfig parses minimalYAML and forgets its line numbers, so that a
// test can change fields without the problems pointing at stale lines.
func validConfig(t *testing.T) *Config {
	t.Helper()
	c, err := Parse([]byte(minimalYAML(t)))
	if err != nil {
		t.Fatalf("minimal configuration: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("minimal configuration is invalid:\n%v", err)
	}
	c.src = source{}
	return c
}

// problemLines returns err's problems as strings; it fails the test if err
// is an error of another kind.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, not Problems: %v", err, err)
	}
	return problemLinesOf(ps)
}

func problemLinesOf(ps Problems) []string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return lines
}

func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func (ps Problems) strings() []string {
	if len(ps) == 0 {
		return nil
	}
	return problemLinesOf(ps)
}

// issueNodeTLS makes a CA and a node certificate for host in a temporary
// directory, as `vigil certs` would, and returns them as a TLS section.
func issueNodeTLS(t *testing.T, node, host string) TLS {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.InitCA(dir, "main", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	is, err := certs.IssueNode(dir, node, []string{host}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.Paths(dir, "ca")
	return TLS{CAFile: ca, CertFile: is.CertFile, KeyFile: is.KeyFile}
}
