// Package isolation answers one question for the agent: can this node still
// reach the network it serves, or is it the one cut off? A node that cannot
// reach any trusted address must not promote, and a primary in that state
// gives up its role (the seed's "ping trust ip" guard).
package isolation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultPort is probed when a trusted address names no port.
const DefaultPort = "22"

// Result is the outcome of one round of checks.
type Result struct {
	// Reachable is true when at least one trusted address answered.
	Reachable bool
	// Evidence says which address answered, or why none did.
	Evidence string
}

// Checker probes trusted addresses over TCP. An address that accepts the
// connection or actively refuses it (a TCP reset) is reachable: either way
// a host on the path answered. Only silence or a network error means
// isolation. TCP needs no privileges, unlike ICMP.
type Checker struct {
	Addresses []string // "IP" or "IP:port"
	Timeout   time.Duration
	// Dialer is replaceable for tests; nil uses net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}
}

// attemptsPerAddress: a round dials each address again every
// Timeout/attemptsPerAddress while none answered, so that one lost SYN (or
// SYN-ACK) does not fail the round: TCP itself would resend only after a
// second, longer than a round usually lasts.
const attemptsPerAddress = 3

// Check probes every address concurrently and returns as soon as one answers.
func (c Checker) Check(ctx context.Context) Result {
	if len(c.Addresses) == 0 {
		return Result{Reachable: true, Evidence: "no trusted IPs configured: isolation check disabled"}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dialer := c.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}

	type answer struct {
		addr string
		err  error
	}
	answers := make(chan answer, len(c.Addresses)*attemptsPerAddress)
	var wg sync.WaitGroup
	for _, a := range c.Addresses {
		addr := withPort(a)
		for attempt := range attemptsPerAddress {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-ctx.Done():
					answers <- answer{addr: addr, err: ctx.Err()}
					return
				case <-time.After(time.Duration(attempt) * timeout / attemptsPerAddress):
				}
				conn, err := dialer.DialContext(ctx, "tcp", addr)
				if conn != nil {
					conn.Close()
				}
				answers <- answer{addr: addr, err: err}
			}()
		}
	}
	go func() { wg.Wait(); close(answers) }()

	// The first error of each address explains it best: later attempts
	// only end with the round.
	var failures []string
	failed := map[string]bool{}
	for ans := range answers {
		switch {
		case ans.err == nil:
			return Result{Reachable: true, Evidence: fmt.Sprintf("trusted %s accepted a connection", ans.addr)}
		case errors.Is(ans.err, syscall.ECONNREFUSED):
			return Result{Reachable: true, Evidence: fmt.Sprintf("trusted %s answered (connection refused)", ans.addr)}
		case !failed[ans.addr]:
			failed[ans.addr] = true
			failures = append(failures, fmt.Sprintf("%s: %v", ans.addr, ans.err))
		}
	}
	return Result{Reachable: false, Evidence: "no trusted IP answered: " + strings.Join(failures, "; ")}
}

func withPort(a string) string {
	if _, _, err := net.SplitHostPort(a); err == nil {
		return a
	}
	return net.JoinHostPort(strings.Trim(a, "[]"), DefaultPort)
}
