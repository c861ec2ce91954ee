package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/certs"
	"github.com/vigil-ha/vigil/internal/flavor"
)

// hostProblems checks the configuration against this host: the files,
// the OS account and the network interface it names must exist. These are
// the only checks that look outside the Config; each skips a value that
// settingProblems already rejected, so one mistake gives one problem.
func (c *Config) hostProblems() Problems {
	var ps Problems
	d := c.Database
	if f, err := flavor.Lookup(d.Flavor); err == nil && filepath.IsAbs(d.BinDir) {
		ps = append(ps, c.binDirProblems(f)...)
	}
	ps = append(ps, c.dirProblems("database.data_dir", d.DataDir)...)
	if d.OSUser != "" {
		if _, err := user.Lookup(d.OSUser); err != nil {
			ps = append(ps, c.at("database.os_user", "no account named %q on this host", d.OSUser))
		}
	}
	ps = append(ps, c.src.passwordFileProblems("database.superuser", d.Superuser.Secret)...)
	ps = append(ps, c.src.passwordFileProblems("database.replication", d.Replication.Secret)...)
	ps = append(ps, c.src.passwordFileProblems("dcs", c.DCS.Secret)...)
	ps = append(ps, c.src.passwordFileProblems("rejoin.rewind", c.Rejoin.Rewind.Secret)...)
	ps = append(ps, c.src.readableFilesProblems([]struct{ field, path string }{
		{"dcs.tls.ca_file", c.DCS.TLS.CAFile},
		{"dcs.tls.cert_file", c.DCS.TLS.CertFile},
		{"dcs.tls.key_file", c.DCS.TLS.KeyFile},
		{"dcs.embedded.tls.ca_file", c.DCS.Embedded.TLS.CAFile},
		{"dcs.embedded.tls.cert_file", c.DCS.Embedded.TLS.CertFile},
		{"dcs.embedded.tls.key_file", c.DCS.Embedded.TLS.KeyFile},
		{"api.cert_file", c.API.CertFile},
		{"api.key_file", c.API.KeyFile},
		{"api.token_file", c.API.TokenFile},
		{"api.client_ca_file", c.API.ClientCAFile},
		{"failover.fence_ssh.key_file", c.Failover.FenceSSH.KeyFile},
		{"failover.fence_ssh.known_hosts_file", c.Failover.FenceSSH.KnownHostsFile},
	})...)
	ps = append(ps, c.tlsFileProblems("dcs.tls", c.DCS.TLS, nil)...)
	if e := c.DCS.Embedded; e.Enabled {
		ps = append(ps, c.tlsFileProblems("dcs.embedded.tls", e.TLS, []string{e.PeerURL, e.ClientURL})...)
	}
	ps = append(ps, c.tlsFileProblems("api.client_ca_file", TLS{CAFile: c.API.ClientCAFile}, nil)...)
	if t := c.API.TokenFile; filepath.IsAbs(t) && readableFileProblem(t) == "" {
		if _, err := c.API.Token(); err != nil {
			ps = append(ps, c.at("api.token_file", "%v", err))
		}
	}
	if cb := c.Callbacks.OnRoleChange; len(cb) > 0 && filepath.IsAbs(cb[0]) {
		if info, err := os.Stat(cb[0]); err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			ps = append(ps, c.at("callbacks.on_role_change", "%s is not an executable file", cb[0]))
		}
	}
	if c.DCS.Embedded.Enabled {
		ps = append(ps, c.dirProblems("dcs.embedded.data_dir", c.DCS.Embedded.DataDir)...)
	}
	if c.VIP.Address != "" && c.VIP.Interface != "" {
		if _, err := net.InterfaceByName(c.VIP.Interface); err != nil {
			ps = append(ps, c.at("vip.interface", "no network interface named %q on this host", c.VIP.Interface))
		}
	}
	return ps
}

// tlsFileProblems checks a TLS section's files as a handshake would use
// them (key mode, key matching the certificate, validity, the CA that
// signed it), once each file set is readable: a missing file is already a
// problem of its own. The certificate must also be valid for the host of
// each of serves, the URLs other members and clients dial.
func (c *Config) tlsFileProblems(section string, t TLS, serves []string) Problems {
	if !t.Enabled() {
		return nil
	}
	for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		if f != "" && (!filepath.IsAbs(f) || readableFileProblem(f) != "") {
			return nil
		}
	}
	var ps Problems
	if err := certs.CheckFiles(t.CAFile, t.CertFile, t.KeyFile, time.Now()); err != nil {
		for _, msg := range strings.Split(err.Error(), "\n") {
			ps = append(ps, c.at(section, "%s", msg))
		}
		return ps
	}
	seen := map[string]bool{}
	for _, raw := range serves {
		u, err := url.Parse(raw)
		if err != nil || t.CertFile == "" || seen[u.Hostname()] {
			continue
		}
		host := u.Hostname()
		seen[host] = true
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
			continue // every address: nobody dials 0.0.0.0
		}
		if err := certs.VerifyHost(t.CertFile, host); err != nil {
			ps = append(ps, c.at(section+".cert_file", "%v", err))
		}
	}
	return ps
}

