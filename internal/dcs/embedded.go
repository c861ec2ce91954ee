package dcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
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
	closed    chan struct{}
}

// StartMember starts an etcd member and returns without waiting for its
// peers: an agent must run (and refuse to promote) while the other members
// are still coming up. Ready tells when the member serves. A member whose
// data directory already holds state rejoins with it; InitialCluster only
// matters the first time.
func StartMember(c MemberConfig) (*EmbeddedMember, error) {
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
	if c.TickMs > 0 {
		ec.TickMs = c.TickMs
	}
	if c.ElectionMs > 0 {
		ec.ElectionMs = c.ElectionMs
	}
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
	return &EmbeddedMember{etcd: e, cfg: c, closed: make(chan struct{})}, nil
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
