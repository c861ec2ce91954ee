package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/certs"
)

// embeddedYAML is the body of the dcs section of an embedded member on
// 198.18.0.11 with URLs of scheme, followed by extra (its tls section, or
// insecure).
func embeddedYAML(scheme, extra string) string {
	return "  embedded:\n    enabled: true\n" +
		"    peer_url: " + scheme + "://198.18.0.11:2380\n    client_url: " + scheme + "://198.18.0.11:2379\n" +
		"    initial_cluster:\n      node1: " + scheme + "://198.18.0.11:2380\n      node2: " + scheme + "://198.18.0.12:2380\n      node3: " + scheme + "://198.18.0.13:2380\n" + extra
}

// embeddedConfig writes nodeConfig's file with an embedded member instead
// of the external endpoints.
func embeddedConfig(t *testing.T, dcs string) string {
	t.Helper()
	path := nodeConfig(t, "")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const external = "dcs:\n  endpoints: [http://198.18.0.21:2379]\n"
	if !strings.Contains(string(data), external) {
		t.Fatalf("nodeConfig no longer writes %q", external)
	}
	text := strings.Replace(string(data), external, "dcs:\n"+dcs, 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigCheckEmbeddedTLS: `vigil config check` refuses an embedded
// member open to the network and says why, accepts one with mutual TLS,
// and refuses TLS files a handshake would fail on.
func TestConfigCheckEmbeddedTLS(t *testing.T) {
	pki := t.TempDir()
	if _, err := certs.InitCA(pki, "main", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueNode(pki, "node1", []string{"198.18.0.11"}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.Paths(pki, "ca")
	cert, key := certs.Paths(pki, "node1")
	tlsYAML := "    tls:\n      ca_file: " + ca + "\n      cert_file: " + cert + "\n      key_file: " + key + "\n"
	openKey := filepath.Join(t.TempDir(), "node1.key")
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(openKey, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	runCLICases(t, "config", []cliCase{
		{"open member", []string{"check", embeddedConfig(t, embeddedYAML("http", ""))}, ExitUsage, nil,
			"dcs.embedded.peer_url: listens on 198.18.0.11:2380 without TLS: anyone who reaches that port can write the leader key and force a failover"},
		{"explicitly insecure", []string{"check", embeddedConfig(t, embeddedYAML("http", "    insecure: true\n"))}, ExitOK, []string{"OK"}, ""},
		{"mutual TLS", []string{"check", embeddedConfig(t, embeddedYAML("https", tlsYAML))}, ExitOK, []string{"OK"}, ""},
		{"key open to others", []string{"check", embeddedConfig(t, embeddedYAML("https", "    tls:\n      ca_file: "+ca+"\n      cert_file: "+cert+"\n      key_file: "+openKey+"\n"))}, ExitUsage, nil,
			"dcs.embedded.tls: key file " + openKey + " is readable by group or others (mode 0644): chmod 600 " + openKey},
	})
}

// TestWitnessAndCtlTLSFlags: the witness refuses to listen on the network
// without TLS, and half a set of TLS flags is a usage error, before
// anything starts or connects.
func TestWitnessAndCtlTLSFlags(t *testing.T) {
	dir := t.TempDir()
	witness := []string{"--cluster", "main", "--name", "w", "--data-dir", dir}
	open := append(witness, "--peer-url", "http://198.18.0.99:2380", "--client-url", "http://198.18.0.99:2379", "--initial-cluster", "w=http://198.18.0.99:2380")
	runCLICases(t, "witness", []cliCase{
		{"open", open, ExitUsage, nil, "an etcd member without TLS may listen on loopback only"},
		{"half the TLS flags", append(open, "--cacert", "/etc/vigil/ca.crt"), ExitUsage, nil, "--cacert, --cert and --key go together"},
		{"TLS and insecure", append(open, "--cacert", "/c", "--cert", "/n.crt", "--key", "/n.key", "--insecure"), ExitUsage, nil, "remove --insecure"},
	})
	runCLICases(t, "ctl", []cliCase{
		{"certificate without key", []string{"--endpoints", "https://198.18.0.11:2379", "--cluster", "main", "--cert", "/x.crt", "list"}, ExitUsage, nil, "--cert and --key go together"},
	})
}
