package dcs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/certs"
)

// TestMemberRefusesAnOpenAddressWithoutTLS: without certificates a member
// listens on loopback only, unless told Insecure; and its URLs' scheme must
// match whether it has certificates.
func TestMemberRefusesAnOpenAddressWithoutTLS(t *testing.T) {
	base := MemberConfig{Name: "m1", DataDir: t.TempDir(), ClusterToken: "test"}
	tests := []struct {
		name         string
		peer, client string
		tls          *MemberTLS
		insecure     bool
		want         string // "" means no refusal before binding
		insecureErr  bool
	}{
		{"open peer URL", "http://198.18.0.11:2380", "http://127.0.0.1:2379", nil, false, "http://198.18.0.11:2380: an etcd member without TLS may listen on loopback only", true},
		{"every address", "http://127.0.0.1:2380", "http://0.0.0.0:2379", nil, false, "http://0.0.0.0:2379: an etcd member without TLS may listen on loopback only", true},
		{"https without files", "https://127.0.0.1:2380", "https://127.0.0.1:2379", nil, false, "https://127.0.0.1:2380: https:// needs the CA, certificate and key files", false},
		{"files with http", "http://127.0.0.1:2380", "http://127.0.0.1:2379", &MemberTLS{CAFile: "/x/ca.crt", CertFile: "/x/n.crt", KeyFile: "/x/n.key"}, false, "http://127.0.0.1:2380: a member with TLS needs https:// URLs", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.PeerURL, c.ClientURL, c.TLS, c.Insecure = tt.peer, tt.client, tt.tls, tt.insecure
			c.InitialCluster = map[string]string{"m1": tt.peer}
			m, err := StartMember(c)
			if err == nil {
				m.Close(5 * time.Second)
				t.Fatal("the member started")
			}
			want := "start etcd member m1: " + tt.want
			if len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Errorf("error %q, want it to start with %q", err, want)
			}
			if errors.Is(err, ErrInsecureMember) != tt.insecureErr {
				t.Errorf("errors.Is(err, ErrInsecureMember) = %v, want %v", !tt.insecureErr, tt.insecureErr)
			}
		})
	}
}

// TestMutualTLSMembers: three members that talk to each other and to their
// clients over mutual TLS form a cluster; a client with a node or operator
// certificate of the cluster's CA reads and writes, one with no certificate,
// with a certificate of another CA, or over plain HTTP gets nothing.
func TestMutualTLSMembers(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.InitCA(dir, "test", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.Paths(dir, "ca")
	initial := map[string]string{}
	clients := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("m%d", i+1)
		initial[name] = fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
		clients[name] = fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
		if _, err := certs.IssueNode(dir, name, []string{"127.0.0.1"}, certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	var members []*EmbeddedMember
	for name := range initial {
		cert, key := certs.Paths(dir, name)
		m, err := StartMember(MemberConfig{
			Name: name, DataDir: t.TempDir(), PeerURL: initial[name], ClientURL: clients[name],
			InitialCluster: initial, ClusterToken: "test", TickMs: 10, ElectionMs: 100,
			TLS: &MemberTLS{CAFile: ca, CertFile: cert, KeyFile: key},
		})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
		t.Cleanup(func() { m.Close(5 * time.Second) })
	}
	ctx := ctxT(t)
	for _, m := range members {
		if err := m.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := certs.IssueClient(dir, "operator", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := certs.InitCA(other, "other", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueClient(other, "intruder", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	clientTLS := func(t *testing.T, caDir, certDir, name string) *tls.Config {
		t.Helper()
		caFile, _ := certs.Paths(caDir, "ca")
		cert, key := "", ""
		if name != "" {
			cert, key = certs.Paths(certDir, name)
		}
		cfg, err := certs.ClientTLS(caFile, cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	eps := []string{clients["m1"], clients["m2"], clients["m3"]}
	for _, tt := range []struct {
		name  string
		eps   []string
		tls   *tls.Config
		works bool
	}{
		{"node certificate", eps, clientTLS(t, dir, dir, "m1"), true},
		{"operator certificate", eps, clientTLS(t, dir, dir, "operator"), true},
		{"no certificate", eps, clientTLS(t, dir, "", ""), false},
		// It trusts the cluster's CA, so only the server's refusal of its
		// certificate can stop it.
		{"certificate of another CA", eps, clientTLS(t, dir, other, "intruder"), false},
		{"plain HTTP", []string{"http" + clients["m1"][len("https"):]}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(Options{Endpoints: tt.eps, TLS: tt.tls, Cluster: "test", LeaseTTL: 2 * time.Second, DialTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			err = s.SetPaused(rctx, true)
			if tt.works && err != nil {
				t.Fatalf("write refused: %v", err)
			}
			if !tt.works && err == nil {
				t.Fatal("write accepted")
			}
			if _, err := s.Snapshot(rctx); (err == nil) != tt.works {
				t.Errorf("read: err = %v, want success %v", err, tt.works)
			}
		})
	}
}

// TestMembersCompactTheirHistory: an embedded member runs etcd's periodic
// compaction; without it the agents' writes fill etcd's quota in days and
// a full etcd refuses the leader key.
func TestMembersCompactTheirHistory(t *testing.T) {
	members, _ := startCluster(t, 1)
	cfg := members[0].etcd.Config()
	if cfg.AutoCompactionMode != "periodic" || cfg.AutoCompactionRetention != embeddedHistoryRetention {
		t.Fatalf("auto-compaction %q retention %q, want periodic %s", cfg.AutoCompactionMode, cfg.AutoCompactionRetention, embeddedHistoryRetention)
	}
}
