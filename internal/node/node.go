// Package node assembles one node's agent from its configuration: the
// database adapter, the DCS client (and the embedded etcd member), the
// routes (VIP), the fences, the HTTP API, and the agent itself. The CLI
// parses flags, loads the configuration and calls Run; tests and other
// programs can do the same without a command line.
package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/api"
	"github.com/vigil-ha/vigil/internal/bootstrap"
	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/control"
	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/failover"
	"github.com/vigil-ha/vigil/internal/fence"
	"github.com/vigil-ha/vigil/internal/isolation"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/proc"
	"github.com/vigil-ha/vigil/internal/remote"
	"github.com/vigil-ha/vigil/internal/vip"
)

// Options are what the command line adds to the configuration.
type Options struct {
	// StepLogPath receives one JSON line per failover step ("" for none).
	StepLogPath string
	// Legacy runs failovers in failover_stream.sh's order: benchmarks only.
	Legacy  bool
	Version string
	Logger  *slog.Logger
}

// ConfigError is a configuration value that turned out unusable while the
// node was assembled (a VIP that does not parse, an unreadable token file):
// the operator's to fix, not a failure of the run.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configError(err error) error { return &ConfigError{Err: err} }

// Run assembles the node's agent from cfg and runs it (with its embedded
// etcd member and its API, when configured) until ctx ends.
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stepLogPath := o.StepLogPath
	var plan failover.Plan // zero: the agent's own
	if o.Legacy {
		plan = failover.Legacy()
	}
	node, err := buildNode(cfg, log)
	if err != nil {
		return err
	}
	endpoints := cfg.DCS.Endpoints
	embeddedURL := ""
	if cfg.DCS.Embedded.Enabled {
		member, err := startEmbedded(cfg, log)
		if errors.Is(err, dcs.ErrMemberRemoved) {
			return configError(err)
		}
		if err != nil {
			return err
		}
		defer member.Close(5 * time.Second)
		endpoints = []string{member.ClientURL()}
		embeddedURL = member.ClientURL()
		var stop context.CancelFunc
		ctx, stop = stopWhenRemoved(ctx, member, log)
		defer stop()
		go func() {
			if err := member.PromoteWhenCaughtUp(ctx, cfg.Timing.LoopInterval); err != nil && ctx.Err() == nil {
				log.Warn("embedded etcd learner not promoted: `vigil ctl member promote` it once it has caught up", "err", err)
			}
		}()
	}
	store, err := openStore(cfg, endpoints, log)
	if errors.Is(err, dcs.ErrAccess) {
		return configError(err)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	if !cfg.DCS.Embedded.Enabled {
		if err := checkStore(ctx, cfg, store, log); err != nil {
			return err
		}
	}

	if effective := sharedSettings(ctx, cfg, store, log); effective != cfg {
		// The lease TTL is the store's: reopen it with the cluster's.
		store.Close()
		cfg = effective
		if store, err = openStore(cfg, endpoints, log); err != nil {
			return err
		}
		defer store.Close()
	}

	replPass, err := cfg.Database.Replication.Resolve()
	if err != nil {
		return fmt.Errorf("replication password: %w", err)
	}
	var rewindPassword string
	if cfg.Rejoin.Rewind.User != "" {
		if rewindPassword, err = cfg.Rejoin.Rewind.Resolve(); err != nil {
			return fmt.Errorf("rejoin.rewind password: %w", err)
		}
	}
	passFile, err := writeReplicationPassFile(cfg, replPass, node.Ctl.Runner.As)
	if err != nil {
		return err
	}

	var steps io.Writer
	if stepLogPath != "" {
		f, err := os.OpenFile(stepLogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open step log: %w", err)
		}
		defer f.Close()
		steps = f
	}

	var fencers fence.All
	if len(cfg.Failover.FenceCommand) > 0 {
		fencers = append(fencers, fence.Command{Argv: cfg.Failover.FenceCommand})
	}
	if ssh := cfg.Failover.FenceSSH; ssh.User != "" {
		stop := pgctl.Ctl{Flavor: cfg.Flavor(), BinDir: cfg.Database.BinDir, DataDir: cfg.Database.DataDir}
		if ssh.User == "root" {
			// The control binary refuses root: switch to the server's
			// account, as this agent does locally.
			owner := cfg.Database.OSUser
			if as := node.Ctl.Runner.As; as != nil {
				owner = as.Name
			}
			if owner == "" {
				owner = "postgres"
			}
			stop.Prefix = []string{"runuser", "-u", owner, "--"}
		}
		fencers = append(fencers, fence.SSH{
			Config: remote.Config{User: ssh.User, KeyFile: ssh.KeyFile, KnownHostsFile: ssh.KnownHostsFile, Port: ssh.Port, Timeout: cfg.Timing.DCSTimeout * 4},
			Ctl:    stop, VIP: cfg.VIP.Address, Interface: cfg.VIP.Interface, Sudo: ssh.User != "root",
		})
	}
	var fencer agent.Fencer
	if len(fencers) > 0 {
		fencer = fencers
	}
	var routers []agent.Router
	if cfg.VIP.Address != "" {
		prefix, err := netip.ParsePrefix(cfg.VIP.Address)
		if err != nil {
			return configError(fmt.Errorf("vip.address: %w", err))
		}
		routers = append(routers, &vip.Manager{
			Address: prefix, Interface: cfg.VIP.Interface, Label: vipLabel(cfg.VIP.Interface),
			ARPCount: cfg.VIP.GratuitousARPCount, ARPInterval: 100 * time.Millisecond, Logger: log,
		})
	}
	priority := cfg.Node.Priority
	if !cfg.Failover.Automatic {
		// Watch and report, never promote: the same as priority 0.
		priority = 0
	}
	apiToken, err := cfg.API.Token()
	if err != nil && cfg.API.Listen != "" {
		return configError(fmt.Errorf("api.token_file: %w", err))
	}
	pings, err := apiClient(cfg)
	if err != nil {
		return configError(err)
	}
	// The agent's reads of etcd, timed for /metrics (see api.DCSReads).
	reads := api.NewDCSReads()
	a, err := agent.New(agent.Options{
		APIURL:              apiURL(cfg),
		APIToken:            apiToken,
		HTTPClient:          pings,
		Cluster:             cfg.Cluster,
		Node:                cfg.Node.Name,
		Host:                cfg.Node.Host,
		Port:                cfg.Database.Port,
		Priority:            priority,
		Server:              node,
		Store:               observedStore{Store: store, reads: reads},
		Trusted:             isolation.Checker{Addresses: cfg.TrustedIPs, Timeout: cfg.Timing.DCSTimeout},
		Decision:            decisionConfig(cfg),
		DCSTimeout:          cfg.Timing.DCSTimeout,
		DBTimeout:           cfg.Timing.DBTimeout,
		PromoteTimeout:      cfg.Timing.PromoteTimeout,
		ReadinessTimeout:    cfg.Timing.ReadinessTimeout,
		ReplicationUser:     cfg.Database.Replication.User,
		ReplicationPassFile: passFile,
		Fencer:              fencer,
		Routers:             routers,
		OnRoleChange:        cfg.Callbacks.OnRoleChange,
		CallbackTimeout:     cfg.Callbacks.Timeout,
		RejoinMethod:        cfg.Rejoin.Method,
		RewindUser:          cfg.Rejoin.Rewind.User,
		RewindPassword:      rewindPassword,
		EmbeddedEtcd:        embeddedURL,
		Plan:                plan,
		Parameters:          node,
		ConfigDigest:        configDigest(cfg),
		Version:             o.Version,
		Logger:              log,
		StepLog:             steps,
		Builder:             newBuilder(cfg, node, replPass, log),
		Initializer:         store,
	})
	if err != nil {
		return err
	}
	if cfg.API.Listen == "" {
		return a.Run(ctx)
	}
	srv, err := newAPIServer(cfg, apiToken, a, store, reads, log)
	if err != nil {
		return err
	}
	// The API lives as long as the agent: it stops after the agent's
	// shutdown, so that health checks see the routes go down.
	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	apiDone := make(chan error, 1)
	go func() { apiDone <- srv.Serve(apiCtx) }()
	runErr := a.Run(ctx)
	stopAPI()
	return errors.Join(runErr, <-apiDone)
}

