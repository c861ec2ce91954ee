package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/proc"
)

// TestAttackerCannotSteerTheCluster: a host on the cluster's network that
// is not a member (the issue's etcdctl del of the leader key came from the
// demo's client host) gets nothing from etcd without a certificate of the
// cluster's CA: no key read or deleted over TLS without a certificate, with
// a certificate of another CA, or over plain HTTP; the peer port refuses
// its handshakes so it cannot join the raft group. Every mutating route of
// the API (read from the API's mux, see apiRoutes), on every node, refuses
// it without credentials, with a wrong token, over plain HTTP and with a
// client certificate of another CA; no GET route tells it a password or
// the token. Afterwards the cluster is exactly as before: same leader
// under the same key, no request, the same history.
func TestAttackerCannotSteerTheCluster(t *testing.T) {
	c := newSecureCluster(t, "", nil)
	ctx := testCtx(t, 5*time.Minute)
	s := c.startAgents(ctx)
	leaderKey := "/vigil/e2e/leader"
	before := clusterState(ctx, t, s, leaderKey)
	if before.Request {
		t.Fatal("a request is pending before the attack")
	}

	attacker, err := c.lab.AddClient(ctx, "attacker")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := proc.InNetns(attacker.Netns, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}

	// The attacker's own material: a CA of its own with a client and a
	// node certificate, the latter even naming the attacker's address.
	evil := t.TempDir()
	if _, err := certs.InitCA(evil, "e2e", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueClient(evil, "intruder", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueNode(evil, "node4", []string{attacker.Host}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	clusterCA, operatorCert, operatorKey := c.OperatorTLS()
	// Every client trusts the cluster's CA, so that nothing but the
	// members' refusal of its certificate can stop it.
	clientTLS := func(certDir, name string) *tls.Config {
		t.Helper()
		cert, key := "", ""
		if name != "" {
			cert, key = certs.Paths(certDir, name)
		}
		cfg, err := certs.ClientTLS(clusterCA, cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	httpsURLs := c.ClientURLs()
	var httpURLs, peerAddrs []string
	for _, u := range httpsURLs {
		httpURLs = append(httpURLs, "http://"+strings.TrimPrefix(u, "https://"))
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(u, "https://"))
		peerAddrs = append(peerAddrs, net.JoinHostPort(host, "2380"))
	}

	// The keys: every way in is refused.
	for _, a := range []struct {
		name string
		eps  []string
		tls  *tls.Config
	}{
		{"TLS without a certificate", httpsURLs, clientTLS("", "")},
		{"client certificate of another CA", httpsURLs, clientTLS(evil, "intruder")},
		{"node certificate of another CA", httpsURLs, clientTLS(evil, "node4")},
		{"plain HTTP", httpURLs, nil},
	} {
		if err := etcdAttempt(ctx, a.eps, a.tls, dial, leaderKey); err != nil {
			t.Errorf("attacker with %s: %v", a.name, err)
		}
	}
	// The same client code does get in with the cluster's operator
	// certificate from the attacker's host: the refusals above are the
	// certificates', not the network's.
	if err := etcdRead(ctx, httpsURLs, clientTLS(c.CertDir(), "lab-operator"), dial, leaderKey); err != nil {
		t.Errorf("control: the operator's certificate from the attacker's host: %v", err)
	}

	// The raw ports: the members end the TLS handshake of a client
	// without a certificate or with another CA's, on the peer port (no
	// raft) as on the client port; plain HTTP gets no etcd answer.
	for _, addr := range append(peerAddrs, strings.TrimPrefix(httpsURLs[0], "https://")) {
		for _, p := range []struct {
			name string
			tls  *tls.Config
			want []string
		}{
			{"no certificate", clientTLS("", ""), []string{"certificate required"}},
			{"another CA's node certificate", clientTLS(evil, "node4"), []string{"unknown certificate authority", "bad certificate"}},
		} {
			err := tlsVerdict(ctx, dial, addr, p.tls)
			if err == nil || !containsAny(err.Error(), p.want...) {
				t.Errorf("TLS handshake with %s, %s: %v, want a refusal (%s)", addr, p.name, err, strings.Join(p.want, " or "))
				continue
			}
			t.Logf("%s with %s: refused (%v)", addr, p.name, err)
		}
		if body, err := plainGet(ctx, dial, addr); err == nil && strings.Contains(body, "etcd") {
			t.Errorf("plain HTTP to %s answered: %s", addr, body)
		}
	}
	// Control: the same probe with the operator's certificate is let in
	// (the server then waits for the client to speak).
	if err := tlsVerdict(ctx, dial, peerAddrs[0], clientTLS(c.CertDir(), "lab-operator")); !isTimeout(err) {
		t.Errorf("control: TLS handshake with %s with the operator's certificate: %v, want it accepted", peerAddrs[0], err)
	}

	attackAPI(ctx, t, c, dial, evil, clientTLS)

	// An operator with the lab's certificate reaches the cluster through
	// `vigil ctl`, with --config (the node's files) or --cacert/--cert/--key;
	// without a certificate, ctl is refused like the attacker.
	eps := strings.Join(httpsURLs, ",")
	for _, args := range [][]string{
		{"--config", c.ConfigPath("node3"), "list"},
		{"--endpoints", eps, "--cluster", "e2e", "--cacert", clusterCA, "--cert", operatorCert, "--key", operatorKey, "list"},
	} {
		if out, err := exec.CommandContext(ctx, vigilBin, append([]string{"ctl", "--timeout", "3s"}, args...)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "leader node1") {
			t.Errorf("vigil ctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.CommandContext(ctx, vigilBin, "ctl", "--timeout", "3s", "--endpoints", eps, "--cluster", "e2e", "--cacert", clusterCA, "list").CombinedOutput(); err == nil {
		t.Errorf("vigil ctl without a client certificate succeeded:\n%s", out)
	}

	// Two lease periods later nothing has moved.
	time.Sleep(2 * testTTL)
	if after := clusterState(ctx, t, s, leaderKey); after != before {
		t.Errorf("the cluster changed under the attack:\nbefore %+v\nafter  %+v", before, after)
	} else if after.Request {
		t.Errorf("a request is pending after the attack: %+v", after)
	}
	if !c.server("node1").ProbeWrite(ctx).Writable() {
		t.Error("node1 no longer commits writes")
	}
}

// securityState is what an attacker who could write etcd would change.
type securityState struct {
	Leader         string
	LeaderCreated  int64 // the leader key's create revision: a deleted and retaken key has a new one
	Primary        string
	Request        bool
	Paused         bool
	HistoryRecords int
	History        [32]byte // a digest of every record
}

func clusterState(ctx context.Context, t *testing.T, s *dcs.Store, leaderKey string) securityState {
	t.Helper()
	v, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, leaderKey)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader key %s: %v (%d keys)", leaderKey, err, len(resp.Kvs))
	}
	h, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.New()
	for _, r := range h {
		digest.Write(r)
		digest.Write([]byte{0})
	}
	st := securityState{Leader: v.Leader, LeaderCreated: resp.Kvs[0].CreateRevision, Request: v.Request != nil, Paused: v.Config.Paused, HistoryRecords: len(h)}
	copy(st.History[:], digest.Sum(nil))
	if v.Primary != nil {
		st.Primary = v.Primary.Node
	}
	return st
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// etcdAttempt tries to list every key and to delete the leader key with an
// etcd client dialling from the attacker's host; it returns an error if
// either succeeds.
func etcdAttempt(ctx context.Context, eps []string, tlsCfg *tls.Config, dial dialFunc, leaderKey string) error {
	cli, err := attackerClient(eps, tlsCfg, dial)
	if err != nil {
		return nil // refused before any request
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if resp, err := cli.Get(rctx, "/", clientv3.WithPrefix(), clientv3.WithKeysOnly()); err == nil {
		return fmt.Errorf("read %d keys", len(resp.Kvs))
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if resp, err := cli.Delete(dctx, leaderKey); err == nil {
		return fmt.Errorf("deleted the leader key (%d deleted)", resp.Deleted)
	}
	return nil
}

// etcdRead reads the leader key as etcdAttempt would.
func etcdRead(ctx context.Context, eps []string, tlsCfg *tls.Config, dial dialFunc, leaderKey string) error {
	cli, err := attackerClient(eps, tlsCfg, dial)
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, leaderKey)
	if err == nil && len(resp.Kvs) != 1 {
		err = errors.New("no leader key")
	}
	return err
}

func attackerClient(eps []string, tlsCfg *tls.Config, dial dialFunc) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: eps, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})},
	})
}

