package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// newCA makes a CA in a fresh directory.
func newCA(t *testing.T, o Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := InitCA(dir, "main", o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func issueNode(t *testing.T, dir, name string, o Options, hosts ...string) Issued {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	is, err := IssueNode(dir, name, hosts, o)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestIssueWritesFilesWithTheirModes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := InitCA(dir, "main", Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	node := issueNode(t, dir, "node1", Options{Now: now}, "198.18.0.11", "node1.example.com", "::1")
	op, err := IssueClient(dir, "alice", Options{Now: now, Validity: 30 * day})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(dir, "ca.crt"), 0o644}, {filepath.Join(dir, "ca.key"), 0o600},
		{filepath.Join(dir, "node1.crt"), 0o644}, {filepath.Join(dir, "node1.key"), 0o600},
		{filepath.Join(dir, "alice.crt"), 0o644}, {filepath.Join(dir, "alice.key"), 0o600},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %04o, want %04o", f.path, fi.Mode().Perm(), f.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 6 {
		t.Errorf("directory holds %d entries, want 6 (no temporary files left)", len(entries))
	}
	if want := now.Add(DefaultCAValidity); !ca.NotAfter.Equal(want) {
		t.Errorf("CA expires %s, want %s", ca.NotAfter, want)
	}
	if want := now.Add(DefaultLeafValidity); !node.NotAfter.Equal(want) || node.Capped {
		t.Errorf("node certificate expires %s (capped %v), want %s", node.NotAfter, node.Capped, want)
	}
	if want := now.Add(30 * day); !op.NotAfter.Equal(want) {
		t.Errorf("client certificate expires %s, want %s", op.NotAfter, want)
	}
	if got := strings.Join(node.Hosts, ","); got != "198.18.0.11,::1,node1.example.com" {
		t.Errorf("hosts %s", got)
	}

	c := mustCert(t, node.CertFile)
	if len(c.ExtKeyUsage) != 2 || c.Subject.CommonName != "node1" || c.Subject.Organization[0] != "main" {
		t.Errorf("node certificate: ext key usage %v, subject %s", c.ExtKeyUsage, c.Subject)
	}
	if c := mustCert(t, op.CertFile); len(c.ExtKeyUsage) != 1 || c.Subject.CommonName != "alice" || len(c.IPAddresses)+len(c.DNSNames) != 0 {
		t.Errorf("client certificate: ext key usage %v, subject %s", c.ExtKeyUsage, c.Subject)
	}
	if err := CheckFiles(ca.CertFile, node.CertFile, node.KeyFile, now.Add(time.Hour)); err != nil {
		t.Errorf("check node files: %v", err)
	}
	if err := CheckFiles(ca.CertFile, op.CertFile, op.KeyFile, now.Add(time.Hour)); err != nil {
		t.Errorf("check client files: %v", err)
	}
	// Issued a few minutes ago on a host whose clock is ahead: still valid.
	if err := CheckFiles(ca.CertFile, node.CertFile, node.KeyFile, now.Add(-time.Minute)); err != nil {
		t.Errorf("check with a clock one minute behind: %v", err)
	}
	for _, h := range []string{"198.18.0.11", "node1.example.com", "::1"} {
		if err := VerifyHost(node.CertFile, h); err != nil {
			t.Errorf("VerifyHost %s: %v", h, err)
		}
	}
}

func TestIssueRefusals(t *testing.T) {
	dir := newCA(t, Options{})
	issueNode(t, dir, "node1", Options{})
	empty := t.TempDir()
	tests := []struct {
		name  string
		issue func() error
		want  string
	}{
		{"CA over an existing CA", func() error { _, err := InitCA(dir, "main", Options{}); return err }, "ca.crt: file exists: use --force"},
		{"node over an existing node", func() error { _, err := IssueNode(dir, "node1", []string{"127.0.0.1"}, Options{}); return err }, "node1.crt: file exists: use --force"},
		{"empty cluster name", func() error { _, err := InitCA(t.TempDir(), " ", Options{}); return err }, "cluster name is empty"},
		{"no CA", func() error { _, err := IssueNode(empty, "node1", []string{"127.0.0.1"}, Options{}); return err }, "vigil certs init --dir " + empty},
		{"no host", func() error { _, err := IssueNode(dir, "node2", nil, Options{}); return err }, "no host"},
		{"bad host", func() error { _, err := IssueNode(dir, "node2", []string{"bad host!"}, Options{}); return err }, `host "bad host!" is neither`},
		{"name taking the CA's files", func() error { _, err := IssueClient(dir, "ca", Options{}); return err }, `name "ca"`},
		{"name with a path", func() error { _, err := IssueClient(dir, "../alice", Options{}); return err }, `name "../alice"`},
		{"negative validity", func() error { _, err := IssueClient(dir, "alice", Options{Validity: -time.Hour}); return err }, "negative"},
		{"expired CA", func() error {
			_, err := IssueClient(dir, "alice", Options{Now: time.Now().Add(DefaultCAValidity + day)})
			return err
		}, "expired on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.issue()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := InitCA(dir, "main", Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("overwrite error %v is not ErrExists", err)
	}
	// With --force, a replaced node pair still matches.
	again, err := IssueNode(dir, "node1", []string{"127.0.0.1"}, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFiles(filepath.Join(dir, "ca.crt"), again.CertFile, again.KeyFile, time.Now()); err != nil {
		t.Errorf("after --force: %v", err)
	}
}

func TestLeafNeverOutlivesItsCA(t *testing.T) {
	dir := newCA(t, Options{Validity: 365 * day})
	is := issueNode(t, dir, "node1", Options{Validity: 3 * 365 * day})
	ca := mustCert(t, filepath.Join(dir, "ca.crt"))
	if !is.Capped || !is.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("leaf expires %s (capped %v), want the CA's %s", is.NotAfter, is.Capped, ca.NotAfter)
	}
}

func TestCheckFilesRefusals(t *testing.T) {
	now := time.Now()
	dir := newCA(t, Options{})
	other := newCA(t, Options{})
	ca := filepath.Join(dir, "ca.crt")
	good := issueNode(t, dir, "node1", Options{})
	node2 := issueNode(t, dir, "node2", Options{})
	foreign := issueNode(t, other, "node1", Options{})
	expired := issueNode(t, dir, "old", Options{Now: now.Add(-3 * 365 * day), Validity: 365 * day})
	future := issueNode(t, dir, "future", Options{Now: now.Add(day)})
	expiredCADir := newCA(t, Options{Now: now.Add(-2 * day), Validity: day})

	scratch := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(scratch, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notPEM := write("garbage.crt", "not a certificate\n", 0o644)
	keyOnly := write("keyonly.crt", mustRead(t, good.KeyFile), 0o644)
	openKey := write("open.key", mustRead(t, good.KeyFile), 0o644)
	groupKey := write("group.key", mustRead(t, good.KeyFile), 0o640)
	noKey := write("nokey.key", "nothing here\n", 0o600)
	missing := filepath.Join(scratch, "missing.crt")

	tests := []struct {
		name          string
		ca, cert, key string
		want          []string
	}{
		{"CA file missing", missing, good.CertFile, good.KeyFile, []string{"read certificate file " + missing, "no such file", "cluster's ca.crt"}},
		{"CA file is a directory", dir, good.CertFile, good.KeyFile, []string{"read certificate file " + dir}},
		{"CA file holds no certificate", notPEM, good.CertFile, good.KeyFile, []string{"certificate file " + notPEM + " holds no PEM certificate", "vigil certs init"}},
		{"CA file holds a key", keyOnly, good.CertFile, good.KeyFile, []string{keyOnly + " holds no PEM certificate"}},
		{"CA expired", filepath.Join(expiredCADir, "ca.crt"), "", "", []string{"the CA in " + filepath.Join(expiredCADir, "ca.crt"), "expired on"}},
		{"certificate missing", ca, missing, good.KeyFile, []string{"read certificate file " + missing, "vigil certs node"}},
		{"certificate holds no certificate", ca, notPEM, good.KeyFile, []string{notPEM + " holds no PEM certificate"}},
		{"key missing", ca, good.CertFile, missing, []string{"key file " + missing, "no such file"}},
		{"key readable by others", ca, good.CertFile, openKey, []string{"key file " + openKey + " is readable by group or others (mode 0644): chmod 600 " + openKey}},
		{"key readable by the group", ca, good.CertFile, groupKey, []string{"(mode 0640): chmod 600 " + groupKey}},
		{"key file holds no key", ca, good.CertFile, noKey, []string{"key file " + noKey + " holds no PEM private key"}},
		{"key of another certificate", ca, good.CertFile, node2.KeyFile, []string{"key file " + node2.KeyFile + " does not match certificate " + good.CertFile}},
		{"certificate expired", ca, expired.CertFile, expired.KeyFile, []string{"certificate in " + expired.CertFile, "expired on", "vigil certs"}},
		{"certificate not yet valid", ca, future.CertFile, future.KeyFile, []string{"certificate in " + future.CertFile, "is not valid before", "clock"}},
		{"certificate from another CA", ca, foreign.CertFile, foreign.KeyFile, []string{"certificate " + foreign.CertFile, "is not signed by the CA in " + ca}},
		{"certificate without key", ca, good.CertFile, "", []string{"certificate file " + good.CertFile + " is given without its key file"}},
		{"key without certificate", ca, "", good.KeyFile, []string{"key file " + good.KeyFile + " is given without its certificate file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFiles(tt.ca, tt.cert, tt.key, now)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("several problems at once", func(t *testing.T) {
		err := CheckFiles(ca, expired.CertFile, openKey, now)
		if err == nil || strings.Count(err.Error(), "\n") < 2 {
			t.Fatalf("error %q: want three lines (mode, mismatch, expiry)", err)
		}
	})
	t.Run("CA only", func(t *testing.T) {
		if err := CheckFiles(ca, "", "", now); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerifyHostNamesTheWrongHost(t *testing.T) {
	dir := newCA(t, Options{})
	is := issueNode(t, dir, "node1", Options{}, "198.18.0.11", "node1.example.com")
	tests := []struct {
		host string
		ok   bool
	}{
		{"198.18.0.11", true},
		{"node1.example.com", true},
		{"198.18.0.12", false},
		{"node2.example.com", false},
		{"localhost", false},
	}
	for _, tt := range tests {
		err := VerifyHost(is.CertFile, tt.host)
		if tt.ok != (err == nil) {
			t.Errorf("VerifyHost %s: %v", tt.host, err)
			continue
		}
		if err != nil && (!strings.Contains(err.Error(), is.CertFile) || !strings.Contains(err.Error(), `not valid for host "`+tt.host+`"`) ||
			!strings.Contains(err.Error(), "198.18.0.11, node1.example.com")) {
			t.Errorf("VerifyHost %s: message %q should name the file, the host and what the certificate names", tt.host, err)
		}
	}
	if err := VerifyHost(filepath.Join(dir, "missing.crt"), "node1"); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Errorf("missing file: %v", err)
	}
}

// TestMutualTLSWithIssuedFiles uses the files as the cluster's ports do: a
// node serving with client certificates required, reached by an operator and
// by another node, and refusing clients and servers of another CA.
func TestMutualTLSWithIssuedFiles(t *testing.T) {
	dir := newCA(t, Options{})
	ca := filepath.Join(dir, "ca.crt")
	node1 := issueNode(t, dir, "node1", Options{}, "127.0.0.1", "node1.example.com")
	node2 := issueNode(t, dir, "node2", Options{}, "127.0.0.2")
	alice, err := IssueClient(dir, "alice", Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, Options{})
	mallory, err := IssueClient(other, "mallory", Options{})
	if err != nil {
		t.Fatal(err)
	}
	impostor := issueNode(t, other, "node1", Options{}, "127.0.0.1", "node1.example.com")

	server := func(is Issued) *tls.Config {
		cfg, err := ServerTLS(ca, is.CertFile, is.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	client := func(cert, key, name string) *tls.Config {
		cfg, err := ClientTLS(ca, cert, key, name)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name       string
		server     *tls.Config
		client     *tls.Config
		wantServer string // error the server's handshake ends with; "" for success
		wantClient string
	}{
		{"operator to node", server(node1), client(alice.CertFile, alice.KeyFile, "node1.example.com"), "", ""},
		{"node to node by IP (etcd peer)", server(node1), client(node2.CertFile, node2.KeyFile, "127.0.0.1"), "", ""},
		{"client without a certificate", server(node1), client("", "", "node1.example.com"), "didn't provide a certificate", ""},
		{"client of another CA", server(node1), client(mallory.CertFile, mallory.KeyFile, "node1.example.com"), "certificate signed by unknown authority", ""},
		{"server of another CA", server(impostor), client(alice.CertFile, alice.KeyFile, "node1.example.com"), "", "certificate signed by unknown authority"},
		{"server under another name", server(node1), client(alice.CertFile, alice.KeyFile, "node2.example.com"), "", "not node2.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverErr, clientErr := handshake(t, tt.server, tt.client)
			check := func(side string, err error, want string) {
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v", side, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: error %v, want one containing %q", side, err, want)
				}
			}
			// The side that refuses ends its handshake with the reason;
			// the other only hears of an alert.
			switch {
			case tt.wantClient != "":
				check("client", clientErr, tt.wantClient)
				if serverErr == nil {
					t.Error("server: no error although the client refused it")
				}
			case tt.wantServer != "":
				check("server", serverErr, tt.wantServer)
				if clientErr == nil {
					t.Error("client: no error although the server refused it")
				}
			default:
				check("server", serverErr, "")
				check("client", clientErr, "")
			}
		})
	}
}

// handshake runs a TLS handshake over loopback TCP and then one byte each
// way: with TLS 1.3 a client learns that the server refused its certificate
// only when it next reads.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, serverCfg)
		if err := s.Handshake(); err != nil {
			done <- err
			return
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(s, b); err != nil {
			done <- err
			return
		}
		_, err = s.Write(b)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, clientCfg)
	clientErr = tc.Handshake()
	if clientErr == nil {
		if _, err := tc.Write([]byte{1}); err != nil {
			clientErr = err
		} else if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
			clientErr = err
		}
	}
	if clientErr != nil {
		c.Close() // unblock a server still waiting for the client
	}
	return <-done, clientErr
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cs, err := readCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}