// apiClient is how this agent calls the other agents' APIs (failsafe
// pings): over TLS, when the APIs serve it, trusting the cluster's CA (the
// API's client CA, else the CA of the etcd certificates), since node
// certificates from `vigil certs` are not signed by a system root.
func apiClient(cfg *config.Config) (*http.Client, error) {
	if cfg.API.CertFile == "" {
		return nil, nil
	}
	_, dcsTLS := AgentDCSTLS(cfg)
	ca := cmp.Or(cfg.API.ClientCAFile, dcsTLS.CAFile)
	if ca == "" {
		return nil, nil // the system's roots, as for any https URL
	}
	t, err := certs.ClientTLS(ca, "", "", "")
	if err != nil {
		return nil, fmt.Errorf("API client for failsafe pings: %w", err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: t}}, nil
}

func newAPIServer(cfg *config.Config, token string, a *agent.Agent, store *dcs.Store, reads *api.DCSReads, log *slog.Logger) (*api.Server, error) {
	return api.New(api.Options{
		Listen: cfg.API.Listen, CertFile: cfg.API.CertFile, KeyFile: cfg.API.KeyFile, Token: token, ClientCAFile: cfg.API.ClientCAFile,
		NodeName: cfg.Node.Name, ClusterName: cfg.Cluster,
		Agent: a, Cluster: store, Control: apiController{control.Controller{Store: store, Cluster: cfg.Cluster}}, Failsafe: a,
		DefaultMaxLagBytes: cfg.API.ReplicaMaxLag,
		// The values the agent decides with (decisionConfig), so that
		// the alerts compare with what the agent does.
		SyncMode:             decisionConfig(cfg).SyncMode,
		MaximumLagOnFailover: decisionConfig(cfg).MaximumLagOnFailover,
		DCS:                  reads,
		// Three lease TTLs without a loop: the agent is stuck, and its
		// leadership (if any) has lapsed long ago.
		StaleAfter: 3 * cfg.Timing.LeaseTTL,
		Logger:     log,
	})
}

