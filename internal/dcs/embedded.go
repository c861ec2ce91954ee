package dcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// MemberConfig describes one etcd member run inside a vigil process: an
// agent with dcs.embedded, or a witness.
type MemberConfig struct {
	Name      string
	DataDir   string
	PeerURL   string // where the other members reach this one, e.g. https://198.18.0.11:2380
	ClientURL string // where clients reach it, e.g. https://198.18.0.11:2379
	// InitialCluster maps every member's name to its peer URL.
	InitialCluster map[string]string
	// ClusterToken keeps members of different clusters apart.
	ClusterToken string
	// JoinExisting starts a member added to a running cluster (`vigil ctl
	// member add`): InitialCluster then lists the existing members and
	// this one, and the member fetches the cluster from its peers instead
	// of founding a new one.
	JoinExisting bool
	// TickMs and ElectionMs tune etcd's raft; zero keeps etcd's defaults
	// (100 ms, 1000 ms).
	TickMs, ElectionMs uint
	// TLS, when set, serves both URLs over https and requires a client
	// certificate signed by its CA on both: a host without one can neither
	// read nor write a key, nor talk raft to the members.
	TLS *MemberTLS
	// Insecure allows a member without TLS on a non-loopback address.
	Insecure bool
	Logger   *slog.Logger
}

// MemberTLS holds a member's TLS files (made by package certs): the
// cluster's CA, and the node's certificate and key, which serve as server
// certificate on both ports and as client certificate towards the peers.
type MemberTLS struct {
	CAFile, CertFile, KeyFile string
}

// ErrInsecureMember is returned when a member without TLS would listen on a
// non-loopback address without MemberConfig.Insecure.
var ErrInsecureMember = errors.New("an etcd member without TLS may listen on loopback only")

// checkURLs refuses URLs that do not match the member's TLS setting: etcd
// would otherwise serve plain HTTP on an https:// URL it has no certificate
// for, or ignore the certificate on an http:// one. Without TLS, it refuses
// a non-loopback address unless Insecure: anyone reaching the port could
// write the leader key and force a failover.
func (c MemberConfig) checkURLs(urls ...*url.URL) error {
	for _, u := range urls {
		switch {
		case c.TLS != nil && u.Scheme != "https":
			return fmt.Errorf("%s: a member with TLS needs https:// URLs", u)
		case c.TLS == nil && u.Scheme != "http":
			return fmt.Errorf("%s: https:// needs the CA, certificate and key files", u)
		case c.TLS == nil && !c.Insecure && !isLoopback(u.Hostname()):
			return fmt.Errorf("%s: %w: anyone who reaches it could write the leader key and force a failover; give the member certificates, or say insecure explicitly", u, ErrInsecureMember)
		}
	}
	return nil
}

// isLoopback reports whether host names only this machine; an unspecified
// address (every interface) is not.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// EmbeddedMember is a running etcd member inside this process.
type EmbeddedMember struct {
	etcd      *embed.Etcd
	cfg       MemberConfig
	closeOnce sync.Once
	// closing is closed before Close stops the server, so that a server
	// stopping on its own (removed) is told apart from one being closed.
	closing chan struct{}
	closed  chan struct{}
	removed chan struct{}
}

// ErrMemberRemoved is returned when a member's data directory belongs to a
// member removed from its cluster: etcd would stop it again at once.
var ErrMemberRemoved = errors.New("this etcd member was removed from its cluster")

// removedMarker, in a member's data directory, records that the member was
// removed: a restart then refuses with a clear message instead of starting
// a server that its peers turn away.
const removedMarker = "vigil-member-removed"

// embeddedHistoryRetention is how much of its history an embedded member
// keeps (etcd's periodic compaction).
const embeddedHistoryRetention = "1h"

// StartMember starts an etcd member and returns without waiting for its
// peers: an agent must run (and refuse to promote) while the other members
// are still coming up. Ready tells when the member serves. A member whose
// data directory already holds state rejoins with it; InitialCluster only
// matters the first time.
func StartMember(c MemberConfig) (*EmbeddedMember, error) {
	if at, err := os.ReadFile(filepath.Join(c.DataDir, removedMarker)); err == nil {
		return nil, fmt.Errorf("start etcd member %s: %w at %s: its data directory %s cannot serve again; to join the cluster again, `vigil ctl member add` it, move %s aside and start with dcs.embedded.initial_cluster_state: existing",
			c.Name, ErrMemberRemoved, strings.TrimSpace(string(at)), c.DataDir, c.DataDir)
	}
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	peer, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: peer URL %q: %w", c.Name, c.PeerURL, err)
	}
	client, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: client URL %q: %w", c.Name, c.ClientURL, err)
	}
	if err := c.checkURLs(peer, client); err != nil {
		return nil, fmt.Errorf("start etcd member %s: %w", c.Name, err)
	}
	if t := c.TLS; t != nil {
		// The same node certificate on both ports and as the client
		// certificate towards peers (and towards this member's own gRPC
		// gateway); only certificates from the cluster's CA get in.
		info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile, ClientCertAuth: true}
		ec.PeerTLSInfo, ec.ClientTLSInfo = info, info
	}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	ec.InitialCluster = initialCluster(c.InitialCluster)
	ec.InitialClusterToken = c.ClusterToken
	ec.ClusterState = embed.ClusterStateFlagNew
	if c.JoinExisting {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	if c.TickMs > 0 {
		ec.TickMs = c.TickMs
	}
	if c.ElectionMs > 0 {
		ec.ElectionMs = c.ElectionMs
	}
	// etcd keeps every revision unless told otherwise, and the agents write
	// a few times a second: `vigil bench dcs` measured 3.1 kB/s of growth
	// per cluster, which fills etcd's 2 GiB quota in about eight days, and
	// a full etcd refuses every write, taking the leader key included.
	// History older than an hour serves nobody (watches resume from the
	// last revision they saw, within seconds).
	ec.AutoCompactionMode, ec.AutoCompactionRetention = embed.CompactorModePeriodic, embeddedHistoryRetention
	// Slow-request warnings at etcd's own defaults: the embed package
	// leaves the unary threshold at zero, which makes every request of a
	// millisecond a "request stats" warning.
	ec.WarningApplyDuration = embed.DefaultWarningApplyDuration
	ec.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	// etcd logs a great deal at info; its warnings and errors are what an
	// operator of an HA agent needs, once each rather than 20 times a
	// second while a peer is down.
	zl, err := zap.NewProductionConfig().Build(zap.IncreaseLevel(zapcore.WarnLevel),
		zap.WrapCore(func(core zapcore.Core) zapcore.Core { return newRepeatLimiter(core, repeatInterval, time.Now) }))
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: logger: %w", c.Name, err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl.With(zap.String("etcd_member", c.Name)))
	ec.LogLevel = "warn"

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: %w", c.Name, err)
	}
	m := &EmbeddedMember{etcd: e, cfg: c, closing: make(chan struct{}), closed: make(chan struct{}), removed: make(chan struct{})}
	go m.watchRemoval()
	return m, nil
}

