package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// CheckFiles checks a node's TLS files before anything uses them, so that
// `vigil config check` refuses what a TLS handshake would later fail on with
// a less helpful message. ca is the CA certificate file; cert and key the
// node's pair (both empty to check the CA only, as for a client that only
// verifies its server). Each problem names the file and the fix; independent
// problems are joined, one per line.
func CheckFiles(ca, cert, key string, now time.Time) error {
	var problems []error
	var roots []*x509.Certificate
	if ca != "" {
		var err error
		roots, err = readCertificates(ca)
		if err != nil {
			problems = append(problems, fmt.Errorf("%w: point it at the cluster's ca.crt (`vigil certs init` makes one)", err))
		}
		for _, r := range roots {
			if err := checkValidity(ca, r, now, "the CA"); err != nil {
				problems = append(problems, err)
			}
		}
	}
	switch {
	case cert == "" && key == "":
		return errors.Join(problems...)
	case cert == "":
		return errors.Join(append(problems, fmt.Errorf("key file %s is given without its certificate file: set both or neither", key))...)
	case key == "":
		return errors.Join(append(problems, fmt.Errorf("certificate file %s is given without its key file: set both or neither", cert))...)
	}

	leafs, certErr := readCertificates(cert)
	if certErr != nil {
		problems = append(problems, fmt.Errorf("%w: point it at the certificate `vigil certs node` wrote", certErr))
	}
	signer, keyErr := checkKeyFile(key)
	if keyErr != nil {
		problems = append(problems, keyErr)
	}
	if certErr != nil {
		return errors.Join(problems...)
	}
	leaf := leafs[0]
	if keyErr == nil && !samePublicKey(leaf.PublicKey, signer.Public()) {
		problems = append(problems, fmt.Errorf("key file %s does not match certificate %s: use the .key written with that .crt, or issue both again with `vigil certs node --force`", key, cert))
	}
	if err := checkValidity(cert, leaf, now, "certificate"); err != nil {
		problems = append(problems, err)
	}
	if len(roots) > 0 {
		if err := verifyChain(ca, roots, cert, leafs, now); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

// VerifyHost checks that the certificate in file is valid for host (an IP
// address or DNS name), as a client connecting to host would.
func VerifyHost(file, host string) error {
	certs, err := readCertificates(file)
	if err != nil {
		return err
	}
	c := certs[0]
	if err := c.VerifyHostname(host); err != nil {
		return fmt.Errorf("certificate %s is not valid for host %q (it names %s): reissue it with `vigil certs node --force --host %s,...`", file, host, describeNames(c), host)
	}
	return nil
}

// describeNames lists the addresses and names a certificate is valid for.
func describeNames(c *x509.Certificate) string {
	var names []string
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, c.DNSNames...)
	if len(names) == 0 {
		return "no host"
	}
	return strings.Join(names, ", ")
}

// checkValidity refuses a certificate outside its validity period at now.
func checkValidity(file string, c *x509.Certificate, now time.Time, what string) error {
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%s in %s (%s) expired on %s: issue a new one (`vigil certs`)", what, file, c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%s in %s (%s) is not valid before %s: check this host's clock, or the clock of the host that issued it", what, file, c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyChain checks that the leaf was signed by one of roots, with the
// leaf's other certificates as intermediates. Validity periods are checked
// apart, with clearer messages, so verification happens at a time when all
// certificates are valid.
func verifyChain(caFile string, roots []*x509.Certificate, certFile string, chain []*x509.Certificate, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	at := now
	if at.After(chain[0].NotAfter) || at.Before(chain[0].NotBefore) {
		at = chain[0].NotBefore.Add(chain[0].NotAfter.Sub(chain[0].NotBefore) / 2)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unknown):
		return fmt.Errorf("certificate %s (issued by %s) is not signed by the CA in %s (%s): issue it from that CA with `vigil certs node`, or point the CA setting at the CA that signed it", certFile, chain[0].Issuer, caFile, roots[0].Subject)
	default:
		return fmt.Errorf("certificate %s does not verify against the CA in %s: %w", certFile, caFile, err)
	}
}

// checkKeyFile refuses a key file others can read, then parses it.
func checkKeyFile(file string) (crypto.Signer, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w: point it at the .key written with the certificate", file, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file: point it at the .key written with the certificate", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is readable by group or others (mode %04o): chmod 600 %s", file, perm, file)
	}
	return readKey(file)
}

// readCertificates returns the PEM certificates in file, at least one.
func readCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read certificate file %s: %w", file, err)
	}
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate file %s: certificate %d: %w", file, len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("certificate file %s holds no PEM certificate", file)
	}
	return out, nil
}

// readKey parses the first private key in a PEM file: PKCS#8, SEC 1 (EC) or
// PKCS#1 (RSA), the encodings etcd and openssl write.
func readKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", file, err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("key file %s holds no PEM private key", file)
		}
		var key any
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", file, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key file %s: unsupported key type %T", file, key)
		}
		return s, nil
	}
}

// samePublicKey compares two public keys of any type crypto/x509 parses.
func samePublicKey(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// ServerTLS is a TLS server configuration that presents cert/key and
// requires a client certificate signed by the CA in ca: the setting every
// cluster port (etcd peer and client, HTTP API) uses.
func ServerTLS(ca, cert, key string) (*tls.Config, error) {
	if cert == "" || key == "" {
		return nil, errors.New("TLS server: a certificate and a key file are both needed")
	}
	pool, pair, err := loadTLS(ca, cert, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientTLS is a TLS client configuration that trusts only the CA in ca and
// presents cert/key (none when both are empty). serverName is checked
// against the server's certificate; empty means the dialled host.
func ClientTLS(ca, cert, key, serverName string) (*tls.Config, error) {
	pool, pair, err := loadTLS(ca, cert, key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}
	if cert != "" {
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func loadTLS(ca, cert, key string) (*x509.CertPool, tls.Certificate, error) {
	roots, err := readCertificates(ca)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	if cert == "" && key == "" {
		return pool, tls.Certificate{}, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load certificate %s with key %s: %w", cert, key, err)
	}
	return pool, pair, nil
}