// observedStore is the agent's store with its reads of the cluster timed
// and their synchronous standbys recorded for /metrics; every other call
// goes to the store unchanged.
type observedStore struct {
	*dcs.Store
	reads *api.DCSReads
}

func (s observedStore) Snapshot(ctx context.Context) (dcs.View, error) {
	start := time.Now()
	v, err := s.Store.Snapshot(ctx)
	s.reads.Observe(time.Since(start), v, err)
	return v, err
}

// apiController answers the API's operator requests through package
// control, as `vigil ctl` does; refusals become 409.
type apiController struct{ c control.Controller }

func (a apiController) Switchover(ctx context.Context, by dcs.Actor, to string, at time.Time) (string, error) {
	r, err := a.c.As(by).Switchover(ctx, to, at)
	if err != nil {
		return "", conflict(err)
	}
	target := r.To
	if target == "" {
		target = "the best standby"
	}
	return fmt.Sprintf("switchover from %s to %s requested; follow it with GET /cluster or `vigil ctl list`", r.From, target), nil
}

func (a apiController) Failover(ctx context.Context, by dcs.Actor, to string) (string, error) {
	if _, err := a.c.As(by).Failover(ctx, to); err != nil {
		return "", conflict(err)
	}
	return fmt.Sprintf("failover to %s requested; follow it with GET /cluster or `vigil ctl list`", to), nil
}

func (a apiController) SetPaused(ctx context.Context, by dcs.Actor, paused bool) error {
	return a.c.As(by).SetPaused(ctx, paused)
}

