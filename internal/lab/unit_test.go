package lab

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseRoutesReadsEveryTable(t *testing.T) {
	out := `default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
198.18.4.0/24 dev vgl-abcdef proto kernel scope link src 198.18.4.1
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1
blackhole 198.19.7.0/24
unreachable 198.19.8.5 table 100
`
	got := parseRoutes(out)
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.4.0/24"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("127.255.255.255/32"),
		netip.MustParsePrefix("198.19.7.0/24"),
		netip.MustParsePrefix("198.19.8.5/32"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseRoutes = %v, want %v", got, want)
	}
}

func TestOverlapsAnyIgnoresOnlyTheDefaultRoute(t *testing.T) {
	used := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("198.18.0.0/16"),
		netip.MustParsePrefix("198.19.3.7/32"),
	}
	for cand, want := range map[string]bool{
		"198.18.9.0/24": true,  // inside a used /16
		"198.19.3.0/24": true,  // holds a used address
		"198.19.4.0/24": false, // only the default route covers it
	} {
		if got := overlapsAny(netip.MustParsePrefix(cand), used); got != want {
			t.Errorf("overlapsAny(%s) = %v, want %v", cand, got, want)
		}
	}
}

func TestQuoteConnValue(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lab/secrets/pgpass": "/var/lab/secrets/pgpass",
		"/a dir/it's":             `'/a dir/it\'s'`,
		`back\slash`:              `'back\\slash'`,
		"":                        "''",
	} {
		if got := quoteConnValue(in); got != want {
			t.Errorf("quoteConnValue(%q) = %s, want %s", in, got, want)
		}
	}
}
