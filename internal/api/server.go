// Package api is each agent's HTTP API. Proxies (HAProxy httpchk) route on
// the status codes of the role endpoints, monitoring scrapes /metrics and
// /cluster, and operators request switchovers, failovers and pauses.
//
// The role endpoints answer from the agent's last loop and never query the
// database themselves: a health check must not add load to a struggling
// server, and the agent's write probe is the only evidence that counts.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-ha/vigil/internal/agent"
	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

// StatusSource gives the agent's view after its last loop.
type StatusSource interface {
	Status() agent.Status
}

// ClusterSource reads the whole cluster from the DCS.
type ClusterSource interface {
	Snapshot(ctx context.Context) (dcs.View, error)
}

// Controller performs operator requests on behalf of by, the authenticated
// caller (for the audit trail: the request stored names them). Its methods
// return a message for the operator. An error wrapping ErrConflict means
// the cluster's state does not allow the request (answered 409); any other
// error is answered 500, or 504 when the call ran out of time.
type Controller interface {
	Switchover(ctx context.Context, by dcs.Actor, to string, at time.Time) (string, error)
	Failover(ctx context.Context, by dcs.Actor, to string) (string, error)
	SetPaused(ctx context.Context, by dcs.Actor, paused bool) error
}

// FailsafeConfirmer is the agent's side of failsafe mode: it promises a
// leader that lost the DCS not to promote, for the duration it returns, or
// refuses with an error wrapping agent.ErrWillPromote.
type FailsafeConfirmer interface {
	ConfirmFailsafe(leader string) (time.Duration, error)
}

// ErrConflict is wrapped by a Controller to refuse a request because of the
// cluster's state (no such standby, a request already pending, ...), so
// that the operator gets 409 and knows retrying unchanged will not help.
var ErrConflict = errors.New("request conflicts with the cluster state")

// Defaults for the zero values of Options.
const (
	DefaultStaleAfter     = 30 * time.Second
	DefaultMaxLagBytes    = 16 << 20 // one default WAL segment
	DefaultClusterTimeout = 5 * time.Second
	DefaultControlTimeout = 30 * time.Second
)

// Options configure the API server.
type Options struct {
	Listen string // e.g. ":8008"
	// CertFile and KeyFile enable TLS when both are set.
	CertFile, KeyFile string
	// Token is required as "Authorization: Bearer <token>" on every POST
	// endpoint. Empty refuses all of them (403): never open by default.
	Token string
	// ClientCAFile, with CertFile and KeyFile, makes the server ask for
	// client certificates: a certificate signed by this CA authorises the
	// POST endpoints as the token does; one of another CA is refused at
	// the handshake. Clients without a certificate (health checks, a
	// token) are served as before.
	ClientCAFile string

	// NodeName and ClusterName label every vigil_ metric. They are options
	// rather than read from Agent because the API starts before the
	// agent's first loop fills its status.
	NodeName    string
	ClusterName string

	Agent   StatusSource
	Cluster ClusterSource
	// Control may be nil: its endpoints then answer 501.
	Control Controller
	// Failsafe answers a failsafe leader's pings (POST /failsafe); nil
	// answers 501.
	Failsafe FailsafeConfirmer

	// SyncMode and MaximumLagOnFailover are this node's failover settings
	// (failover.synchronous_mode, failover.maximum_lag_on_failover), for
	// the metrics the alerts compare with. An empty SyncMode is off.
	SyncMode             decision.SyncMode
	MaximumLagOnFailover uint64
	// DCS, when set, exports the agent's reads of etcd (its round-trip
	// time, the synchronous standbys recorded); the agent's store must be
	// wrapped to feed it (see DCSReads).
	DCS *DCSReads

	// DefaultMaxLagBytes applies to /replica and /read-only when no ?lag=
	// is given; 0 means DefaultMaxLagBytes (the package constant).
	DefaultMaxLagBytes uint64
	// StaleAfter is how old the agent's last loop may be before every
	// check fails: a stuck loop's status is no evidence of anything, and a
	// primary whose agent is stuck may have lost its lease already.
	// 0 means DefaultStaleAfter.
	StaleAfter time.Duration
	// ClusterTimeout bounds the DCS read of /cluster.
	ClusterTimeout time.Duration
	// ControlTimeout bounds one Controller call; the HTTP write timeout is
	// derived from it.
	ControlTimeout time.Duration

	Logger *slog.Logger
}

// Server is the HTTP API of one agent.
type Server struct {
	o       Options
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler
	tls     *tls.Config
	// tokenName names the token's holders in the audit trail.
	tokenName string
}