func conflict(err error) error {
	if errors.Is(err, control.ErrRefused) {
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	return err
}

func decisionConfig(cfg *config.Config) decision.Config {
	return decision.Config{
		LeaseTTL:             cfg.Timing.LeaseTTL,
		LoopInterval:         cfg.Timing.LoopInterval,
		DCSTimeout:           cfg.Timing.DCSTimeout,
		MaximumLagOnFailover: cfg.Failover.MaximumLagOnFailover,
		SyncMode:             decision.SyncMode(cfg.Failover.SynchronousMode),
		PrimaryCrash:         decision.CrashPolicy(cfg.Failover.PrimaryCrash),
		RestartTimeout:       cfg.Failover.RestartTimeout,
		AutoRejoin:           cfg.Rejoin.Automatic,
		Failsafe:             cfg.DCS.Failsafe,
	}
}

// apiURL is where the other agents reach this agent's API: the listen
// address, or the node's host when it listens on every address.
func apiURL(cfg *config.Config) string {
	host, port, err := net.SplitHostPort(cfg.API.Listen)
	if cfg.API.Listen == "" || err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = cfg.Node.Host
	}
	scheme := "http"
	if cfg.API.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// sharedSettings returns cfg with the cluster-wide timing and failover
// policy of the DCS, when an operator set them there (`vigil ctl
// edit-config`): from then on they win over the file. The DCS gets one
// lease TTL to answer, as at the agent's start; cfg itself when it does
// not, when nothing is set, or when the DCS copy is invalid (it was
// checked when written, so only a hand-written key can be).
func sharedSettings(ctx context.Context, cfg *config.Config, store *dcs.Store, log *slog.Logger) *config.Config {
	deadline := time.Now().Add(cfg.Timing.LeaseTTL)
	for {
		rctx, cancel := context.WithTimeout(ctx, cfg.Timing.DCSTimeout)
		v, err := store.Snapshot(rctx)
		cancel()
		switch {
		case err == nil && !v.Settings.Timing.IsSet():
			log.Info("timing and failover policy from this node's file: none set cluster-wide")
			return cfg
		case err == nil:
			effective := *cfg
			control.ApplyShared(&effective, v.Settings.Timing)
			if ps := effective.SharedProblems(); len(ps) > 0 {
				log.Error("cluster-wide timing in the DCS is invalid: using this node's file", "problems", ps.Error())
				return cfg
			}
			log.Info("timing and failover policy from the DCS (cluster-wide, vigil ctl edit-config)", "revision", v.SettingsRevision,
				"lease_ttl", effective.Timing.LeaseTTL, "loop_interval", effective.Timing.LoopInterval, "dcs_timeout", effective.Timing.DCSTimeout,
				"maximum_lag_on_failover", effective.Failover.MaximumLagOnFailover, "synchronous_mode", effective.Failover.SynchronousMode,
				"primary_crash", effective.Failover.PrimaryCrash)
			if control.SharedOf(&effective) == control.SharedOf(cfg) {
				return cfg
			}
			return &effective
		case ctx.Err() != nil || time.Now().After(deadline):
			log.Warn("cluster-wide timing unknown (DCS unreachable at start): using this node's file", "err", err)
			return cfg
		}
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Timing.LoopInterval):
		}
	}
}

