package cli

import (
	"net"
	"testing"
)

// loopbackURL is an http URL on a loopback port free when asked, for an
// etcd member a test starts.
func loopbackURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}