// binDirProblems checks that bin_dir holds the flavor's control binary,
// the program every role change goes through.
func (c *Config) binDirProblems(f flavor.Flavor) Problems {
	dir := c.Database.BinDir
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Problems{c.at("database.bin_dir", "%s does not exist: point it at the directory holding %s", dir, f.ControlBinary)}
	case err != nil:
		return Problems{c.at("database.bin_dir", "cannot read it: %v", err)}
	case !info.IsDir():
		return Problems{c.at("database.bin_dir", "%s is not a directory: point it at the directory holding %s", dir, f.ControlBinary)}
	}
	bin := filepath.Join(dir, f.ControlBinary)
	info, err = os.Stat(bin)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Problems{c.at("database.bin_dir", "%s has no %s: point it at the %s binaries, or set database.flavor", dir, f.ControlBinary, f.Product)}
	case err != nil:
		return Problems{c.at("database.bin_dir", "cannot read %s: %v", bin, err)}
	case !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0:
		return Problems{c.at("database.bin_dir", "%s is not an executable file", bin)}
	}
	return nil
}

// dirProblems rejects a path that exists but is not a directory. A missing
// directory is fine: a standby's data directory, for one, is created when
// it is cloned.
func (c *Config) dirProblems(field, dir string) Problems {
	if !filepath.IsAbs(dir) {
		return nil
	}
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		return Problems{c.at(field, "%s exists and is not a directory", dir)}
	}
	return nil
}

// passwordFileProblems reads the secret's password file, if it has one,
// exactly as the agent will. The password itself goes nowhere.
func (s source) passwordFileProblems(field string, sec Secret) Problems {
	if !filepath.IsAbs(sec.PasswordFile) || sec.PasswordEnv != "" {
		return nil
	}
	field += ".password_file"
	if msg := readableFileProblem(sec.PasswordFile); msg != "" {
		return Problems{s.at(field, "%s", msg)}
	}
	if _, err := sec.Resolve(); err != nil {
		return Problems{s.at(field, "%v", err)}
	}
	return nil
}

// readableFileProblem says why path is not a file this process can read,
// "" when it is one.
func readableFileProblem(path string) string {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist", path)
	case err != nil:
		return fmt.Sprintf("cannot read it: %v", err)
	case info.IsDir():
		return fmt.Sprintf("%s is a directory, not a file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("cannot read it: %v", err)
	}
	_ = f.Close() // opened only to prove it can be
	return ""
}

// secretWarnings flags a secret that is exposed or not visible from here.
func (s source) secretWarnings(field string, sec Secret) Problems {
	var ws Problems
	if file := sec.PasswordFile; filepath.IsAbs(file) {
		// The rule libpq applies to ~/.pgpass.
		if info, err := os.Stat(file); err == nil && info.Mode().Perm()&0o077 != 0 {
			ws = append(ws, s.at(field+".password_file", "%s is open to other accounts (mode %04o): chmod 0600 it, as libpq demands of .pgpass", file, info.Mode().Perm()))
		}
	}
	if env := sec.PasswordEnv; validEnvName(env) {
		if _, ok := os.LookupEnv(env); !ok {
			// The agent may well have it (systemd Environment=) while
			// the shell running `vigil config check` does not.
			ws = append(ws, s.at(field+".password_env", "environment variable %s is not set here: make sure the environment Vigil runs in sets it", env))
		}
	}
	return ws
}

// hostWarnings flags secrets that are exposed or not visible from here.
func (c *Config) hostWarnings() Problems {
	var ws Problems
	ws = append(ws, c.src.secretWarnings("database.superuser", c.Database.Superuser.Secret)...)
	ws = append(ws, c.src.secretWarnings("database.replication", c.Database.Replication.Secret)...)
	ws = append(ws, c.src.secretWarnings("dcs", c.DCS.Secret)...)
	ws = append(ws, c.src.secretWarnings("rejoin.rewind", c.Rejoin.Rewind.Secret)...)
	if t := c.API.TokenFile; filepath.IsAbs(t) {
		if info, err := os.Stat(t); err == nil && info.Mode().Perm()&0o077 != 0 {
			ws = append(ws, c.at("api.token_file", "%s is open to other accounts (mode %04o): chmod 0600 it; whoever reads it can request failovers", t, info.Mode().Perm()))
		}
	}
	if c.API.Listen != "" && c.API.TokenFile == "" && c.API.ClientCAFile == "" {
		ws = append(ws, c.at("api.token_file", "is empty: POST /switchover, /failover, /pause and /resume are refused (403) until a token is configured"))
	}
	if c.API.Listen != "" && c.API.CertFile == "" {
		if host, _, err := net.SplitHostPort(c.API.Listen); err == nil {
			if ip, err := netip.ParseAddr(host); host == "" || err != nil || !ip.IsLoopback() {
				ws = append(ws, c.at("api.cert_file", "is empty: the API and its bearer token travel in clear text on %s; set api.cert_file and api.key_file", c.API.Listen))
			}
		}
	}
	return ws
}