// configDigest covers the settings every member must share: members that
// disagree on the lease or synchronous mode break the safety arithmetic.
func configDigest(cfg *config.Config) string {
	d := decisionConfig(cfg)
	s := fmt.Sprintf("%s|%s|%s|%d|%s|%s|%s|%t", cfg.Cluster, d.LeaseTTL, d.LoopInterval, d.MaximumLagOnFailover, d.SyncMode, d.PrimaryCrash, cfg.Database.Flavor, d.Failsafe)
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// buildNode assembles the database adapter for this node.
func buildNode(cfg *config.Config, log *slog.Logger) (*database.Server, error) {
	f := cfg.Flavor()
	var runner proc.Runner
	if os.Geteuid() == 0 {
		name := cfg.Database.OSUser
		if name == "" {
			owner, err := dataDirOwner(cfg.Database.DataDir)
			if err != nil {
				return nil, err
			}
			name = owner
		}
		id, err := proc.LookupUser(name)
		if err != nil {
			return nil, err
		}
		if id.UID == 0 {
			return nil, configError(fmt.Errorf("database.os_user: %s refuses to run as root: set an unprivileged account", f.Product))
		}
		runner.As = &id
	}
	password, err := cfg.Database.Superuser.Resolve()
	if err != nil {
		return nil, fmt.Errorf("superuser password: %w", err)
	}
	return &database.Server{
		Name:   cfg.Node.Name,
		Flavor: f,
		Conn: database.ConnConfig{
			Host: cfg.Database.ConnectHost, Port: cfg.Database.Port, User: cfg.Database.Superuser.User,
			Password: password, Database: cfg.Database.Superuser.Database, ConnectTimeout: cfg.Database.ConnectTimeout,
		},
		Ctl: pgctl.Ctl{Flavor: f, BinDir: cfg.Database.BinDir, DataDir: cfg.Database.DataDir, Runner: runner},
		// pg_ctl's -l file keeps what the server says before its own
		// logging starts: the reason a start failed.
		StartOptions:      pgctl.StartOptions{Wait: cfg.Timing.PromoteTimeout, LogFile: filepath.Join(cfg.Database.DataDir, "vigil-startup.log")},
		BaseBackupMaxRate: cfg.Clone.MaxRate,
		Logger:            log,
	}, nil
}

func dataDirOwner(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		// A node to be built: the directory will belong to whoever owns
		// the directory it goes in.
		fi, err = os.Stat(filepath.Dir(dir))
	}
	if err != nil {
		return "", fmt.Errorf("database.data_dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("database.data_dir %s: no owner information", dir)
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return "", fmt.Errorf("owner of the data directory (uid %d): %w", st.Uid, err)
	}
	return u.Username, nil
}

// newBuilder builds this node's server when its data directory holds no
// cluster, from the bootstrap and clone sections.
func newBuilder(cfg *config.Config, srv *database.Server, replPassword string, log *slog.Logger) *bootstrap.Builder {
	b, c := cfg.Bootstrap, cfg.Clone
	var methods []bootstrap.ReplicaMethod
	for _, m := range c.Methods {
		methods = append(methods, bootstrap.ReplicaMethod{Name: m.Name, Command: m.Command})
	}
	return bootstrap.New(srv, bootstrap.Options{
		Method: b.Method,
		InitDB: pgctl.InitDBOptions{Superuser: cfg.Database.Superuser.User, DataChecksums: b.InitDB.DataChecksums,
			Locale: b.InitDB.Locale, Encoding: b.InitDB.Encoding, Extra: b.InitDB.Args},
		Command: b.Command, RecoveryTarget: b.RecoveryTarget,
		Settings: database.ServerSettings{Port: cfg.Database.Port, Parameters: b.Parameters},
		HBAExtra: b.PgHBA, Networks: b.MemberNetworks,
		ReplicationUser: cfg.Database.Replication.User, ReplicationPassword: replPassword,
		SuperuserPassword: srv.Conn.Password,
		ReplicaMethods:    methods,
		StreamTimeout:     cfg.Timing.PromoteTimeout,
		Logger:            log,
	})
}

func startEmbedded(cfg *config.Config, log *slog.Logger) (*dcs.EmbeddedMember, error) {
	e := cfg.DCS.Embedded
	dataDir := e.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(filepath.Dir(cfg.Database.DataDir), "vigil-etcd-"+cfg.Node.Name)
	}
	mc := dcs.MemberConfig{
		Name: cfg.Node.Name, DataDir: dataDir, PeerURL: e.PeerURL, ClientURL: e.ClientURL,
		InitialCluster: e.InitialCluster, ClusterToken: "vigil-" + cfg.Cluster, JoinExisting: e.InitialClusterState == config.ClusterStateExisting,
		TickMs: e.TickMs, ElectionMs: e.ElectionMs, Insecure: e.Insecure, Logger: log,
	}
	if t := e.TLS; t.Enabled() {
		mc.TLS = &dcs.MemberTLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	}
	m, err := dcs.StartMember(mc)
	if err != nil {
		return nil, err
	}
	log.Info("embedded etcd member started", "initial_cluster_state", e.InitialClusterState, "peer_url", e.PeerURL, "client_url", e.ClientURL, "data_dir", dataDir, "mutual_tls", mc.TLS != nil)
	return m, nil
}

