package node

import (
	"net/http"
	"testing"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/dcs"
)

func TestAssemblyHelpers(t *testing.T) {
	if got := pgpassEscape(`a:b\c`); got != `a\:b\\c` {
		t.Errorf("pgpassEscape = %q", got)
	}
	if got := vipLabel("eth0"); got != "eth0:vip" {
		t.Errorf("vipLabel(eth0) = %q", got)
	}
	if got := vipLabel("a-very-long-if0"); got != "" {
		t.Errorf("vipLabel of a long interface = %q, want none (labels hold 15 characters)", got)
	}
	cfg := func(listen, cert string) *config.Config {
		c := &config.Config{}
		c.Node.Host = "198.18.0.11"
		c.API.Listen, c.API.CertFile = listen, cert
		return c
	}
	for _, tt := range []struct {
		cfg  *config.Config
		want string
	}{
		{cfg(":8008", ""), "http://198.18.0.11:8008"},
		{cfg("0.0.0.0:8008", "api.crt"), "https://198.18.0.11:8008"},
		{cfg("127.0.0.1:9000", ""), "http://127.0.0.1:9000"},
		{cfg("", ""), ""},
	} {
		if got := apiURL(tt.cfg); got != tt.want {
			t.Errorf("apiURL(listen %q) = %q, want %q", tt.cfg.API.Listen, got, tt.want)
		}
	}
	a, b := cfg(":8008", ""), cfg(":8008", "")
	b.DCS.Failsafe = true
	if configDigest(a) == configDigest(b) {
		t.Error("members that disagree on failsafe mode have the same configuration digest")
	}
}

// TestDCSSourcesNameTheKeys: etcd's refusals name the configuration keys
// and files behind the agent's credentials.
func TestDCSSourcesNameTheKeys(t *testing.T) {
	c := &config.Config{}
	c.DCS.TLS = config.TLS{CAFile: "/etc/vigil/etcd-ca.crt", CertFile: "/etc/vigil/c.crt", KeyFile: "/etc/vigil/c.key"}
	c.DCS.PasswordFile = "/etc/vigil/etcd.password"
	field, files := AgentDCSTLS(c)
	got := dcsSources(c, field, files)
	want := dcs.Sources{CA: "dcs.tls.ca_file /etc/vigil/etcd-ca.crt", Cert: "dcs.tls.cert_file /etc/vigil/c.crt", Password: "dcs.password_file /etc/vigil/etcd.password"}
	if got != want {
		t.Errorf("dcsSources = %+v, want %+v", got, want)
	}
	c.DCS.PasswordFile, c.DCS.PasswordEnv = "", "ETCD_PASSWORD"
	c.DCS.Embedded.Enabled = true
	c.DCS.Embedded.TLS = config.TLS{CAFile: "/etc/vigil/ca.crt"}
	field, files = AgentDCSTLS(c)
	got = dcsSources(c, field, files)
	want = dcs.Sources{CA: "dcs.embedded.tls.ca_file /etc/vigil/ca.crt", Password: "dcs.password_env ETCD_PASSWORD"}
	if got != want {
		t.Errorf("dcsSources (embedded) = %+v, want %+v", got, want)
	}
}

// Failsafe pings reach APIs that serve TLS with certificates of the
// cluster's own CA, which no system root signs.
func TestAPIClientTrustsTheClusterCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.InitCA(dir, "main", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.Paths(dir, "ca")
	c := &config.Config{}
	if cl, err := apiClient(c); err != nil || cl != nil {
		t.Fatalf("plain API: client %v, %v; want the default", cl, err)
	}
	c.API.CertFile, c.API.ClientCAFile = "/etc/vigil/node.crt", ca
	cl, err := apiClient(c)
	if err != nil || cl == nil {
		t.Fatalf("TLS API: client %v, %v", cl, err)
	}
	if tr, ok := cl.Transport.(*http.Transport); !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil {
		t.Fatal("the client does not trust the cluster's CA")
	}
}
