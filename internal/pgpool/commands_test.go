package pgpool

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

func TestPrivileges(t *testing.T) {
	tests := []struct {
		runAs, osUser, mode string
		db, net             []string
	}{
		{"root", "kingbase", "auto", []string{"runuser", "-u", "kingbase", "--"}, nil},
		{"kingbase", "kingbase", "auto", nil, []string{"sudo", "-n"}},
		{"kingbase", "", "none", nil, nil}, // ip and arping made setuid, as some V8R3 guides do
		{"root", "", "auto", nil, nil},
		{"root", "postgres", "sudo", []string{"runuser", "-u", "postgres", "--"}, []string{"sudo", "-n"}},
	}
	for _, tt := range tests {
		db, net := Privileges(tt.runAs, tt.osUser, tt.mode)
		if !slices.Equal(db, tt.db) || !slices.Equal(net, tt.net) {
			t.Errorf("Privileges(%q, %q, %q) = %q, %q; want %q, %q", tt.runAs, tt.osUser, tt.mode, db, net, tt.db, tt.net)
		}
	}
}

func TestCommandLinesPostgres(t *testing.T) {
	c := Commands{Flavor: flavor.MustLookup(flavor.Postgres), BinDir: "/usr/lib/postgresql/15/bin", IP: "/sbin/ip", Arping: "/usr/sbin/arping",
		DBPrefix: []string{"runuser", "-u", "postgres", "--"}}
	vip := netip.MustParsePrefix("10.0.0.100/24")
	tests := []struct {
		got  []string
		want string
	}{
		{c.CtlStop("/var/lib/pg", "immediate", 29*time.Second), "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/pg stop -m immediate -w -t 29"},
		{c.CtlStatus("/var/lib/pg"), "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/pg status"},
		{c.CtlPromote("/var/lib/pg", time.Minute), "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/pg promote -w -t 60"},
		{c.VIP(VIP{Interface: "eth0"}, nil).ShowArgv(), "/sbin/ip -o -4 addr show dev eth0"},
		{c.AddrAdd(vip, "eth0", "eth0:2"), "/sbin/ip addr add 10.0.0.100/24 dev eth0 label eth0:2"},
		{c.AddrDel(vip, "eth0"), "/sbin/ip addr del 10.0.0.100/24 dev eth0"},
		{c.DuplicateCheck(vip.Addr(), "eth0"), "/usr/sbin/arping -D -c 2 -w 3 -I eth0 10.0.0.100"},
		{c.Announce(vip.Addr(), "eth0", 3), "/usr/sbin/arping -U 10.0.0.100 -I eth0 -c 3 -w 4"},
		{c.ClientSQL("10.0.0.2", 5432, "postgres", "postgres", "select {{pg_promote}}(true, 60)"),
			"/usr/lib/postgresql/15/bin/psql host=10.0.0.2 port=5432 user=postgres dbname=postgres connect_timeout=10 -c select pg_promote(true, 60)"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.got, " "); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	sudo := Commands{IP: "/sbin/ip", NetPrefix: []string{"sudo", "-n"}}
	if got := strings.Join(sudo.AddrDel(vip, "eth0"), " "); got != "sudo -n /sbin/ip addr del 10.0.0.100/24 dev eth0" {
		t.Errorf("with sudo: %s", got)
	}
}
