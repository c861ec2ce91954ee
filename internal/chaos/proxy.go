package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/proc"
)

// soOriginalDst is SO_ORIGINAL_DST: the destination a connection had
// before nftables redirected it.
const soOriginalDst = 80

// DelayProxy accepts the TCP connections that nftables redirects to it
// inside one namespace, connects to their original destination from the
// same namespace (with proxyMark, which the redirect rule lets through) and
// relays both directions, each chunk read delayed by a call of delay.
// Chunks leave in the order they came, so a delay shorter than the one
// before it only waits for that one.
type DelayProxy struct {
	ns    string
	delay func() time.Duration
	ln    *net.TCPListener
	log   *slog.Logger
	// accepted counts the connections relayed, for those who check that
	// traffic really went through the proxy.
	accepted atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startDelayProxy listens on a free loopback port inside ns.
func startDelayProxy(ns string, delay func() time.Duration, log *slog.Logger) (*DelayProxy, error) {
	p := &DelayProxy{ns: ns, delay: delay, log: log, conns: map[net.Conn]struct{}{}}
	err := proc.InNetns(ns, func() error {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		p.ln = ln
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delaying proxy in %s: %w", ns, err)
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Port is the loopback port the redirect rule sends connections to.
func (p *DelayProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Connections is how many connections the proxy has accepted so far.
func (p *DelayProxy) Connections() int64 { return p.accepted.Load() }

func (p *DelayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

func (p *DelayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *DelayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *DelayProxy) relay(in *net.TCPConn) {
	defer p.untrack(in)
	dst, err := originalDst(in)
	if err != nil {
		p.log.Warn("delaying proxy: no original destination", "ns", p.ns, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := nsDialer{ns: p.ns, mark: proxyMark}.DialContext(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		return // the client sees its connection reset, as with a dead peer
	}
	if !p.track(out) {
		out.Close()
		return
	}
	defer p.untrack(out)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(out, in) }()
	go func() { defer wg.Done(); p.pipe(in, out) }()
	wg.Wait()
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk written delay after it was read.
func (p *DelayProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.data); err != nil {
				src.Close()
				for range q {
				}
				return
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{data: buf[:n], due: time.Now().Add(p.delay())}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			break
		}
	}
	close(q)
	<-done
}

// Close stops the proxy and cuts every connection it relays, so that
// their owners reconnect, directly once the redirect rule is gone.
func (p *DelayProxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, not a polite close
		}
		c.Close()
	}
	p.wg.Wait()
}

// originalDst reads SO_ORIGINAL_DST of a redirected connection.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var addr netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		// struct sockaddr_in is 16 bytes; IPv6Mreq has exactly that size.
		m, err := syscall.GetsockoptIPv6Mreq(int(fd), syscall.SOL_IP, soOriginalDst)
		if err != nil {
			serr = err
			return
		}
		b := m.Multiaddr
		port := binary.BigEndian.Uint16(b[2:4])
		addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), port)
	})
	if err != nil {
		return addr, err
	}
	return addr, serr
}
