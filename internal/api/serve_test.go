package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/agent"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// start runs s.serve on a free port and returns its address and the
// channel serve's result arrives on.
func start(t *testing.T, ctx context.Context, s *Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, ln) }()
	return ln.Addr().String(), done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
		return nil
	}
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	s := newServer(t, writablePrimary(), func(o *Options) { o.CertFile, o.KeyFile = certFile, keyFile })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := start(t, ctx, s)

	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get("https://" + addr + "/health")
	if err != nil {
		t.Fatalf("GET /health over TLS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("GET https /health = %d (TLS %v): %s", resp.StatusCode, resp.TLS != nil, body)
	}

	// A client that does not trust the certificate must fail.
	untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if resp, err := untrusting.Get("https://" + addr + "/health"); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA connected")
	}
	// Plain HTTP to the TLS port gets no API answer.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/health"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP got 200 from the TLS listener")
		}
		resp.Body.Close()
	}

	cancel()
	if err := wait(t, done); err != nil {
		t.Errorf("serve after shutdown: %v", err)
	}
}

// A switchover in flight when the agent stops finishes and is answered.
func TestServeGracefulShutdown(t *testing.T) {
	ctl := &fakeControl{msg: "switched", release: make(chan struct{}), started: make(chan struct{})}
	s := newServer(t, writablePrimary(), func(o *Options) { o.Token = testToken; o.Control = ctl })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := start(t, ctx, s)

	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/switchover", strings.NewReader(`{"to":"node2"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		resp.Body.Close()
		res <- result{code: resp.StatusCode}
	}()
	<-ctl.started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("serve returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(ctl.release)
	if r := <-res; r.err != nil || r.code != http.StatusOK {
		t.Errorf("in-flight switchover: code %d, err %v; want 200", r.code, r.err)
	}
	if err := wait(t, done); err != nil {
		t.Errorf("serve after shutdown: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/health"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, addr := range []string{busy.Addr().String(), "127.0.0.1:notaport"} {
		s := newServer(t, agent.Status{}, func(o *Options) { o.Listen = addr })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Serve(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "listen on "+addr) {
			t.Errorf("Serve on %s = %v, want a listen error naming the address", addr, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	tests := []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"valid", func(*Options) {}, true},
		{"valid with TLS", func(o *Options) { o.CertFile, o.KeyFile = certFile, keyFile }, true},
		{"no agent", func(o *Options) { o.Agent = nil }, false},
		{"no cluster source", func(o *Options) { o.Cluster = nil }, false},
		{"no node name", func(o *Options) { o.NodeName = "" }, false},
		{"no cluster name", func(o *Options) { o.ClusterName = "" }, false},
		{"cert without key", func(o *Options) { o.CertFile = certFile }, false},
		{"key without cert", func(o *Options) { o.KeyFile = keyFile }, false},
		{"missing cert file", func(o *Options) { o.CertFile, o.KeyFile = filepath.Join(dir, "none.crt"), keyFile }, false},
		{"key does not match", func(o *Options) { o.CertFile, o.KeyFile = certFile, certFile }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{NodeName: "node1", ClusterName: "main", Agent: &fakeAgent{}, Cluster: fakeCluster{}}
			tc.edit(&o)
			_, err := New(o)
			if (err == nil) != tc.ok {
				t.Errorf("New = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
