package isolation

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name      string
		addrs     []string
		reachable bool
		evidence  string
	}{
		{"none configured", nil, true, "isolation check disabled"},
		{"listening port", []string{ln.Addr().String()}, true, "accepted a connection"},
		{"refused port still proves the host answers", []string{refusedAddr}, true, "connection refused"},
		// Silence is simulated by the dialer below: tests send no traffic
		// beyond loopback (real isolation is tested in network namespaces).
		{"silent address", []string{"silent:9"}, false, "no trusted IP answered"},
		{"one of several answers", []string{"silent:9", refusedAddr}, true, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Checker{Addresses: tt.addrs, Timeout: 300 * time.Millisecond, Dialer: silentDialer{}}.Check(context.Background())
			if r.Reachable != tt.reachable || !strings.Contains(r.Evidence, tt.evidence) {
				t.Errorf("Check = %+v, want reachable=%v evidence containing %q", r, tt.reachable, tt.evidence)
			}
		})
	}
}

func TestWithPort(t *testing.T) {
	for in, want := range map[string]string{"198.18.0.1": "198.18.0.1:22", "198.18.0.1:80": "198.18.0.1:80", "::1": "[::1]:22", "[::1]:7": "[::1]:7"} {
		if got := withPort(in); got != want {
			t.Errorf("withPort(%q) = %q, want %q", in, got, want)
		}
	}
}

// silentDialer makes the host "silent" time out and dials everything else
// for real (loopback only in these tests).
type silentDialer struct{}

func (silentDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if strings.HasPrefix(addr, "silent:") {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// lossyDialer loses the first connection attempt to each address (it
// hangs, as a connect whose SYN was dropped does) and lets the others
// through to a real listener.
type lossyDialer struct {
	target string
	mu     sync.Mutex
	seen   map[string]int
}

func (d *lossyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.seen[addr]++
	first := d.seen[addr] == 1
	d.mu.Unlock()
	if first {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, d.target)
}

// TestCheckRidesOutALostConnectionAttempt: one lost SYN does not fail a
// round; a new attempt within the round gets through.
func TestCheckRidesOutALostConnectionAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &lossyDialer{target: ln.Addr().String(), seen: map[string]int{}}
	r := Checker{Addresses: []string{"gateway:22"}, Timeout: 600 * time.Millisecond, Dialer: d}.Check(context.Background())
	if !r.Reachable || !strings.Contains(r.Evidence, "accepted a connection") {
		t.Fatalf("Check after one lost attempt = %+v, want reachable", r)
	}
	if n := d.seen["gateway:22"]; n < 2 {
		t.Errorf("%d attempts, want a second one after the first was lost", n)
	}
}
