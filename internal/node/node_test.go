package node

import (
	"testing"

	"github.com/vigil-ha/vigil/internal/config"
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
