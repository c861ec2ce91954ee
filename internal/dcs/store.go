// Package dcs is the distributed configuration store the agents coordinate
// through: etcd, reached with the v3 client whether it runs as an external
// cluster, embedded in the agents, or in a witness (see embedded.go).
//
// Keys, under /vigil/<cluster>/:
//
//	leader            name of the leader, under the leader's lease
//	primary           the writable-primary record, under the leader's lease:
//	                  routers (VIP, health endpoint) act on it
//	members/<name>    each member's published state, under its own lease
//	config            cluster-wide settings changed at run time (pause)
//	settings          cluster-wide PostgreSQL parameters and HA timing
//	                  (`vigil ctl edit-config`), every member applies them
//	~catalog          the leader's pg_settings, which edits are checked against
//	                  (keys named ~... are read on demand, not by Snapshot)
//	restart           a rolling restart in progress (`vigil ctl restart`)
//	sync              the recorded synchronous standby set
//	status            the newest WAL position and timeline a leader published
//	request           a pending switchover or failover request, naming who asked
//	history/<time>    one record per failover, switchover, rejoin, pause or resume
//	initialize        the node that creates the cluster, under its lease while
//	                  it bootstraps; permanent, with the system identifier, once
//	                  the cluster exists
package dcs

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/pgparam"
)

// Options say how to reach etcd.
type Options struct {
	Endpoints   []string
	TLS         *tls.Config
	Username    string
	Password    string // resolved secret; never logged
	DialTimeout time.Duration
	// Prefix is the root of every key, "/vigil" by default.
	Prefix  string
	Cluster string
	// LeaseTTL is the TTL of the leader and member leases (whole seconds).
	LeaseTTL time.Duration
	// Sources name the TLS files and the password in error messages.
	Sources Sources
	Logger  *slog.Logger
}

// Store is one agent's session with the DCS. Its methods are safe for
// concurrent use.
type Store struct {
	client *clientv3.Client
	root   string
	ttl    int64
	log    *slog.Logger
	diag   diagnosis

	// The leases this session holds, one per purpose.
	leaderLease, memberLease, initLease heldLease
}

