package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/certs"
)

func TestCertsCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	runCLICases(t, "certs", []cliCase{
		{"init", []string{"init", "--dir", dir, "--cluster", "main"}, ExitOK,
			[]string{"wrote " + filepath.Join(dir, "ca.key") + " (mode 0600)", "wrote " + filepath.Join(dir, "ca.crt") + " (mode 0644)", "O=main", "expires  "}, ""},
		{"init again", []string{"init", "--dir", dir, "--cluster", "main"}, ExitUsage, nil, "file exists: use --force"},
		{"node", []string{"node", "--dir", dir, "--name", "node1", "--host", "127.0.0.1,node1.example.com"}, ExitOK,
			[]string{"node1.crt", "hosts    127.0.0.1, node1.example.com", "(in 7"}, ""},
		{"node again", []string{"node", "--dir", dir, "--name", "node1", "--host", "127.0.0.1"}, ExitUsage, nil, "node1.crt: file exists"},
		{"node forced", []string{"node", "--dir", dir, "--name", "node1", "--host", "127.0.0.1", "--force"}, ExitOK, []string{"node1.crt"}, ""},
		{"node without host", []string{"node", "--dir", dir, "--name", "node2"}, ExitUsage, nil, `required flag(s) "host" not set`},
		{"node with a bad host", []string{"node", "--dir", dir, "--name", "node2", "--host", "a b"}, ExitUsage, nil, `host "a b" is neither`},
		{"node without a CA", []string{"node", "--dir", t.TempDir(), "--name", "node2", "--host", "127.0.0.1"}, ExitUsage, nil, "make the CA first"},
		{"client", []string{"client", "--dir", dir, "--name", "alice", "--validity", "720h"}, ExitOK, []string{"CN=alice,OU=vigil operator,O=main"}, ""},
		{"client named ca", []string{"client", "--dir", dir, "--name", "ca"}, ExitUsage, nil, `name "ca"`},
		{"zero validity", []string{"client", "--dir", dir, "--name", "bob", "--validity", "0s"}, ExitUsage, nil, "--validity 0s: must be positive"},
	})
	ca := filepath.Join(dir, "ca.crt")
	for _, name := range []string{"node1", "alice"} {
		cert, key := certs.Paths(dir, name)
		if err := certs.CheckFiles(ca, cert, key, time.Now()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node2.crt")); err == nil {
		t.Error("node2.crt written by a refused command")
	}
}

// cliCase is one command line and what it must print and return.
type cliCase struct {
	name       string
	args       []string
	wantCode   int
	wantStdout []string
	wantStderr string
}

// runCLICases runs "vigil COMMAND ARGS..." for each case, in order: a case
// may depend on the files an earlier one wrote.
func runCLICases(t *testing.T, command string, cases []cliCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{command}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			if tt.wantCode != ExitOK && stdout.Len() != 0 {
				t.Errorf("refused, yet printed %q", stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