// stopWhenRemoved returns a context that ends with ctx or when member is
// removed from the etcd cluster (`vigil ctl member remove`): a node outside
// the cluster has no say in it, so its agent shuts down as on SIGTERM and
// Run returns nil (exit 0, which systemd's Restart=on-failure does not
// restart). The member refuses to start again from its data directory.
// `member remove` refuses the leader key's holder (see dcs.CheckRemove),
// so the agent leaves a standby behind; should the key have come to this
// node all the same, the shutdown stops the primary before it lets the key
// go, as on SIGTERM: never an unmanaged primary.
func stopWhenRemoved(ctx context.Context, member *dcs.EmbeddedMember, log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-member.Removed():
			log.Warn("this node's etcd member was removed from the cluster: the agent stops, leaving its database as it is; to join again, `vigil ctl member add` this node and start it with an empty dcs.embedded.data_dir and initial_cluster_state: existing")
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// DCSClientTLS is the client side of a TLS section: dcs.tls towards an
// external etcd, or dcs.embedded.tls (the node's certificate) towards the
// embedded member. Nil when no file is set; with no CA file the system's
// roots verify the server. field names the section in errors.
func DCSClientTLS(field string, t config.TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	if t.CAFile != "" {
		c, err := certs.ClientTLS(t.CAFile, t.CertFile, t.KeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return c, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: load certificate %s with key %s: %w", field, t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// AgentDCSTLS is the TLS section the agent's own etcd client uses: the
// embedded member requires the node's certificate from its clients too.
func AgentDCSTLS(cfg *config.Config) (string, config.TLS) {
	if cfg.DCS.Embedded.Enabled {
		return "dcs.embedded.tls", cfg.DCS.Embedded.TLS
	}
	return "dcs.tls", cfg.DCS.TLS
}

func openStore(cfg *config.Config, endpoints []string, log *slog.Logger) (*dcs.Store, error) {
	tlsCfg, err := DCSClientTLS(AgentDCSTLS(cfg))
	if err != nil {
		return nil, err
	}
	password := ""
	if cfg.DCS.Username != "" {
		if password, err = cfg.DCS.Resolve(); err != nil {
			return nil, fmt.Errorf("dcs password: %w", err)
		}
	}
	field, files := AgentDCSTLS(cfg)
	return dcs.Open(dcs.Options{
		Endpoints: endpoints, TLS: tlsCfg, Username: cfg.DCS.Username, Password: password,
		DialTimeout: cfg.Timing.DCSTimeout, Prefix: cfg.DCS.Prefix, Cluster: cfg.Cluster,
		LeaseTTL: cfg.Timing.LeaseTTL, Logger: log, Sources: dcsSources(cfg, field, files),
	})
}

// dcsSources names the configuration keys and files behind the agent's etcd
// credentials, for etcd's refusals.
func dcsSources(cfg *config.Config, field string, files config.TLS) dcs.Sources {
	var src dcs.Sources
	if files.CAFile != "" {
		src.CA = field + ".ca_file " + files.CAFile
	}
	if files.CertFile != "" {
		src.Cert = field + ".cert_file " + files.CertFile
	}
	switch s := cfg.DCS.Secret; {
	case s.PasswordFile != "":
		src.Password = "dcs.password_file " + s.PasswordFile
	case s.PasswordEnv != "":
		src.Password = "dcs.password_env " + s.PasswordEnv
	}
	return src
}

// checkStore proves once, before the agent starts, that the external etcd
// accepts this node's certificate and user and lets it read and write the
// cluster's prefix: a refusal is the configuration's (or etcd's roles') to
// fix, and an agent that ran on with it would only report "DCS
// unreachable" every loop. An etcd that does not answer is no reason to
// stop: the agent starts and promotes nothing until it does.
func checkStore(ctx context.Context, cfg *config.Config, store *dcs.Store, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 2*cfg.Timing.DCSTimeout)
	defer cancel()
	err := store.Check(cctx)
	switch {
	case errors.Is(err, dcs.ErrAccess):
		return configError(err)
	case err != nil:
		log.Warn("etcd did not answer at start: the agent runs and promotes nothing until it does", "err", err)
	default:
		log.Info("etcd access checked: read and write on the cluster's prefix", "endpoints", cfg.DCS.Endpoints, "user", cfg.DCS.Username)
	}
	return nil
}

// writeReplicationPassFile writes a pgpass file for the replication role,
// readable only by the server's account: primary_conninfo names the file,
// so the password never lands in a configuration file or process argument.
func writeReplicationPassFile(cfg *config.Config, password string, owner *proc.Identity) (string, error) {
	dir := filepath.Dir(cfg.Database.DataDir)
	path := filepath.Join(dir, ".vigil-"+cfg.Node.Name+".pgpass")
	line := fmt.Sprintf("*:*:*:%s:%s\n", pgpassEscape(cfg.Database.Replication.User), pgpassEscape(password))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("write replication pass file: %w", err)
	}
	if owner != nil {
		if err := os.Chown(tmp, int(owner.UID), int(owner.GID)); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("write replication pass file: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write replication pass file: %w", err)
	}
	return path, nil
}

func pgpassEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == ':' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// vipLabel names the VIP's address label after its interface, as
// failover_stream.sh did ("eth0:2"), so that `ip addr` shows which address
// is the service one. Labels are limited to 15 characters.
func vipLabel(iface string) string {
	label := iface + ":vip"
	if len(label) > 15 {
		return ""
	}
	return label
}