// Open creates a client. It does not wait for etcd to answer: an agent must
// start and report "DCS unreachable" rather than hang.
func Open(o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("open DCS: no endpoints")
	}
	if o.Cluster == "" {
		return nil, errors.New("open DCS: no cluster name")
	}
	if o.Prefix == "" {
		o.Prefix = "/vigil"
	}
	ttl := int64(o.LeaseTTL.Round(time.Second) / time.Second)
	if ttl < 1 {
		return nil, fmt.Errorf("open DCS: lease TTL %s is under one second", o.LeaseTTL)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            o.Endpoints,
		DialTimeout:          o.DialTimeout,
		DialKeepAliveTime:    o.DialTimeout,
		DialKeepAliveTimeout: o.DialTimeout,
		TLS:                  o.TLS,
		Username:             o.Username,
		Password:             o.Password,
		Logger:               zap.NewNop(),
		AutoSyncInterval:     0,
	})
	root := strings.TrimSuffix(o.Prefix, "/") + "/" + o.Cluster + "/"
	diag := diagnosis{endpoints: o.Endpoints, user: o.Username, root: root, tls: o.TLS, src: o.Sources}
	if err != nil {
		// With a user, the client authenticates before it returns: a
		// refused password or handshake ends here.
		if e := diag.explain(err); errors.Is(e, ErrAccess) {
			return nil, fmt.Errorf("open DCS: %w", e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.DialTimeout)
		defer cancel()
		if perr := diag.probeTLS(ctx); perr != nil {
			return nil, fmt.Errorf("open DCS: %w", perr)
		}
		return nil, fmt.Errorf("open DCS %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	return &Store{
		client: cli,
		root:   root,
		ttl:    ttl,
		log:    logger,
		diag:   diag,
	}, nil
}

// Close ends the session without releasing anything: leases expire on their own.
func (s *Store) Close() error { return s.client.Close() }

// Client exposes the etcd client for tools that need raw access (tests, ctl).
func (s *Store) Client() *clientv3.Client { return s.client }

func (s *Store) key(parts ...string) string { return s.root + strings.Join(parts, "/") }

// Member is what an agent publishes about its node.
type Member struct {
	decision.Member
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	APIURL    string    `json:"api_url,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// ConfigDigest is a digest of the settings that must agree across
	// members (TTL, loop interval, synchronous mode, ...).
	ConfigDigest string `json:"config_digest"`
	Version      string `json:"version"`
	// PendingRestart names the parameters whose new value waits for a
	// server restart (pg_settings.pending_restart).
	PendingRestart []string `json:"pending_restart,omitempty"`
	// SettingsApplied is the revision of the settings key this member's
	// server has (0: none yet).
	SettingsApplied int64 `json:"settings_applied,omitempty"`
	// Restarted is the rolling restart (RestartPlan.ID) in which this
	// member's server restarted last.
	Restarted string `json:"restarted,omitempty"`
	// Phase is what builds this node while its data directory holds no
	// cluster ("bootstrap", "clone"); empty otherwise.
	Phase string `json:"phase,omitempty"`
	// Clone is the progress of the clone under way, nil when none.
	Clone *CloneProgress `json:"clone,omitempty"`
}

// CloneProgress is how far a standby's clone of the primary has come.
type CloneProgress struct {
	From       string `json:"from"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	// RateBytes is bytes per second since the copy began; ETASeconds the
	// time left at that rate (-1: unknown).
	RateBytes  int64     `json:"rate_bytes"`
	ETASeconds int64     `json:"eta_seconds"`
	Started    time.Time `json:"started"`
}

// Initialize is the record of the node that creates the cluster.
type Initialize struct {
	Node string `json:"node"`
	// SystemID is the new cluster's system identifier, "" while the
	// bootstrap runs.
	SystemID string    `json:"system_id,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// Primary is the writable-primary record.
type Primary struct {
	Node      string    `json:"node"`
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Timeline  uint32    `json:"timeline"`
	Since     time.Time `json:"since"`
	CommitLSN string    `json:"commit_lsn"`
}

// Status is the newest position a leader published; it has no lease, so it
// survives the leader and bounds how far behind a candidate may be.
type Status struct {
	Leader   string    `json:"leader"`
	WAL      string    `json:"wal"`
	Timeline uint32    `json:"timeline"`
	At       time.Time `json:"at"`
}

// ClusterConfig holds the settings changed at run time for the whole cluster.
type ClusterConfig struct {
	Paused bool `json:"paused"`
	// ChangedBy and ChangedAt say who last wrote these settings and when
	// (the audit of a pause or resume); a value written before they
	// existed has neither.
	ChangedBy Actor     `json:"changed_by,omitzero"`
	ChangedAt time.Time `json:"changed_at,omitzero"`
}

// Settings are the cluster-wide settings every member must share: the
// PostgreSQL parameters its agent applies to its server, and the HA timing
// that, once set here, wins over each node's file.
type Settings struct {
	Parameters map[string]string `json:"parameters,omitempty"`
	// Removed are parameters once set here and since removed: the agents
	// reset them (ALTER SYSTEM RESET) to the server's own configuration.
	Removed []string `json:"removed,omitempty"`
	// Timing is unset (zero) until an operator sets it; each node's file
	// decides until then.
	Timing    SharedTiming `json:"timing,omitzero"`
	ChangedBy Actor        `json:"changed_by,omitzero"`
	ChangedAt time.Time    `json:"changed_at,omitzero"`
}

// SharedTiming is the HA timing and failover policy that must be equal on
// every member (the lease arithmetic assumes it); it is set whole or not at
// all.
type SharedTiming struct {
	LeaseTTL             time.Duration `json:"lease_ttl"`
	LoopInterval         time.Duration `json:"loop_interval"`
	DCSTimeout           time.Duration `json:"dcs_timeout"`
	MaximumLagOnFailover uint64        `json:"maximum_lag_on_failover"`
	SynchronousMode      string        `json:"synchronous_mode"`
	PrimaryCrash         string        `json:"primary_crash"`
}

// IsSet reports whether the timing was ever set in the DCS.
func (t SharedTiming) IsSet() bool { return t != SharedTiming{} }

// Catalog is what a leader's server says of its parameters (pg_settings),
// for checking edits of Settings.Parameters without a database connection.
type Catalog struct {
	Node       string         `json:"node"`
	Version    string         `json:"server_version"`
	Parameters []pgparam.Spec `json:"parameters"`
}

// Actor says who asked for an operator action and from where, for the
// audit trail: By is "cert:<subject>", "token:<name>" or "os:<user>@<host>",
// From a remote address or a host. Neither ever holds a secret: the agents
// log both and the history keeps them.
type Actor struct {
	By   string `json:"by,omitempty"`
	From string `json:"from,omitempty"`
}

// Unknown is who asked, as far as a value written before requests named
// their author can tell.
const Unknown = "unknown"

// OrUnknown fills what a stays silent about with Unknown, so that an
// action taken on an old request is still attributed, if only to nobody
// known.
func (a Actor) OrUnknown() Actor {
	if a.By == "" {
		a.By = Unknown
	}
	if a.From == "" {
		a.From = Unknown
	}
	return a
}

// Request is a pending manual switchover or failover.
type Request struct {
	Kind string    `json:"kind"` // switchover | failover | rejoin | reinit
	From string    `json:"from,omitempty"`
	To   string    `json:"to,omitempty"`
	At   time.Time `json:"at,omitzero"`
	// Created is when the request was made; a request nobody acted on
	// expires (see decision.RequestTimeout).
	Created time.Time `json:"created"`
	// HandedOver is set by the old leader of a switchover once it has
	// stopped cleanly and the target has all its WAL: the target may now
	// take the key.
	HandedOver bool `json:"handed_over,omitempty"`
	// Actor is the operator who asked; the old leader of a switchover
	// copies it into its hand-over, so that the target knows it too.
	Actor Actor `json:"actor,omitzero"`
}

// View is one consistent read of the whole cluster.
type View struct {
	Revision int64
	Leader   string
	Primary  *Primary
	Members  map[string]Member
	Config   ClusterConfig
	Sync     []string
	Status   Status
	Request  *Request
	Settings Settings
	// SettingsRevision is the settings key's modification revision (0:
	// never written), for ReplaceSettings and Member.SettingsApplied.
	SettingsRevision int64
	// Restart is the rolling restart in progress (nil: none), at
	// RestartRevision.
	Restart         *RestartPlan
	RestartRevision int64
	// Initialize is the initialize key, nil when nobody created the
	// cluster through Vigil.
	Initialize *Initialize
	// RequestRevision is the request key's modification revision (0: no
	// request), for ReplaceRequest.
	RequestRevision int64
	// Progress holds, per node, the procedure its agent runs now (a
	// timeline.Progress as JSON; see ProgressWriter).
	Progress map[string]json.RawMessage
	// Problems lists keys that could not be decoded; they are ignored.
	Problems []string
}

// onDemandPrefix starts the names of the cluster's keys that Snapshot
// leaves out: '~' sorts after every other key name, so one Range up to it
// reads the rest.
const onDemandPrefix = "~"

// catalogKey holds the leader's parameter catalog (see PublishCatalog).
const catalogKey = onDemandPrefix + "catalog"

// Snapshot reads every key of the cluster in one request.
func (s *Store) Snapshot(ctx context.Context) (View, error) {
	// Every key of the cluster but those named "~...": the parameter
	// catalog, the largest, which only edit-config reads. A single Range
	// (not a transaction of two) so that the client retries it on another
	// member when one does not answer.
	resp, err := s.client.Get(ctx, s.root, clientv3.WithRange(s.root+onDemandPrefix))
	if err != nil {
		return View{}, fmt.Errorf("read cluster state from DCS: %w", s.diag.explain(err))
	}
	v := View{Revision: resp.Header.Revision, Members: map[string]Member{}}
	kvs := resp.Kvs
	for _, kv := range kvs {
		name := strings.TrimPrefix(string(kv.Key), s.root)
		var derr error
		switch {
		case name == "leader":
			v.Leader = string(kv.Value)
		case name == "primary":
			v.Primary = &Primary{}
			derr = json.Unmarshal(kv.Value, v.Primary)
		case name == "config":
			derr = json.Unmarshal(kv.Value, &v.Config)
		case name == "sync":
			derr = json.Unmarshal(kv.Value, &v.Sync)
		case name == "restart":
			v.RestartRevision = kv.ModRevision
			v.Restart = &RestartPlan{}
			derr = json.Unmarshal(kv.Value, v.Restart)
		case name == "settings":
			v.SettingsRevision = kv.ModRevision
			derr = json.Unmarshal(kv.Value, &v.Settings)
		case name == "status":
			derr = json.Unmarshal(kv.Value, &v.Status)
		case name == "initialize":
			v.Initialize = &Initialize{}
			if derr = json.Unmarshal(kv.Value, v.Initialize); derr != nil {
				// Someone holds it, whatever it says: never a second initdb.
				v.Initialize = &Initialize{Node: Unknown}
			}
		case name == "request":
			v.RequestRevision = kv.ModRevision
			v.Request = &Request{}
			derr = json.Unmarshal(kv.Value, v.Request)
		case strings.HasPrefix(name, "progress/"):
			if v.Progress == nil {
				v.Progress = map[string]json.RawMessage{}
			}
			v.Progress[strings.TrimPrefix(name, "progress/")] = json.RawMessage(kv.Value)
		case strings.HasPrefix(name, "members/"):
			var m Member
			derr = json.Unmarshal(kv.Value, &m)
			member := strings.TrimPrefix(name, "members/")
			if derr == nil && m.Name != member {
				derr = fmt.Errorf("record names %q", m.Name)
			}
			if derr == nil {
				v.Members[member] = m
			}
		}
		if derr != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("ignoring %s: %v", kv.Key, derr))
			if name == "primary" {
				v.Primary = nil
			}
			if name == "request" {
				v.Request = nil
			}
			if name == "restart" {
				v.Restart = nil
			}
		}
	}
	return v, nil
}

// AcquireLeader takes the leader key if it is free. Only one caller can
// succeed: the key is created in a transaction that requires it to be
// absent. It returns the time just before the lease was requested: the
// lease cannot expire before that time plus the TTL.
func (s *Store) AcquireLeader(ctx context.Context, name string) (acquired bool, grantedAt time.Time, err error) {
	grantedAt = time.Now()
	lease, err := s.client.Grant(ctx, s.ttl)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("acquire leader key: grant lease: %w", s.diag.explain(err))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.key("leader")), "=", 0)).
		Then(clientv3.OpPut(s.key("leader"), name, clientv3.WithLease(lease.ID))).
		Commit()
	if err != nil || !resp.Succeeded {
		if _, rerr := s.client.Revoke(context.WithoutCancel(ctx), lease.ID); rerr != nil {
			s.log.Debug("revoke unused lease", "err", rerr)
		}
		if err != nil {
			return false, time.Time{}, fmt.Errorf("acquire leader key: %w", s.diag.explain(err))
		}
		return false, time.Time{}, nil
	}
	s.leaderLease.set(lease.ID)
	return true, grantedAt, nil
}

// ErrNotLeader means the leader key is no longer this agent's.
var ErrNotLeader = errors.New("leader key lost")

// RenewLeader refreshes the leader lease and checks the key still names
// this agent. It returns the time just before the renewal was sent.
func (s *Store) RenewLeader(ctx context.Context, name string) (time.Time, error) {
	lease := s.leaderLease.get()
	if lease == 0 {
		return time.Time{}, ErrNotLeader
	}
	sent := time.Now()
	if _, err := s.client.KeepAliveOnce(ctx, lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.leaderLease.forget(lease)
			return time.Time{}, fmt.Errorf("renew leader lease: %w", ErrNotLeader)
		}
		return time.Time{}, fmt.Errorf("renew leader lease: %w", s.diag.explain(err))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(s.key("leader")), "=", name),
			clientv3.Compare(clientv3.LeaseValue(s.key("leader")), "=", lease)).
		Commit()
	if err != nil {
		return time.Time{}, fmt.Errorf("check leader key: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		s.leaderLease.forget(lease)
		return time.Time{}, ErrNotLeader
	}
	return sent, nil
}

// ReleaseLeader gives the key up at once (revoking its lease also removes
// the writable-primary record), so a standby need not wait for the TTL.
func (s *Store) ReleaseLeader(ctx context.Context) error {
	lease := s.leaderLease.take()
	return s.revoke(ctx, lease, "release leader key")
}

// revoke revokes lease (0: none), which deletes the keys it holds; a lease
// gone already is no error. what says what the revocation was for.
func (s *Store) revoke(ctx context.Context, lease clientv3.LeaseID, what string) error {
	if lease == 0 {
		return nil
	}
	if _, err := s.client.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%s: %w", what, s.diag.explain(err))
	}
	return nil
}

// HoldsLeaderLease reports whether this session believes it holds the key.
func (s *Store) HoldsLeaderLease() bool {
	return s.leaderLease.get() != 0
}

// PublishPrimary records that this leader is the writable primary. It is
// written under the leader lease, so it disappears with the leadership.
func (s *Store) PublishPrimary(ctx context.Context, p Primary) error {
	lease := s.leaderLease.get()
	if lease == 0 {
		return fmt.Errorf("publish writable primary: %w", ErrNotLeader)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(s.key("leader")), "=", p.Node),
			clientv3.Compare(clientv3.LeaseValue(s.key("leader")), "=", lease)).
		Then(clientv3.OpPut(s.key("primary"), string(data), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return fmt.Errorf("publish writable primary: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("publish writable primary: %w", ErrNotLeader)
	}
	return nil
}

// WithdrawPrimary removes the writable-primary record if it names node.
func (s *Store) WithdrawPrimary(ctx context.Context, node string) error {
	resp, err := s.client.Get(ctx, s.key("primary"))
	if err != nil {
		return fmt.Errorf("withdraw writable primary: %w", s.diag.explain(err))
	}
	for _, kv := range resp.Kvs {
		var p Primary
		if json.Unmarshal(kv.Value, &p) == nil && p.Node != node {
			return nil
		}
		if _, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.key("primary")), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(s.key("primary"))).
			Commit(); err != nil {
			return fmt.Errorf("withdraw writable primary: %w", s.diag.explain(err))
		}
	}
	return nil
}

// PublishMember writes this member's state under its own lease, creating a
// new lease when the old one expired (after a partition, say).
func (s *Store) PublishMember(ctx context.Context, m Member) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	lease := s.memberLease.get()
	if lease != 0 {
		if _, err := s.client.KeepAliveOnce(ctx, lease); err != nil {
			if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return fmt.Errorf("publish member %s: renew lease: %w", m.Name, s.diag.explain(err))
			}
			lease = 0
		}
	}
	if lease == 0 {
		g, err := s.client.Grant(ctx, s.ttl)
		if err != nil {
			return fmt.Errorf("publish member %s: grant lease: %w", m.Name, s.diag.explain(err))
		}
		lease = g.ID
		s.memberLease.set(lease)
	}
	if _, err := s.client.Put(ctx, s.key("members", m.Name), string(data), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("publish member %s: %w", m.Name, s.diag.explain(err))
	}
	return nil
}

// AcquireInitialize takes the initialize key for node, under a lease of its
// own: exactly one caller succeeds (the key is created in a transaction
// that requires it to be absent), and when its agent dies before
// FinishInitialize, the key expires and another node may start over.
func (s *Store) AcquireInitialize(ctx context.Context, node string, now time.Time) (bool, error) {
	data, err := json.Marshal(Initialize{Node: node, Started: now})
	if err != nil {
		return false, err
	}
	lease, err := s.client.Grant(ctx, s.ttl)
	if err != nil {
		return false, fmt.Errorf("acquire initialize key: grant lease: %w", s.diag.explain(err))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.key("initialize")), "=", 0)).
		Then(clientv3.OpPut(s.key("initialize"), string(data), clientv3.WithLease(lease.ID))).
		Commit()
	if err != nil || !resp.Succeeded {
		if _, rerr := s.client.Revoke(context.WithoutCancel(ctx), lease.ID); rerr != nil {
			s.log.Debug("revoke unused lease", "err", rerr)
		}
		if err != nil {
			return false, fmt.Errorf("acquire initialize key: %w", s.diag.explain(err))
		}
		return false, nil
	}
	s.initLease.set(lease.ID)
	return true, nil
}

// ErrNotInitializer means the initialize key is no longer this agent's:
// its lease expired and another node may be creating the cluster.
var ErrNotInitializer = errors.New("initialize key lost")

// RenewInitialize keeps the initialize key's lease alive while the
// bootstrap runs.
func (s *Store) RenewInitialize(ctx context.Context) error {
	lease := s.initLease.get()
	if lease == 0 {
		return ErrNotInitializer
	}
	if _, err := s.client.KeepAliveOnce(ctx, lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return ErrNotInitializer
		}
		return fmt.Errorf("renew initialize key: %w", s.diag.explain(err))
	}
	return nil
}

// FinishInitialize makes the initialize key permanent, naming the new
// cluster's system identifier, provided it is still under this agent's
// lease (ErrNotInitializer otherwise: the cluster this node built is not
// the cluster's).
func (s *Store) FinishInitialize(ctx context.Context, rec Initialize) error {
	lease := s.initLease.get()
	if lease == 0 {
		return ErrNotInitializer
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(s.key("initialize")), "=", lease)).
		Then(clientv3.OpPut(s.key("initialize"), string(data))).
		Commit()
	if err != nil {
		return fmt.Errorf("finish initialize key: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		return ErrNotInitializer
	}
	s.forgetInitLease(ctx, lease)
	return nil
}

// ReleaseInitialize gives the initialize key up (a bootstrap that failed),
// so that a node may start over.
func (s *Store) ReleaseInitialize(ctx context.Context) error {
	lease := s.initLease.get()
	if lease == 0 {
		return nil
	}
	if _, err := s.client.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("release initialize key: %w", s.diag.explain(err))
	}
	s.forgetInitLease(ctx, lease)
	return nil
}

func (s *Store) forgetInitLease(ctx context.Context, lease clientv3.LeaseID) {
	s.initLease.forget(lease)
	// The key no longer hangs on it (or is gone): revoking ends the lease's
	// renewals without touching the key.
	if _, err := s.client.Revoke(context.WithoutCancel(ctx), lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.log.Debug("revoke initialize lease", "err", err)
	}
}

// WithdrawMember removes this member's key (clean agent shutdown).
func (s *Store) WithdrawMember(ctx context.Context) error {
	lease := s.memberLease.take()
	return s.revoke(ctx, lease, "withdraw member")
}

func (s *Store) putJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.client.Put(ctx, s.key(key), string(data)); err != nil {
		return fmt.Errorf("write %s: %w", key, s.diag.explain(err))
	}
	return nil
}

// SetSync records the synchronous standby set.
func (s *Store) SetSync(ctx context.Context, names []string) error {
	if names == nil {
		names = []string{}
	}
	return s.putJSON(ctx, "sync", names)
}

// SetStatus records the leader's newest WAL position and timeline.
func (s *Store) SetStatus(ctx context.Context, st Status) error { return s.putJSON(ctx, "status", st) }

// SetPaused turns maintenance mode on or off, attributed to nobody (see
// SetConfig).
func (s *Store) SetPaused(ctx context.Context, paused bool) error {
	return s.putJSON(ctx, "config", ClusterConfig{Paused: paused})
}

// SetConfig stores c and, in the same transaction, record as the history
// record of the change at c.ChangedAt (none when record is nil): a pause
// never takes effect without the record of who asked for it.
func (s *Store) SetConfig(ctx context.Context, c ClusterConfig, record any) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ops, err := s.withRecord([]clientv3.Op{clientv3.OpPut(s.key("config"), string(data))}, c.ChangedAt, record)
	if err != nil {
		return err
	}
	if _, err := s.client.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("write config: %w", s.diag.explain(err))
	}
	return nil
}

// ErrSettingsChanged: the settings key changed since it was read.
var ErrSettingsChanged = errors.New("the cluster's settings were changed meanwhile")

// ReplaceSettings stores c only if the settings key is still at revision
// (0: absent), with record (when not nil) as the history record of the
// change at c.ChangedAt, so that two operators' edits cannot overwrite each other.
// It returns the new revision.
func (s *Store) ReplaceSettings(ctx context.Context, c Settings, revision int64, record any) (int64, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	ops, err := s.withRecord([]clientv3.Op{clientv3.OpPut(s.key("settings"), string(data))}, c.ChangedAt, record)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.key("settings")), "=", revision)).
		Then(ops...).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("write settings: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("write settings: %w", ErrSettingsChanged)
	}
	return resp.Header.Revision, nil
}

// PublishCatalog stores the leader's parameter catalog, compressed: every
// agent's Snapshot reads the whole cluster prefix every loop, and the
// catalog would otherwise be its largest key.
func (s *Store) PublishCatalog(ctx context.Context, c Catalog) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		return fmt.Errorf("compress parameter catalog: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress parameter catalog: %w", err)
	}
	if _, err := s.client.Put(ctx, s.key(catalogKey), b.String()); err != nil {
		return fmt.Errorf("write parameter catalog: %w", s.diag.explain(err))
	}
	return nil
}

// Catalog reads the parameter catalog; ok is false when no leader has
// published one yet.
func (s *Store) Catalog(ctx context.Context) (c Catalog, ok bool, err error) {
	resp, err := s.client.Get(ctx, s.key(catalogKey))
	if err != nil {
		return Catalog{}, false, fmt.Errorf("read parameter catalog: %w", s.diag.explain(err))
	}
	if len(resp.Kvs) == 0 {
		return Catalog{}, false, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(resp.Kvs[0].Value))
	if err == nil {
		err = json.NewDecoder(zr).Decode(&c)
	}
	if err != nil {
		return Catalog{}, false, fmt.Errorf("read parameter catalog: %w", err)
	}
	return c, true, nil
}

// withRecord adds to ops the write of record (none when nil) as the
// history record at at, so that a change and its record are one
// transaction.
func (s *Store) withRecord(ops []clientv3.Op, at time.Time, record any) ([]clientv3.Op, error) {
	if record == nil {
		return ops, nil
	}
	rec, err := json.Marshal(record)
	if err != nil {
		return nil, err
	}
	return append(ops, clientv3.OpPut(s.key(historyKey(at)), string(rec))), nil
}

// SetRequest stores a manual switchover or failover request.
func (s *Store) SetRequest(ctx context.Context, r Request) error { return s.putJSON(ctx, "request", r) }

// ErrRequestChanged: the request key changed since it was read.
var ErrRequestChanged = errors.New("another request was stored meanwhile")

// ReplaceRequest stores r only if the request key is still at revision
// (0: absent), so that two operators cannot overwrite each other's request.
func (s *Store) ReplaceRequest(ctx context.Context, r Request, revision int64) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.key("request")), "=", revision)).
		Then(clientv3.OpPut(s.key("request"), string(data))).
		Commit()
	if err != nil {
		return fmt.Errorf("write request: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("write request: %w", ErrRequestChanged)
	}
	return nil
}

// ClearRequest removes the pending request if it is still the one read at
// revision (View.RequestRevision): a request written since (an operator's
// new one, a switchover's hand-over) is left alone and ErrRequestChanged
// returned.
func (s *Store) ClearRequest(ctx context.Context, revision int64) error {
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.key("request")), "=", revision)).
		Then(clientv3.OpDelete(s.key("request"))).
		Commit()
	if err != nil {
		return fmt.Errorf("clear request: %w", s.diag.explain(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("clear request: %w", ErrRequestChanged)
	}
	return nil
}

// AppendHistory stores one failover or switchover record.
func (s *Store) AppendHistory(ctx context.Context, at time.Time, record any) error {
	return s.putJSON(ctx, historyKey(at), record)
}

func historyKey(at time.Time) string {
	return "history/" + at.UTC().Format("20060102T150405.000000000Z")
}

// History returns the raw history records, oldest first.
func (s *Store) History(ctx context.Context) ([]json.RawMessage, error) {
	return s.HistorySince(ctx, 0)
}

// HistorySince returns the raw history records written after revision (a
// View's Revision; 0 for all of them), oldest first. Unlike a record's own
// times, revisions do not depend on the clocks of the hosts involved.
func (s *Store) HistorySince(ctx context.Context, revision int64) ([]json.RawMessage, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if revision > 0 {
		opts = append(opts, clientv3.WithMinCreateRev(revision+1))
	}
	resp, err := s.client.Get(ctx, s.key("history")+"/", opts...)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", s.diag.explain(err))
	}
	sort.Slice(resp.Kvs, func(i, j int) bool { return string(resp.Kvs[i].Key) < string(resp.Kvs[j].Key) })
	out := make([]json.RawMessage, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, json.RawMessage(kv.Value))
	}
	return out, nil
}

// MoveEtcdLeaderFrom hands etcd's raft leadership to another voting member
// when the member at endpoint leads. A node crash that takes the etcd
// leader with it costs an election, and the new etcd leader extends every
// lease by an election timeout: the crashed primary's leader key then
// outlives its lease TTL, and the failover waits for it. Keeping the etcd
// leader off the database primary's node removes that delay. It returns
// the new leader's name, "" when nothing was moved.
func (s *Store) MoveEtcdLeaderFrom(ctx context.Context, endpoint string) (string, error) {
	st, err := s.client.Status(ctx, endpoint)
	if err != nil {
		return "", fmt.Errorf("etcd status of %s: %w", endpoint, s.diag.explain(err))
	}
	if st.Leader != st.Header.MemberId {
		return "", nil
	}
	members, err := s.client.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("etcd member list: %w", s.diag.explain(err))
	}
	var candidates []*etcdserverpb.Member
	for _, m := range members.Members {
		if m.ID != st.Header.MemberId && !m.IsLearner && m.Name != "" && len(m.ClientURLs) > 0 {
			candidates = append(candidates, m)
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Name < candidates[j].Name })
	for _, m := range candidates {
		// Only to a member that answers: leadership handed to a dead
		// member would be an election lost, not one saved.
		if _, err := s.client.Status(ctx, m.ClientURLs[0]); err != nil {
			continue
		}
		if err := s.moveLeader(ctx, endpoint, m.ID); err != nil {
			return "", fmt.Errorf("move etcd leadership to %s: %w", m.Name, s.diag.explain(err))
		}
		return m.Name, nil
	}
	return "", nil
}

// moveLeader asks the leader at endpoint itself to hand over to member to:
// only the leader can, and the client's own connection may be to a
// follower (an operator's client lists every member).
func (s *Store) moveLeader(ctx context.Context, endpoint string, to uint64) error {
	conn, err := s.client.Dial(endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = etcdserverpb.NewMaintenanceClient(conn).MoveLeader(ctx, &etcdserverpb.MoveLeaderRequest{TargetID: to})
	return rpctypes.Error(err)
}

// heldLease is a lease the store holds for one purpose, 0 for none; safe
// for concurrent use.
type heldLease struct {
	mu sync.Mutex
	id clientv3.LeaseID
}

func (l *heldLease) get() clientv3.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id
}

func (l *heldLease) set(id clientv3.LeaseID) {
	l.mu.Lock()
	l.id = id
	l.mu.Unlock()
}

// forget drops id unless another lease replaced it meanwhile.
func (l *heldLease) forget(id clientv3.LeaseID) {
	l.mu.Lock()
	if l.id == id {
		l.id = 0
	}
	l.mu.Unlock()
}

// take returns the lease and holds none from then on.
func (l *heldLease) take() clientv3.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.id
	l.id = 0
	return id
}