// watchRemoval closes m.removed when the server stops without Close: etcd
// stops a member on its own only once it learns (from the log it applies,
// or from a peer refusing it) that it was removed from the cluster.
func (m *EmbeddedMember) watchRemoval() {
	select {
	case <-m.closing:
		return
	case <-m.etcd.Server.StopNotify():
	}
	select {
	case <-m.closing:
		return
	default:
	}
	at := time.Now().UTC().Format(time.RFC3339)
	if err := os.WriteFile(filepath.Join(m.cfg.DataDir, removedMarker), []byte(at+"\n"), 0o600); err != nil && m.cfg.Logger != nil {
		m.cfg.Logger.Warn("record the etcd member's removal in its data directory", "err", err)
	}
	close(m.removed)
}

// Removed is closed when the member was removed from its cluster (`vigil
// ctl member remove`) and its server stopped.
func (m *EmbeddedMember) Removed() <-chan struct{} { return m.removed }

// PromoteWhenCaughtUp makes the member a voting member once it is a learner
// that has caught up with the leader's log, asking every interval until
// etcd agrees or ctx ends. `vigil ctl member add` adds members as learners,
// which take no part in quorum until then: a new member that is slow to
// catch up cannot cost the cluster its quorum. A member that is no learner
// returns at once.
func (m *EmbeddedMember) PromoteWhenCaughtUp(ctx context.Context, interval time.Duration) error {
	s := m.etcd.Server
	select {
	case <-s.ReadyNotify():
	case <-s.StopNotify():
		return fmt.Errorf("promote etcd member %s: the member stopped", m.cfg.Name)
	case <-ctx.Done():
		return fmt.Errorf("promote etcd member %s: %w", m.cfg.Name, ctx.Err())
	}
	for s.IsLearner() {
		// The server forwards the request to the raft leader, which alone
		// knows whether this learner has caught up.
		rctx, cancel := context.WithTimeout(ctx, interval)
		_, err := s.PromoteMember(rctx, uint64(s.MemberID()))
		cancel()
		switch {
		case err == nil:
			if m.cfg.Logger != nil {
				m.cfg.Logger.Info("etcd learner caught up and promoted to a voting member", "etcd_member", m.cfg.Name)
			}
		case errors.Is(err, membership.ErrMemberNotLearner):
			// Promoted meanwhile (an operator's `member promote`); the
			// local view catches up with the applied entry.
		case m.cfg.Logger != nil:
			m.cfg.Logger.Debug("etcd learner not promoted yet", "etcd_member", m.cfg.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %s: %w", m.cfg.Name, ctx.Err())
		case <-s.StopNotify():
			return fmt.Errorf("promote etcd member %s: the member stopped", m.cfg.Name)
		case <-time.After(interval):
		}
	}
	return nil
}

// Ready is closed once the member has joined the cluster and serves clients.
func (m *EmbeddedMember) Ready() <-chan struct{} { return m.etcd.Server.ReadyNotify() }

// WaitReady waits until the member serves, it fails, or ctx ends.
func (m *EmbeddedMember) WaitReady(ctx context.Context) error {
	select {
	case <-m.Ready():
		return nil
	case err := <-m.etcd.Err():
		return fmt.Errorf("etcd member %s: %w", m.cfg.Name, err)
	case <-ctx.Done():
		return fmt.Errorf("etcd member %s: waiting for the cluster to form: %w", m.cfg.Name, ctx.Err())
	}
}

func initialCluster(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+"="+m[n])
	}
	return strings.Join(parts, ",")
}

// ClientURL is where clients reach this member.
func (m *EmbeddedMember) ClientURL() string { return m.cfg.ClientURL }

// Close stops the member, waiting at most d for it to finish. It may be
// called more than once.
func (m *EmbeddedMember) Close(d time.Duration) {
	m.closeOnce.Do(func() {
		close(m.closing)
		go func() {
			m.etcd.Close()
			close(m.closed)
		}()
	})
	select {
	case <-m.closed:
	case <-time.After(d):
	}
}

// Err reports a fatal error of the running member.
func (m *EmbeddedMember) Err() <-chan error { return m.etcd.Err() }