// New checks the options, loads the TLS key pair and registers the metrics.
func New(o Options) (*Server, error) {
	switch {
	case o.Agent == nil:
		return nil, errors.New("api: a status source (the agent) is required")
	case o.Cluster == nil:
		return nil, errors.New("api: a cluster source (the DCS store) is required")
	case o.NodeName == "" || o.ClusterName == "":
		// Metrics of several agents would be indistinguishable.
		return nil, errors.New("api: node and cluster names are required")
	case (o.CertFile == "") != (o.KeyFile == ""):
		return nil, errors.New("api: TLS needs both a certificate and a key file")
	case o.ClientCAFile != "" && o.CertFile == "":
		return nil, errors.New("api: client certificates (a client CA file) need TLS: a certificate and a key file")
	}
	if o.DefaultMaxLagBytes == 0 {
		o.DefaultMaxLagBytes = DefaultMaxLagBytes
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.ClusterTimeout <= 0 {
		o.ClusterTimeout = DefaultClusterTimeout
	}
	if o.ControlTimeout <= 0 {
		o.ControlTimeout = DefaultControlTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, log: log.With("component", "api"), tokenName: TokenName(o.Token)}

	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("api: load TLS key pair %s, %s: %w", o.CertFile, o.KeyFile, err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if o.ClientCAFile != "" {
		// The pool a client would verify its server with is the one
		// client certificates are verified with.
		ca, err := certs.ClientTLS(o.ClientCAFile, "", "", "")
		if err != nil {
			return nil, fmt.Errorf("api: client CA: %w", err)
		}
		// Asked for, verified when given, not required: HAProxy's health
		// checks and token holders come without one.
		s.tls.ClientCAs = ca.RootCAs
		s.tls.ClientAuth = tls.VerifyClientCertIfGiven
	}

	// Our own registry: etcd (embedded in the agent) registers its metrics
	// on the default one, and two servers in one process (tests, the lab)
	// must not collide.
	s.reg = prometheus.NewRegistry()
	labelled := prometheus.WrapRegistererWith(prometheus.Labels{"node": o.NodeName, "cluster": o.ClusterName}, s.reg)
	cs := []struct {
		r prometheus.Registerer
		c prometheus.Collector
	}{
		{labelled, newStatusCollector(o.Agent, o.SyncMode, o.MaximumLagOnFailover)},
		{s.reg, collectors.NewGoCollector()},
		{s.reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
	}
	if o.DCS != nil {
		cs = append(cs, struct {
			r prometheus.Registerer
			c prometheus.Collector
		}{labelled, o.DCS})
	}
	for _, c := range cs {
		if err := c.r.Register(c.c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves the API without a listener (tests, embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is the server's own metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// OPTIONS too, because HAProxy's bare "option httpchk" sends
	// OPTIONS / and operators copy that line into their backends.
	for _, m := range []string{http.MethodGet, http.MethodOptions} {
		mux.HandleFunc(m+" /primary", s.handlePrimary)
		mux.HandleFunc(m+" /read-write", s.handlePrimary)
		mux.HandleFunc(m+" /replica", s.handleReplica)
		mux.HandleFunc(m+" /read-only", s.handleReadOnly)
		mux.HandleFunc(m+" /health", s.handleHealth)
	}
	mux.HandleFunc("GET /cluster", s.handleCluster)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog: promLogger{s.log},
		// Counts failed scrapes on our registry, not the default one.
		Registry: s.reg,
	}))
	mux.HandleFunc("POST /switchover", s.authorized(s.handleSwitchover))
	mux.HandleFunc("POST /failover", s.authorized(s.handleFailover))
	mux.HandleFunc("POST /pause", s.authorized(s.handlePause(true)))
	mux.HandleFunc("POST /resume", s.authorized(s.handlePause(false)))
	mux.HandleFunc("POST "+agent.FailsafePath, s.authorized(s.handleFailsafe))
	return mux
}

// Serve listens on Options.Listen until ctx ends, then shuts down
// gracefully: requests in flight (an operator's switchover) may finish.
func (s *Server) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.o.Listen)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.o.Listen, err)
	}
	return s.serve(ctx, ln)
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A controller call may legitimately take ControlTimeout.
		WriteTimeout:   s.o.ControlTimeout + 10*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if s.tls != nil {
			// The key pair is already in TLSConfig.
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	s.log.Info("API listening", "addr", ln.Addr().String(), "tls", s.tls != nil, "control", s.o.Control != nil, "token_set", s.o.Token != "", "client_certificates", s.o.ClientCAFile != "")

	select {
	case err := <-errc:
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.ControlTimeout+5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		err = errors.Join(fmt.Errorf("api: graceful shutdown: %w", err), srv.Close())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("api: serve on %s: %w", ln.Addr(), serr))
	}
	s.log.Info("API stopped")
	return err
}

// promLogger sends promhttp's errors (a collector failing) to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error("metrics scrape", "err", fmt.Sprint(v...)) }
