// Package certs makes and checks the cluster's TLS material without openssl:
// one ECDSA P-256 certificate authority per cluster, node certificates that
// serve every TLS role a node has (etcd peer, etcd server, etcd client, HTTP
// API server), and operators' client certificates for `vigil ctl`.
//
// Layout of a certificate directory:
//
//	DIR/ca.crt     the cluster CA certificate (give it to every node and operator)
//	DIR/ca.key     the CA's private key (keep it off the nodes once they are issued)
//	DIR/NAME.crt   a node's or operator's certificate
//	DIR/NAME.key   its private key
//
// Keys are written mode 0600 and certificates 0644, and nothing is
// overwritten unless asked: replacing a CA key silently would orphan every
// certificate issued from it.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Default validity periods. A CA outlives many leaves; a leaf is renewed
// often enough that a stolen key does not stay useful for a decade.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 2 * 365 * 24 * time.Hour
)

// Certificate and key file modes. A private key readable by anyone else on
// the host is a key anyone on the host can impersonate the node with.
const (
	certMode os.FileMode = 0o644
	keyMode  os.FileMode = 0o600
)

// clockSkew backdates NotBefore: a certificate issued on one host is used at
// once on others whose clocks may be a little behind.
const clockSkew = 5 * time.Minute

// caName is the base name of the CA's files; no leaf may take it.
const caName = "ca"

// Organizational units that tell a node from an operator in a certificate's
// subject, for whoever audits who did what.
const (
	ouCA       = "vigil cluster CA"
	ouNode     = "vigil node"
	ouOperator = "vigil operator"
)

// validName is what a node or operator name may hold: it becomes a file name
// and a certificate's common name.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// validDNS is a loose host name check: letters, digits, hyphens and dots,
// optionally one leading wildcard label.
var validDNS = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)

