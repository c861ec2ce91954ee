package api

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/certs"
)

// TestClientCertificateAuthorisesOperatorEndpoints: with api.client_ca_file,
// real TLS handshakes: a certificate of that CA authorises POST /pause
// without a token; one of another CA is refused at the handshake; the
// bearer token still works without a certificate; neither gets 401. GET
// endpoints (HAProxy's checks) need no certificate.
func TestClientCertificateAuthorisesOperatorEndpoints(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	ca, serverCert, serverKey := serverPKI(t, dir)
	if _, err := certs.InitCA(other, "other", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, other} {
		if _, err := certs.IssueClient(d, "dba", certs.Options{}); err != nil {
			t.Fatal(err)
		}
	}

	ctl := &fakeControl{msg: "ok"}
	logs := &logBuffer{}
	s := newServer(t, writablePrimary(), func(o *Options) {
		o.Token, o.Control, o.Logger = testToken, ctl, logs.logger()
		o.CertFile, o.KeyFile, o.ClientCAFile = serverCert, serverKey, ca
	})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = s.tls
	ts.StartTLS()
	defer ts.Close()

	client := func(certDir string) *http.Client {
		cert, key := "", ""
		if certDir != "" {
			cert, key = certs.Paths(certDir, "dba")
		}
		cfg, err := certs.ClientTLS(ca, cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		if certDir != "" {
			// Sent even when the server's list of acceptable CAs does not
			// name its issuer (Go's client would then send none): what an
			// attacker's client does.
			pair := cfg.Certificates[0]
			cfg.Certificates = nil
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	const dba = "cert:CN=dba,OU=vigil operator,O=main"
	tests := []struct {
		name      string
		client    *http.Client
		token     string
		want      int // 0: the handshake is refused
		wantCalls int
		wantBy    string // who the controller is told asked
	}{
		{"certificate of the client CA", client(dir), "", 200, 1, dba},
		{"certificate of the client CA and a wrong token", client(dir), "guess", 200, 1, dba},
		{"certificate of another CA", client(other), "", 0, 0, ""},
		{"certificate of another CA with the token", client(other), testToken, 0, 0, ""},
		{"no certificate, the token", client(""), testToken, 200, 1, "token:" + TokenName(testToken)},
		{"no certificate, a wrong token", client(""), "guess", 401, 0, ""},
		{"no certificate, no token", client(""), "", 401, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ctl.Calls())
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/pause", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := tc.client.Do(req)
			if tc.want == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("the handshake succeeded: %d", resp.StatusCode)
				}
				if !strings.Contains(err.Error(), "tls") {
					t.Errorf("error %v, want a TLS refusal", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("POST /pause = %d, want %d", resp.StatusCode, tc.want)
				}
			}
			calls := ctl.Calls()
			if got := len(calls) - before; got != tc.wantCalls {
				t.Fatalf("controller called %d times, want %d", got, tc.wantCalls)
			}
			if tc.wantCalls > 0 {
				// The client's side of the connection: the test's own host.
				by := calls[len(calls)-1].by
				if host, _, err := net.SplitHostPort(by.From); by.By != tc.wantBy || err != nil || host != "127.0.0.1" {
					t.Errorf("controller told %+v asked, want %q from 127.0.0.1:<port>", by, tc.wantBy)
				}
			}
		})
	}
	resp, err := client("").Get(ts.URL + "/primary")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /primary without a certificate = %d, want 200", resp.StatusCode)
	}
	if l := logs.String(); !strings.Contains(l, "authorised by a client certificate") || !strings.Contains(l, "CN=dba") {
		t.Errorf("the log does not name the certificate that authorised a request:\n%s", l)
	}
}

// TestClientCertificateWithoutToken: a client CA alone opens the operator
// endpoints to certificates only: without one the answer is 401 and says so.
func TestClientCertificateWithoutToken(t *testing.T) {
	ca, cert, key := serverPKI(t, t.TempDir())
	s := newServer(t, writablePrimary(), func(o *Options) {
		o.Control = &fakeControl{msg: "ok"}
		o.CertFile, o.KeyFile, o.ClientCAFile = cert, key, ca
	})
	r := do(t, s, http.MethodPost, "/pause", "", bearer(testToken))
	if r.code != 401 || !strings.Contains(string(r.body), "client certificate") {
		t.Errorf("POST /pause without a certificate = %d %s, want 401 naming the client certificate", r.code, r.body)
	}
}

// TestClientCAFileNeedsTLS: a client CA without the server's own pair, or
// a file that holds no certificate, is refused by New.
func TestClientCAFileNeedsTLS(t *testing.T) {
	ca, cert, key := serverPKI(t, t.TempDir())
	_, caKey := certs.Paths(filepath.Dir(ca), "ca")
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no TLS", Options{ClientCAFile: ca}, "need TLS"},
		{"not a certificate", Options{ClientCAFile: caKey, CertFile: cert, KeyFile: key}, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.NodeName, o.ClusterName, o.Agent, o.Cluster = "node1", "main", &fakeAgent{}, fakeCluster{}
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// serverPKI makes a CA in dir and the API server's certificate for
// 127.0.0.1, and returns the CA file and the server's pair.
func serverPKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	if _, err := certs.InitCA(dir, "main", certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.IssueNode(dir, "node1", []string{"127.0.0.1"}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	ca, _ = certs.Paths(dir, "ca")
	cert, key = certs.Paths(dir, "node1")
	return ca, cert, key
}
