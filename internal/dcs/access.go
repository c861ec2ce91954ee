package dcs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Sources name, for error messages only, where the agent's etcd credentials
// come from: the configuration keys and files an operator has to fix when
// etcd refuses them (e.g. "dcs.tls.ca_file /etc/vigil/ca.crt").
type Sources struct {
	CA       string
	Cert     string
	Password string
}

// ErrAccess marks a refusal by etcd that retrying cannot fix: the server's
// certificate is not trusted, the client certificate is refused, the user
// or password is wrong, or the user may not read and write the cluster's
// prefix. The configuration (or etcd's roles) must change.
var ErrAccess = errors.New("etcd refused access")

// accessError explains a refusal by etcd and keeps the original error for
// errors.Is (rpctypes errors, context errors).
type accessError struct {
	msg string
	err error
}

func (e *accessError) Error() string { return e.msg }
func (e *accessError) Unwrap() error { return e.err }
func (e *accessError) Is(target error) bool {
	return target == ErrAccess
}

// diagnosis holds what an explanation needs to name.
type diagnosis struct {
	endpoints []string
	user      string
	root      string
	tls       *tls.Config
	src       Sources
}

func (d diagnosis) where() string { return strings.Join(d.endpoints, ",") }

func (d diagnosis) userName() string {
	if d.user != "" {
		return d.user
	}
	if d.src.Cert != "" {
		return "(the common name of " + d.src.Cert + ")"
	}
	return "(none)"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// explain turns etcd's refusals into messages that name what failed and
// what to change; other errors (timeouts, an unreachable etcd) are returned
// as they are.
func (d diagnosis) explain(err error) error {
	if err == nil || errors.Is(err, ErrAccess) {
		return err
	}
	var msg string
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		msg = fmt.Sprintf("etcd authentication failed for user %s (%s): check the user name and the password in that file",
			d.userName(), orDefault(d.src.Password, "dcs.password_file"))
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		msg = fmt.Sprintf("etcd permission denied on %s...: the etcd role of user %s must grant readwrite on the prefix %s "+
			"(etcdctl role grant-permission ROLE --prefix=true readwrite %s)", d.root, d.userName(), d.root, d.root)
	case errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrInvalidAuthToken) && d.user == "":
		msg = fmt.Sprintf("etcd at %s requires authentication: set dcs.username and dcs.password_file (or dcs.password_env)", d.where())
	case errors.Is(err, rpctypes.ErrAuthNotEnabled):
		msg = fmt.Sprintf("etcd at %s: authentication is not enabled", d.where())
	default:
		if m := d.tlsMessage(err.Error()); m != "" {
			msg = m
			break
		}
		return err
	}
	return &accessError{msg: fmt.Sprintf("%s (etcd said: %v)", msg, err), err: err}
}

// tlsMessage recognises a TLS failure in the text of err (gRPC passes
// handshake errors on as text) and says which file is to blame; "" when
// text is no TLS failure.
func (d diagnosis) tlsMessage(text string) string {
	where := d.where()
	switch {
	case strings.Contains(text, "certificate signed by unknown authority"):
		return fmt.Sprintf("etcd at %s: TLS: certificate signed by unknown authority (%s): the etcd server's certificate is not signed by that CA",
			where, orDefault(d.src.CA, "dcs.tls.ca_file: not set, so the system's roots were used"))
	case strings.Contains(text, "x509: certificate is valid for"), strings.Contains(text, "x509: cannot validate certificate"):
		i := strings.Index(text, "x509: ")
		return fmt.Sprintf("etcd at %s: TLS: the server's certificate does not name the host dialled (%s): use the host or address the certificate names in dcs.endpoints, or reissue it",
			where, strings.TrimSuffix(text[i:], "\""))
	case strings.Contains(text, "x509: certificate has expired"):
		return fmt.Sprintf("etcd at %s: TLS: the server's certificate has expired or is not yet valid", where)
	case strings.Contains(text, "remote error: tls: expired certificate"):
		return fmt.Sprintf("etcd at %s refused this agent's client certificate: it has expired (%s): issue a new one", where, orDefault(d.src.Cert, "dcs.tls.cert_file"))
	case strings.Contains(text, "remote error: tls: unknown certificate authority"):
		return fmt.Sprintf("etcd at %s refused this agent's client certificate: signed by a CA etcd does not trust (%s): use a certificate of etcd's --trusted-ca-file", where, orDefault(d.src.Cert, "dcs.tls.cert_file"))
	case strings.Contains(text, "remote error: tls: certificate required"):
		return fmt.Sprintf("etcd at %s requires a client certificate: set dcs.tls.cert_file and dcs.tls.key_file", where)
	case strings.Contains(text, "remote error: tls: bad certificate"):
		return fmt.Sprintf("etcd at %s refused this agent's client certificate (%s)", where, orDefault(d.src.Cert, "dcs.tls.cert_file"))
	case strings.Contains(text, "first record does not look like a TLS handshake"), strings.Contains(text, "server gave HTTP response"):
		return fmt.Sprintf("etcd at %s does not speak TLS: use http:// endpoints, or enable TLS on etcd", where)
	}
	return ""
}

// probeTLS does a TLS handshake with each https endpoint, as the etcd
// client would, and returns the first refusal explained: gRPC turns a
// handshake failure into a wait that ends in a bare deadline. nil when
// every endpoint that answers accepts the handshake (or none answers).
func (d diagnosis) probeTLS(ctx context.Context) error {
	if d.tls == nil {
		return nil
	}
	for _, ep := range d.endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" && u.Scheme != "unixs" {
			continue
		}
		cfg := d.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		dialer := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
		conn, err := dialer.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			if m := (diagnosis{endpoints: []string{ep}, src: d.src}).tlsMessage(err.Error()); m != "" {
				return &accessError{msg: fmt.Sprintf("%s (%v)", m, err), err: err}
			}
			continue
		}
		// In TLS 1.3 the server judges the client's certificate after the
		// client has finished its side: its refusal is the first thing read.
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if err != nil {
			if m := (diagnosis{endpoints: []string{ep}, src: d.src}).tlsMessage(err.Error()); m != "" {
				return &accessError{msg: fmt.Sprintf("%s (%v)", m, err), err: err}
			}
		}
	}
	return nil
}

// Check proves, once, that this session may do its work: etcd answers
// over TLS with the configured files, accepts the user, and lets it read
// and write the cluster's prefix. The write is checked without writing: a
// transaction whose condition never holds still has its branches checked
// for permission. An error matching ErrAccess is a refusal to fix in the
// configuration or in etcd's roles; any other means etcd did not answer.
func (s *Store) Check(ctx context.Context) error {
	if _, err := s.client.Get(ctx, s.root, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return s.failure(ctx, "read "+s.root, err)
	}
	leader := s.key("leader")
	if _, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(leader), "<", 0)).
		Then(clientv3.OpPut(leader, ""), clientv3.OpDelete(s.key("history")+"/", clientv3.WithPrefix())).
		Commit(); err != nil {
		return s.failure(ctx, "write "+s.root, err)
	}
	return nil
}

// failure explains err; when etcd did not answer, a TLS probe finds out
// whether a handshake was refused.
func (s *Store) failure(ctx context.Context, what string, err error) error {
	if e := s.diag.explain(err); errors.Is(e, ErrAccess) {
		return e
	}
	probeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if perr := s.diag.probeTLS(probeCtx); perr != nil {
		return perr
	}
	return fmt.Errorf("%s at %s: %w", what, s.diag.where(), err)
}