// Options tune issuing.
type Options struct {
	// Validity is how long the certificate is valid; the package default for
	// its kind when zero. A leaf never outlives its CA: its expiry is cut to
	// the CA's.
	Validity time.Duration
	// Force replaces existing files.
	Force bool
	// Now is the issuing time; time.Now when zero. Tests issue in the past
	// and the future with it.
	Now time.Time
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Issued describes what was written.
type Issued struct {
	CertFile string
	KeyFile  string
	Subject  string
	NotAfter time.Time
	// Capped is true when the requested validity was cut to the CA's expiry.
	Capped bool
	// Hosts are the names and addresses the certificate is valid for (nodes only).
	Hosts []string
}

// Paths returns the certificate and key files of name in dir; "ca" names
// the CA's.
func Paths(dir, name string) (cert, key string) {
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

// ErrExists means a file would be overwritten without Options.Force.
var ErrExists = errors.New("file exists")

// ErrInput marks a refusal caused by the caller's arguments (a name, a host,
// a validity), as opposed to a failure while issuing.
var ErrInput = errors.New("bad input")

// inputError is an argument refusal: its message is its own, and it matches
// ErrInput for errors.Is.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInput }

func badInput(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// InitCA makes the cluster's certificate authority in dir (created if
// missing): dir/ca.crt and dir/ca.key.
func InitCA(dir, cluster string, o Options) (Issued, error) {
	if strings.TrimSpace(cluster) == "" {
		return Issued{}, badInput("init CA: the cluster name is empty")
	}
	certFile, keyFile := Paths(dir, caName)
	if err := checkOverwrite(o.Force, " (every certificate issued from the old CA stops working)", certFile, keyFile); err != nil {
		return Issued{}, fmt.Errorf("init CA: %w", err)
	}
	validity, err := o.validity(DefaultCAValidity)
	if err != nil {
		return Issued{}, fmt.Errorf("init CA: %w", err)
	}
	now := o.now()
	key, serial, err := newKey()
	if err != nil {
		return Issued{}, fmt.Errorf("init CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         "vigil CA " + cluster,
			Organization:       []string{cluster},
			OrganizationalUnit: []string{ouCA},
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves only, never another CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Issued{}, fmt.Errorf("init CA: sign: %w", err)
	}
	if err := writePair(dir, certFile, keyFile, der, key); err != nil {
		return Issued{}, fmt.Errorf("init CA: %w", err)
	}
	return Issued{CertFile: certFile, KeyFile: keyFile, Subject: tmpl.Subject.String(), NotAfter: tmpl.NotAfter}, nil
}

// IssueNode issues a node certificate from the CA in dir, valid for hosts
// (IP addresses and DNS names) as a TLS server and as a TLS client: etcd
// uses one certificate for both ends of its peer connections, and the same
// file serves the etcd client port, the agent's etcd client and the HTTP API.
func IssueNode(dir, name string, hosts []string, o Options) (Issued, error) {
	if len(hosts) == 0 {
		return Issued{}, badInput("issue node certificate %q: no host: give the node's IP addresses and DNS names", name)
	}
	var ips []net.IP
	var dns []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case ip != nil:
			ips = append(ips, ip)
		case validDNS.MatchString(h):
			dns = append(dns, strings.TrimSuffix(h, "."))
		default:
			return Issued{}, badInput("issue node certificate %q: host %q is neither an IP address nor a DNS name", name, h)
		}
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, OrganizationalUnit: []string{ouNode}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: ips,
		DNSNames:    dns,
	}
	is, err := issueLeaf(dir, name, tmpl, o)
	if err != nil {
		return Issued{}, fmt.Errorf("issue node certificate %q: %w", name, err)
	}
	for _, ip := range ips {
		is.Hosts = append(is.Hosts, ip.String())
	}
	is.Hosts = append(is.Hosts, dns...)
	return is, nil
}

// IssueClient issues an operator's client certificate from the CA in dir.
// Its common name is the operator's name: etcd takes it as the user name when
// client certificate authentication is on, and the audit log records it.
func IssueClient(dir, name string, o Options) (Issued, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, OrganizationalUnit: []string{ouOperator}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	is, err := issueLeaf(dir, name, tmpl, o)
	if err != nil {
		return Issued{}, fmt.Errorf("issue client certificate %q: %w", name, err)
	}
	return is, nil
}

// issueLeaf completes tmpl with a fresh key, serial and validity, signs it
// with the CA in dir and writes dir/name.crt and dir/name.key.
func issueLeaf(dir, name string, tmpl *x509.Certificate, o Options) (Issued, error) {
	if name == caName || !validName.MatchString(name) {
		return Issued{}, badInput("name %q: use letters, digits, '.', '_' and '-', not starting with a punctuation mark, and not %q (the CA's files)", name, caName)
	}
	certFile, keyFile := Paths(dir, name)
	if err := checkOverwrite(o.Force, "", certFile, keyFile); err != nil {
		return Issued{}, err
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return Issued{}, err
	}
	validity, err := o.validity(DefaultLeafValidity)
	if err != nil {
		return Issued{}, err
	}
	now := o.now()
	if !now.Before(caCert.NotAfter) {
		return Issued{}, fmt.Errorf("the CA in %s expired on %s: make a new one with `vigil certs init --force` and reissue every certificate", dir, caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, serial, err := newKey()
	if err != nil {
		return Issued{}, err
	}
	tmpl.SerialNumber = serial
	if len(caCert.Subject.Organization) > 0 {
		// The cluster's name, so that a certificate says which cluster it
		// belongs to.
		tmpl.Subject.Organization = caCert.Subject.Organization
	}
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(validity)
	capped := false
	if tmpl.NotAfter.After(caCert.NotAfter) {
		// A leaf past its CA's expiry would fail verification anyway;
		// saying so now beats a surprise on that day.
		tmpl.NotAfter, capped = caCert.NotAfter, true
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return Issued{}, fmt.Errorf("sign with the CA in %s: %w", dir, err)
	}
	if err := writePair(dir, certFile, keyFile, der, key); err != nil {
		return Issued{}, err
	}
	return Issued{CertFile: certFile, KeyFile: keyFile, Subject: tmpl.Subject.String(), NotAfter: tmpl.NotAfter, Capped: capped}, nil
}

// loadCA reads dir/ca.crt and dir/ca.key and checks that they belong together.
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certFile, keyFile := Paths(dir, caName)
	certs, err := readCertificates(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (make the CA first with `vigil certs init --dir %s`)", err, dir)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (issuing needs the CA's key: run this where ca.key is kept)", err)
	}
	ca := certs[0]
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate: make one with `vigil certs init --dir %s`", certFile, dir)
	}
	if !samePublicKey(ca.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("CA key %s does not match CA certificate %s: restore the pair from the same `vigil certs init`", keyFile, certFile)
	}
	return ca, key, nil
}

// validity is o.Validity, or def when zero.
func (o Options) validity(def time.Duration) (time.Duration, error) {
	switch {
	case o.Validity == 0:
		return def, nil
	case o.Validity < 0:
		return 0, badInput("validity %s is negative", o.Validity)
	}
	return o.Validity, nil
}

// newKey makes a certificate's key and serial number.
func newKey() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	// 128 random bits: serials must be unique per CA, and nobody keeps a
	// counter for this one.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("serial number: %w", err)
	}
	return key, n.Add(n, big.NewInt(1)), nil
}

// checkOverwrite refuses when any of files exists, unless force; consequence
// says what replacing them would do.
func checkOverwrite(force bool, consequence string, files ...string) error {
	if force {
		return nil
	}
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s: %w: use --force to replace it%s", f, ErrExists, consequence)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check %s: %w", f, err)
		}
	}
	return nil
}

// writePair writes the certificate and key through temporary files renamed
// into place together, so that a failure leaves no certificate beside a key
// it does not match.
func writePair(dir, certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	keyTmp, err := writeTemp(dir, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), keyMode)
	if err != nil {
		return err
	}
	defer os.Remove(keyTmp)
	certTmp, err := writeTemp(dir, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), certMode)
	if err != nil {
		return err
	}
	defer os.Remove(certTmp)
	if err := os.Rename(keyTmp, keyFile); err != nil {
		return fmt.Errorf("write %s: %w", keyFile, err)
	}
	if err := os.Rename(certTmp, certFile); err != nil {
		return fmt.Errorf("write %s: %w", certFile, err)
	}
	return nil
}

// writeTemp writes data to a new temporary file beside final with mode
// (set explicitly: the umask must not loosen or tighten it) and returns its name.
func writeTemp(dir, final string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", final, err)
	}
	name := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", final, err)
	}
	return name, nil
}
