package dcs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-ha/vigil/internal/certs"
)

// TestAccessRefusalsNameWhatFailed: against an etcd member with mutual TLS
// and authentication enabled, a user whose role covers its cluster's prefix
// passes Check and works; a CA etcd's certificate is not signed by, an
// expired client certificate, a wrong password and a user limited to
// another cluster's prefix are each refused with an error that matches
// ErrAccess and names the file or the prefix to fix.
func TestAccessRefusalsNameWhatFailed(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if _, err := certs.InitCA(dir, "test", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.InitCA(other, "other", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root", "agent"} {
		if _, err := certs.IssueClient(dir, name, certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := certs.IssueClient(other, "agent", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueNode(dir, "m1", []string{"127.0.0.1"}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	// Issued two days ago for one day.
	if _, err := certs.IssueClient(dir, "expired", certs.Options{Now: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.Paths(dir, "ca")
	otherCA, _ := certs.Paths(other, "ca")
	cert, key := certs.Paths(dir, "m1")
	peer, client := fmt.Sprintf("https://127.0.0.1:%d", freePort(t)), fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	m, err := StartMember(MemberConfig{
		Name: "m1", DataDir: t.TempDir(), PeerURL: peer, ClientURL: client,
		InitialCluster: map[string]string{"m1": peer}, ClusterToken: "test", TickMs: 10, ElectionMs: 100,
		TLS: &MemberTLS{CAFile: ca, CertFile: cert, KeyFile: key},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(5 * time.Second) })
	ctx := ctxT(t)
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tlsFor := func(caFile, certDir, name string) Options {
		cert, key := certs.Paths(certDir, name)
		c, err := certs.ClientTLS(caFile, cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		// etcd checks passwords with bcrypt: on a loaded 2-core machine
		// under -race a login takes well over a second.
		return Options{Endpoints: []string{client}, TLS: c, LeaseTTL: 2 * time.Second, DialTimeout: 5 * time.Second,
			Sources: Sources{CA: "dcs.tls.ca_file " + caFile, Cert: "dcs.tls.cert_file " + cert, Password: "dcs.password_file /etc/vigil/etcd.pass"}}
	}
	// The root user is authenticated by its certificate's common name.
	admin, err := Open(withCluster(tlsFor(ca, dir, "root"), "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := enableAuth(ctx, admin.Client(), map[string]string{"vigil-a": "a", "vigil-b": "b"}); err != nil {
		t.Fatal(err)
	}

	withUser := func(o Options, cluster, user, password string) Options {
		o.Cluster, o.Username, o.Password = cluster, user, password
		return o
	}
	good := withUser(tlsFor(ca, dir, "agent"), "a", "vigil-a", "pw-vigil-a")
	s, err := Open(good)
	if err != nil {
		t.Fatalf("the right credentials: %v", err)
	}
	defer s.Close()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("the right credentials: %v", err)
	}
	if err := s.SetPaused(ctx, true); err != nil {
		t.Fatalf("write to the own prefix: %v", err)
	}
	// Cluster b's keys are out of reach of cluster a's user.
	_, err = s.Client().Put(ctx, "/vigil/b/leader", "node1")
	if err == nil {
		t.Fatal("cluster a's user wrote /vigil/b/leader")
	}
	if _, err := s.Client().Get(ctx, "/vigil/b/", clientv3.WithPrefix()); err == nil {
		t.Error("cluster a's user read /vigil/b/")
	}

	for _, tt := range []struct {
		name string
		o    Options
		want []string
	}{
		{"unknown CA", withUser(tlsFor(otherCA, other, "agent"), "a", "vigil-a", "pw-vigil-a"),
			[]string{"etcd at " + client + ": TLS: certificate signed by unknown authority (dcs.tls.ca_file " + otherCA + ")"}},
		// Without a user the client connects lazily: Check finds it out.
		{"unknown CA, no user", withUser(tlsFor(otherCA, other, "agent"), "a", "", ""),
			[]string{"etcd at " + client + ": TLS: certificate signed by unknown authority (dcs.tls.ca_file " + otherCA + ")"}},
		{"expired client certificate", withUser(tlsFor(ca, dir, "expired"), "a", "vigil-a", "pw-vigil-a"),
			[]string{"etcd at " + client + " refused this agent's client certificate: it has expired", "expired.crt"}},
		{"wrong password", withUser(tlsFor(ca, dir, "agent"), "a", "vigil-a", "not-the-password"),
			[]string{"etcd authentication failed for user vigil-a (dcs.password_file /etc/vigil/etcd.pass)"}},
		{"prefix of another cluster", withUser(tlsFor(ca, dir, "agent"), "a", "vigil-b", "pw-vigil-b"),
			[]string{"etcd permission denied on /vigil/a/...: the etcd role of user vigil-b must grant readwrite on the prefix /vigil/a/"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := openAndCheck(ctx, tt.o)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			if !errors.Is(err, ErrAccess) {
				t.Errorf("error does not match ErrAccess: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "pw-vigil") || strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func withCluster(o Options, cluster string) Options {
	o.Cluster = cluster
	return o
}

func openAndCheck(ctx context.Context, o Options) error {
	s, err := Open(o)
	if err != nil {
		return err
	}
	defer s.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.Check(cctx)
}

// enableAuth sets etcd up as README's Configuration section says: a root
// user, and for each user a role with readwrite on /vigil/<cluster>/ only.
// users maps each user to its cluster; its password is "pw-" + the user.
func enableAuth(ctx context.Context, c *clientv3.Client, users map[string]string) error {
	if _, err := c.UserAdd(ctx, "root", "pw-root"); err != nil {
		return err
	}
	if _, err := c.UserGrantRole(ctx, "root", "root"); err != nil {
		return err
	}
	for user, cluster := range users {
		prefix := "/vigil/" + cluster + "/"
		role := "vigil-" + cluster
		if _, err := c.RoleAdd(ctx, role); err != nil {
			return err
		}
		if _, err := c.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			return err
		}
		if _, err := c.UserAdd(ctx, user, "pw-"+user); err != nil {
			return err
		}
		if _, err := c.UserGrantRole(ctx, user, role); err != nil {
			return err
		}
	}
	_, err := c.AuthEnable(ctx)
	return err
}