// tlsVerdict dials addr and completes a TLS handshake with cfg, then reads.
// Under TLS 1.3 the client's side of the handshake is done before the
// server has judged its certificate: a refusal arrives as an alert on the
// first read, while an accepted client reads nothing until the deadline.
func tlsVerdict(ctx context.Context, dial dialFunc, addr string, cfg *tls.Config) error {
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	cfg = cfg.Clone()
	cfg.ServerName, _, _ = net.SplitHostPort(addr)
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

// plainGet sends an HTTP/1.1 request without TLS and returns the answer.
func plainGet(ctx context.Context, dial dialFunc, addr string) (string, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 3 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/version", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// attackAPI works through every route of the API's mux on every node from
// the attacker's host: each mutating one must refuse every kind of caller
// the attacker can be (401 or 403, or a refused handshake for another CA's
// certificate), and no GET route may tell it a secret.
func attackAPI(ctx context.Context, t *testing.T, c *cluster, dial dialFunc, evil string, clientTLS func(certDir, name string) *tls.Config) {
	secrets := &leakScanner{secrets: labSecrets(t, c)}
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	}
	attackers := []struct {
		name   string
		client *http.Client
		token  string
		plain  bool // over HTTP, to the TLS port
	}{
		{"no credentials", client(clientTLS("", "")), "", false},
		{"a wrong token", client(clientTLS("", "")), "wrong-token-0123456789abcdef", false},
		{"another CA's client certificate", client(clientTLS(evil, "intruder")), "", false},
		{"another CA's node certificate", client(clientTLS(evil, "node4")), "", false},
		{"plain HTTP", client(nil), "", true},
	}
	routes := apiRoutes(t)
	var mutating, handshakes int
	var lastHandshake error
	for _, r := range routes {
		if !r.Mutating() {
			continue
		}
		mutating++
		for _, n := range c.lab.Nodes() {
			url := c.APIURL(n.Name) + r.RequestPath()
			for _, a := range attackers {
				u := url
				if a.plain {
					u = "http://" + strings.TrimPrefix(url, "https://")
				}
				code, body, err := apiTry(ctx, a.client, r.RequestMethod(), u, a.token, `{"to":"node2"}`)
				switch {
				case err != nil && strings.Contains(a.name, "another CA"):
					handshakes++
					lastHandshake = err
				case err != nil:
					t.Errorf("%s %s on %s with %s: %v, want an answer refusing it", r.RequestMethod(), r.RequestPath(), n.Name, a.name, err)
				case a.plain && code == http.StatusBadRequest:
				case code == http.StatusUnauthorized || code == http.StatusForbidden:
				default:
					t.Errorf("%s %s on %s with %s = %d, want 401 or 403: %s", r.RequestMethod(), r.RequestPath(), n.Name, a.name, code, body)
				}
				secrets.scan(fmt.Sprintf("the answer to %s %s on %s with %s", r.RequestMethod(), r.RequestPath(), n.Name, a.name), []byte(body))
			}
		}
	}
	if mutating == 0 {
		t.Fatal("no mutating route read from the API's mux: the attack proves nothing")
	}
	anonymous := client(clientTLS("", ""))
	for _, r := range routes {
		if r.Mutating() {
			continue
		}
		for _, n := range c.lab.Nodes() {
			code, body, err := apiTry(ctx, anonymous, r.RequestMethod(), c.APIURL(n.Name)+r.RequestPath(), "", "")
			if err != nil {
				t.Errorf("GET route %s on %s from the attacker: %v", r, n.Name, err)
				continue
			}
			if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
				t.Errorf("%s on %s = %d: the route read from the mux is not served", r, n.Name, code)
			}
			secrets.scan(fmt.Sprintf("the answer to %s on %s", r, n.Name), []byte(body))
		}
	}
	for _, l := range secrets.leaks {
		t.Error("the attacker read a secret: " + l)
	}
	t.Logf("API: %d routes (%d mutating) on %d nodes attacked; %d requests with another CA's certificate refused at the handshake (the last: %v)", len(routes), mutating, len(c.lab.Nodes()), handshakes, lastHandshake)
}
