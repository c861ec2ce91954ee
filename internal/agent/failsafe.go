package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
)

// Failsafe mode (decision.Config.Failsafe): a leader that cannot reach the
// DCS asks every other member of its last DCS view, through their agents'
// APIs, to promise not to promote; it keeps the primary while all of them
// keep promising (decision.Config.FailsafeHolds has the arithmetic). This
// file holds both sides: the leader's pings and a member's promise.

// ErrWillPromote refuses a failsafe promise: this node holds the leader
// key, is taking it, or sees another leader.
var ErrWillPromote = errors.New("this node may promote")

// FailsafePath is the API endpoint a failsafe leader posts to.
const FailsafePath = "/failsafe"

// FailsafeRequest is the body of a failsafe ping.
type FailsafeRequest struct {
	Leader string `json:"leader"`
}

// ConfirmFailsafe is a member's side: it promises the leader not to take
// the key for the failsafe promise, unless it is taking it already.
func (a *Agent) ConfirmFailsafe(leader string) (time.Duration, error) {
	if !a.o.Decision.Failsafe {
		return 0, fmt.Errorf("%w: failsafe mode is off on %s", ErrWillPromote, a.o.Node)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case leader == "" || leader == a.o.Node:
		return 0, fmt.Errorf("%w: a ping from %q", ErrWillPromote, leader)
	case a.acquiring || a.lease.holding():
		return 0, fmt.Errorf("%w: %s holds or is taking the leader key", ErrWillPromote, a.o.Node)
	case a.status.Leader != "" && a.status.Leader != leader:
		return 0, fmt.Errorf("%w: the DCS names %s as leader", ErrWillPromote, a.status.Leader)
	}
	promise := a.o.Decision.FailsafePromise()
	until := a.clock.Now().Add(promise)
	if until.After(a.promisedUntil) {
		if a.promisedUntil.Before(a.clock.Now()) {
			a.log.Warn("failsafe: promised the leader not to promote while it cannot reach the DCS", "leader", leader, "for", promise)
		}
		a.promisedUntil = until
	}
	return promise, nil
}

// acquireLeader takes the key unless this node promised a failsafe leader
// not to; the acquiring flag makes a promise and a take exclude each other.
func (a *Agent) acquireLeader(ctx context.Context) error {
	a.mu.Lock()
	if until := a.promisedUntil; a.clock.Now().Before(until) {
		a.mu.Unlock()
		return fmt.Errorf("promised a failsafe leader not to take the key for %s more", until.Sub(a.clock.Now()).Round(time.Millisecond))
	}
	a.acquiring = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.acquiring = false
		a.mu.Unlock()
	}()
	if err := a.lease.acquire(ctx); err != nil {
		return err
	}
	// Slots made in an earlier term may be gone: pg_rewind and a base
	// backup do not keep pg_replslot, and this server may have been
	// rejoined since. Each new term makes them again.
	a.mu.Lock()
	a.slotsMade = map[string]bool{}
	a.mu.Unlock()
	return nil
}

// rememberMembers keeps the other members of a DCS view as the set a
// failsafe leader must hear from, and forgets older confirmations.
func (a *Agent) rememberMembers(v dcs.View) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failsafeMembers = map[string]string{}
	for name, m := range v.Members {
		if name != a.o.Node {
			a.failsafeMembers[name] = m.APIURL
		}
	}
	a.failsafeAcks = map[string]time.Time{}
}

// failsafeState is what the decision needs: the members and their acks.
func (a *Agent) failsafeState() ([]string, map[string]time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.failsafeMembers))
	for n := range a.failsafeMembers {
		names = append(names, n)
	}
	sort.Strings(names)
	acks := make(map[string]time.Time, len(a.failsafeAcks))
	for n, t := range a.failsafeAcks {
		acks[n] = t
	}
	return names, acks
}

// failsafeHolds pings every remembered member once and reports whether
// the primary role may be kept without the DCS. The lease keeper calls it
// after each failed renewal.
func (a *Agent) failsafeHolds(ctx context.Context) bool {
	if !a.o.Decision.Failsafe {
		return false
	}
	a.mu.Lock()
	targets := make(map[string]string, len(a.failsafeMembers))
	for n, u := range a.failsafeMembers {
		targets[n] = u
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, a.o.Decision.RenewalTimeout())
	defer cancel()
	var wg sync.WaitGroup
	for name, url := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := a.clock.Now()
			if err := a.o.Pinger.PingFailsafe(ctx, a.o.Node, name, url); err != nil {
				a.log.Debug("failsafe ping", "member", name, "err", err)
				return
			}
			a.mu.Lock()
			a.failsafeAcks[name] = sent
			a.mu.Unlock()
		}()
	}
	wg.Wait()
	members, acks := a.failsafeState()
	holds, why := a.o.Decision.FailsafeHolds(a.clock.Now(), members, acks)
	a.log.Debug("failsafe", "holds", holds, "why", why)
	return holds
}

// httpPinger posts failsafe pings to the members' agent APIs.
type httpPinger struct {
	token  string
	client *http.Client
}

func (p httpPinger) PingFailsafe(ctx context.Context, leader, _, baseURL string) error {
	if baseURL == "" {
		return errors.New("the member publishes no API address")
	}
	body, err := json.Marshal(FailsafeRequest{Leader: leader})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+FailsafePath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
	client := p.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", baseURL, resp.Status)
	}
	return nil
}
