package bootstrap

import (
	"slices"
	"testing"

	"github.com/vigil-ha/vigil/internal/database"
)

// TestNetworks: configured networks win; without them pg_hba.conf lets in
// the node's own address and each member's, once each, and skips what is
// not an address (a socket directory).
func TestNetworks(t *testing.T) {
	srv := &database.Server{Name: "n1", Conn: database.ConnConfig{Host: "198.18.0.11"}}
	b := New(srv, Options{})
	got := b.networks([]string{"198.18.0.12", "198.18.0.11", "/var/run/postgresql", "2001:db8::3"})
	want := []string{"198.18.0.11/32", "198.18.0.12/32", "2001:db8::3/128"}
	if !slices.Equal(got, want) {
		t.Errorf("networks = %v, want %v", got, want)
	}
	b = New(srv, Options{Networks: []string{"198.18.0.0/24"}})
	if got := b.networks([]string{"10.0.0.1"}); !slices.Equal(got, []string{"198.18.0.0/24"}) {
		t.Errorf("configured networks ignored: %v", got)
	}
}
