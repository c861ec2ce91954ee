package config

import (
	"net"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

const examplePath = "../../examples/vigil.yaml"

// TestExampleIsValid: the documented example loads and validates. Its
// settings must pass as written; what it names on the host (binaries,
// password files, account, interface) is replaced by the test's own where
// this machine lacks it.
func TestExampleIsValid(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("the example does not load:\n%v", err)
	}
	if ps := c.settingProblems(); len(ps) > 0 {
		t.Fatalf("the example's settings are invalid:\n%v", ps)
	}
	if _, err := os.Stat(filepath.Join(c.Database.BinDir, "pg_ctl")); err != nil {
		t.Logf("%s has no pg_ctl here: using a fake one", c.Database.BinDir)
		c.Database.BinDir = fakeBinDir(t, "pg_ctl")
	}
	if _, err := user.Lookup(c.Database.OSUser); err != nil {
		t.Logf("no account %s here: using root", c.Database.OSUser)
		c.Database.OSUser = "root"
	}
	if _, err := net.InterfaceByName(c.VIP.Interface); err != nil {
		t.Logf("no interface %s here: using lo", c.VIP.Interface)
		c.VIP.Interface = "lo"
	}
	// The example's password files belong in /etc/vigil on a real node.
	c.Database.Superuser.PasswordFile = writeFile(t, "superuser.password", "s3cr3t\n", 0o600)
	c.Database.Replication.PasswordFile = writeFile(t, "replication.password", "s3cr3t\n", 0o600)
	c.API.TokenFile = writeFile(t, "api.token", "0123456789abcdef0123\n", 0o600)
	c.API.CertFile = writeFile(t, "api.pem", "certificate\n", 0o600)
	c.API.KeyFile = writeFile(t, "api.key", "key\n", 0o600)
	if err := c.Validate(); err != nil {
		t.Fatalf("the example is invalid on this host:\n%v", err)
	}
	if ws := c.Warnings(); len(ws) > 0 {
		t.Errorf("the example draws warnings:\n%v", ws)
	}
}

// TestExampleDocumentsEveryKey: every key of Config appears in the example,
// set or commented out, so a new key cannot go undocumented.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range schemaPaths(reflect.TypeFor[Config](), "") {
		key := lastKey(path)
		if !regexp.MustCompile(`(?m)^\s*(#\s*)?` + regexp.QuoteMeta(key) + `:`).Match(data) {
			t.Errorf("examples/vigil.yaml does not document %s", path)
		}
	}
}

func lastKey(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return path[i+1:]
		}
	}
	return path
}
