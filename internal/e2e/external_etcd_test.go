package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/dcs"
)

// externalEtcd is an etcd member run by `vigil witness` as a process of its
// own, with mutual TLS and etcd authentication: a user per cluster whose
// role grants readwrite on /vigil/<cluster>/ only, as README's
// Configuration section tells operators to set it up.
type externalEtcd struct {
	url     string
	certDir string // the etcd CA, the member's and the clients' certificates
	other   string // another CA, with a client certificate "agent"
	// passwordFiles by user: vigil-e2e (cluster e2e), vigil-b (cluster b).
	passwordFiles map[string]string
}

// startExternalEtcd starts the member and enables authentication.
func startExternalEtcd(t *testing.T, ctx context.Context) *externalEtcd {
	t.Helper()
	dir := t.TempDir()
	e := &externalEtcd{certDir: filepath.Join(dir, "pki"), other: filepath.Join(dir, "other"), passwordFiles: map[string]string{}}
	if _, err := certs.InitCA(e.certDir, "etcd", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueNode(e.certDir, "etcd1", []string{"127.0.0.1"}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root", "agent"} {
		if _, err := certs.IssueClient(e.certDir, name, certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// Issued two days ago for one day.
	if _, err := certs.IssueClient(e.certDir, "expired", certs.Options{Now: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.InitCA(e.other, "other", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueClient(e.other, "agent", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	peer := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	e.url = fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	ca, _ := certs.Paths(e.certDir, "ca")
	cert, key := certs.Paths(e.certDir, "etcd1")
	logFile, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vigilBin, "witness", "--cluster", "external", "--name", "etcd1", "--data-dir", filepath.Join(dir, "data"),
		"--peer-url", peer, "--client-url", e.url, "--initial-cluster", "etcd1="+peer,
		"--cacert", ca, "--cert", cert, "--key", key)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			t.Logf("external etcd's log:\n%s", tail(readFile(t, logFile.Name()), 30))
		}
	})

	// The root user is authenticated by its certificate's common name.
	admin := e.client(t, "root")
	if err := eventually(ctx, 30*time.Second, func() error {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := admin.Status(sctx, e.url)
		return err
	}); err != nil {
		t.Fatalf("external etcd did not start: %v", err)
	}
	if _, err := admin.UserAdd(ctx, "root", "root-password-e2e"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	for user, cluster := range map[string]string{"vigil-e2e": "e2e", "vigil-b": "b"} {
		prefix := "/vigil/" + cluster + "/"
		if _, err := admin.RoleAdd(ctx, user); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			t.Fatal(err)
		}
		password := "etcd-password-" + user
		if _, err := admin.UserAdd(ctx, user, password); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.UserGrantRole(ctx, user, user); err != nil {
			t.Fatal(err)
		}
		e.passwordFiles[user] = filepath.Join(dir, user+".password")
		if err := os.WriteFile(e.passwordFiles[user], []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// client is a raw etcd client with the client certificate name of the
// etcd CA (authenticated by its common name once auth is on).
func (e *externalEtcd) client(t *testing.T, name string) *clientv3.Client {
	t.Helper()
	ca, _ := certs.Paths(e.certDir, "ca")
	cert, key := certs.Paths(e.certDir, name)
	cfg, err := certs.ClientTLS(ca, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.url}, TLS: cfg, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// store is a DCS session on cluster as root: the test's view of the keys.
func (e *externalEtcd) store(t *testing.T, cluster string) *dcs.Store {
	t.Helper()
	ca, _ := certs.Paths(e.certDir, "ca")
	cert, key := certs.Paths(e.certDir, "root")
	cfg, err := certs.ClientTLS(ca, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := dcs.Open(dcs.Options{Endpoints: []string{e.url}, TLS: cfg, Cluster: cluster, LeaseTTL: testTTL, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dcsSection is an agent's dcs configuration for this etcd: the CA and
// client certificate of caDir, and user with its password file.
func (e *externalEtcd) dcsSection(caDir, certName, user string) map[string]any {
	ca, _ := certs.Paths(caDir, "ca")
	cert, key := certs.Paths(caDir, certName)
	d := map[string]any{
		"endpoints": []string{e.url},
		"tls":       map[string]any{"ca_file": ca, "cert_file": cert, "key_file": key},
	}
	if user != "" {
		d["username"], d["password_file"] = user, e.passwordFiles[user]
	}
	return d
}

// TestAgentsOnExternalEtcdWithTLSAndAuth: two agents on an external etcd
// that requires client certificates and a user limited to the cluster's
// prefix: the first primary becomes writable, and a node crash is failed
// over. The agents' user can neither write nor read another cluster's keys.
func TestAgentsOnExternalEtcdWithTLSAndAuth(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	etcd := startExternalEtcd(t, ctx)
	c := newCluster(t, clusterOptions{nodes: 2, endpoints: []string{etcd.url},
		edit: func(_ string, cfg map[string]any) { cfg["dcs"] = etcd.dcsSection(etcd.certDir, "agent", "vigil-e2e") }})
	for _, n := range c.lab.Nodes() {
		c.startAgent(n.Name)
	}
	s := etcd.store(t, "e2e")
	if p := c.waitWritablePrimary(ctx, s); p != "node1" {
		t.Fatalf("initial primary = %s, want node1", p)
	}
	for _, n := range c.lab.Nodes() {
		if logs := readFile(t, filepath.Join(c.dir, n.Name+".agent.log")); !strings.Contains(logs, "etcd access checked") {
			t.Errorf("%s's log does not show its access check:\n%s", n.Name, tail(logs, 20))
		}
	}
	c.crashNode(ctx, "node1")
	if p := c.waitWritablePrimary(ctx, s, "node1"); p != "node2" {
		t.Fatalf("primary after the crash = %s, want node2", p)
	}

	// The agents' user, as the agents use it, on cluster b's keys.
	ca, _ := certs.Paths(etcd.certDir, "ca")
	cert, key := certs.Paths(etcd.certDir, "agent")
	tlsCfg, err := certs.ClientTLS(ca, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(readFile(t, etcd.passwordFiles["vigil-e2e"]))
	intruder, err := dcs.Open(dcs.Options{Endpoints: []string{etcd.url}, TLS: tlsCfg, Username: "vigil-e2e", Password: password,
		Cluster: "b", LeaseTTL: testTTL, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if acquired, _, err := intruder.AcquireLeader(wctx, "node1"); acquired || err == nil || !strings.Contains(err.Error(), "etcd permission denied on /vigil/b/") {
		t.Errorf("cluster e2e's user taking cluster b's leader key: acquired %v, err %v; want a permission refusal naming /vigil/b/", acquired, err)
	}
	if err := intruder.SetPaused(wctx, true); !errors.Is(err, dcs.ErrAccess) {
		t.Errorf("cluster e2e's user pausing cluster b: %v, want a permission refusal", err)
	}
	if _, err := intruder.Client().Put(wctx, "/vigil/b/leader", "node1"); err == nil {
		t.Error("cluster e2e's user wrote /vigil/b/leader")
	}
	if _, err := intruder.Snapshot(wctx); !errors.Is(err, dcs.ErrAccess) {
		t.Errorf("cluster e2e's user reading cluster b: %v, want a permission refusal", err)
	}
	if v, err := etcd.store(t, "b").Snapshot(wctx); err != nil || v.Leader != "" || v.Config.Paused || len(v.Members) > 0 {
		t.Errorf("cluster b's keys changed: %+v, %v", v, err)
	}
}

// TestAgentRefusesWrongEtcdCredentials: an agent whose etcd credentials
// are wrong stops at once with exit status 2 and an error naming what
// failed and the key or file to fix: a CA etcd's certificate is not signed
// by, an expired client certificate, a wrong password, and a user whose
// role covers another cluster's prefix.
func TestAgentRefusesWrongEtcdCredentials(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	etcd := startExternalEtcd(t, ctx)
	c := newCluster(t, clusterOptions{nodes: 1, endpoints: []string{etcd.url},
		edit: func(_ string, cfg map[string]any) { cfg["dcs"] = etcd.dcsSection(etcd.certDir, "agent", "vigil-e2e") }})
	otherCA, _ := certs.Paths(etcd.other, "ca")
	expiredCert, _ := certs.Paths(etcd.certDir, "expired")
	wrongPassword := filepath.Join(t.TempDir(), "wrong.password")
	if err := os.WriteFile(wrongPassword, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		dcs  map[string]any
		want []string
	}{
		{"unknown CA", etcd.dcsSection(etcd.other, "agent", "vigil-e2e"),
			[]string{"etcd at " + etcd.url + ": TLS: certificate signed by unknown authority (dcs.tls.ca_file " + otherCA + ")"}},
		{"expired client certificate", etcd.dcsSection(etcd.certDir, "expired", "vigil-e2e"),
			[]string{"dcs.tls", expiredCert, "expired"}},
		{"wrong password", withPasswordFile(etcd.dcsSection(etcd.certDir, "agent", "vigil-e2e"), wrongPassword),
			[]string{"etcd authentication failed for user vigil-e2e (dcs.password_file " + wrongPassword + ")"}},
		{"user of another cluster", etcd.dcsSection(etcd.certDir, "agent", "vigil-b"),
			[]string{"etcd permission denied on /vigil/e2e/...: the etcd role of user vigil-b must grant readwrite on the prefix /vigil/e2e/"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := rewriteConfig(t, c.ConfigPath("node1"), func(cfg map[string]any) { cfg["dcs"] = tt.dcs })
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			start := time.Now()
			out, err := exec.CommandContext(rctx, vigilBin, "agent", "--config", path).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("agent: %v after %s, want exit status 2:\n%s", err, time.Since(start).Round(time.Millisecond), out)
			}
			t.Logf("agent exited 2 after %s:\n%s", time.Since(start).Round(time.Millisecond), tail(strings.TrimSpace(string(out)), 3))
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("agent's output does not contain %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "etcd-password-") || strings.Contains(string(out), "not-the-password") {
				t.Errorf("agent's output shows a password:\n%s", out)
			}
		})
	}
	// The agent refuses the expired certificate before dialling; etcd
	// itself refuses it too, and the DCS client says so.
	ca, _ := certs.Paths(etcd.certDir, "ca")
	expiredKey := strings.TrimSuffix(expiredCert, ".crt") + ".key"
	expiredTLS, err := certs.ClientTLS(ca, expiredCert, expiredKey, "")
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(readFile(t, etcd.passwordFiles["vigil-e2e"]))
	_, err = dcs.Open(dcs.Options{Endpoints: []string{etcd.url}, TLS: expiredTLS, Username: "vigil-e2e", Password: password,
		Cluster: "e2e", LeaseTTL: testTTL, DialTimeout: time.Second, Sources: dcs.Sources{Cert: "dcs.tls.cert_file " + expiredCert}})
	if !errors.Is(err, dcs.ErrAccess) || !strings.Contains(err.Error(), "refused this agent's client certificate: it has expired (dcs.tls.cert_file "+expiredCert+")") {
		t.Errorf("DCS client with an expired certificate: %v, want etcd's refusal naming the file", err)
	}
	// Nothing of the refused agents reached etcd.
	if v, err := etcd.store(t, "e2e").Snapshot(ctx); err != nil || len(v.Members) > 0 || v.Leader != "" {
		t.Errorf("cluster e2e after the refusals: %+v, %v", v, err)
	}
}

func withPasswordFile(d map[string]any, path string) map[string]any {
	d["password_file"] = path
	return d
}

// rewriteConfig writes a copy of the configuration at path changed by edit.
func rewriteConfig(t *testing.T, path string, edit func(map[string]any)) string {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(readFile(t, path)), &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}
