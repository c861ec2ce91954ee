package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/proc"
)

// plan is Options checked and completed. Making one changes nothing on disk.
type plan struct {
	dir string
	// parents are missing ancestors of dir to create, outermost first.
	parents []string
	// replace: dir holds a lab that Force says to remove first.
	replace bool
	nodes   int
	netns   bool
	empty   bool
	binDir  string
	flavor  flavor.Flavor
	ports   []int // per node
	user    *proc.Identity
	osUser  string
	logger  *slog.Logger
}

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

func makePlan(ctx context.Context, o Options, euid int) (plan, error) {
	p := plan{nodes: o.Nodes, netns: o.Netns, empty: o.Empty, flavor: o.Flavor, logger: o.Logger}
	if p.logger == nil {
		p.logger = discardLogger()
	}
	if o.Dir == "" {
		return p, inputErrorf("no lab dir given (--dir): the lab keeps its data directories, sockets, secrets and state there")
	}
	if o.Nodes < 1 {
		return p, inputErrorf("--nodes %d: a lab needs at least 1 node (node1 is the primary, the others are standbys)", o.Nodes)
	}
	if o.Nodes > MaxNodes {
		return p, inputErrorf("--nodes %d: a lab has at most %d nodes", o.Nodes, MaxNodes)
	}
	if p.flavor.Name == "" {
		p.flavor = flavor.MustLookup(flavor.Postgres)
	}
	if err := p.checkBinaries(o.BinDir); err != nil {
		return p, err
	}
	if o.Netns && euid != 0 {
		return p, inputErrorf("lab --netns needs root: it creates network namespaces and veth links")
	}
	if err := p.resolveUser(o.OSUser, euid); err != nil {
		return p, err
	}
	if err := p.checkDir(o.Dir, o.Force); err != nil {
		return p, err
	}
	if err := p.choosePorts(o.BasePort); err != nil {
		return p, err
	}
	if p.user != nil && int(p.user.UID) != euid {
		if err := p.checkReachable(ctx); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (p *plan) checkBinaries(binDir string) error {
	if binDir == "" {
		binDir = DefaultBinDir
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return inputErrorf("--bin-dir %s: %v", binDir, err)
	}
	p.binDir = abs
	hint := p.flavor.Product
	if p.flavor.Name == flavor.Postgres {
		hint = "postgresql-15"
	}
	for _, b := range []string{p.flavor.InitDBBinary, p.flavor.ControlBinary, p.flavor.ServerBinary, p.flavor.ClientBinary, p.flavor.BaseBackupBinary} {
		fi, err := os.Stat(filepath.Join(abs, b))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return inputErrorf("%s not found in %s: install %s or set --bin-dir", b, abs, hint)
		}
	}
	return nil
}

func (p *plan) resolveUser(name string, euid int) error {
	if euid != 0 {
		cur, err := user.Current()
		if err != nil {
			return fmt.Errorf("look up the current user: %w", err)
		}
		if name != "" && name != cur.Username {
			return inputErrorf("--os-user %s needs root: without root the servers run as the current user %s", name, cur.Username)
		}
		return nil
	}
	if name == "" {
		name = DefaultOSUser
	}
	id, err := proc.LookupUser(name)
	if err != nil {
		return &InputError{Err: err}
	}
	if id.UID == 0 {
		return inputErrorf("--os-user %s: %s refuses to run as root; choose an unprivileged account such as %s", name, p.flavor.Product, DefaultOSUser)
	}
	p.user = &id
	p.osUser = id.Name
	return nil
}

// resolveDir makes dir absolute and resolves symlinks in the part that
// exists: the servers' working directories, which Down matches processes
// by, are real paths.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("lab dir %s: %w", dir, err)
	}
	existing, rest := abs, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("lab dir %s: %w", dir, err)
	}
	return filepath.Join(real, rest), nil
}

func (p *plan) checkDir(dir string, force bool) error {
	abs, err := resolveDir(dir)
	if err != nil {
		return &InputError{Err: err}
	}
	p.dir = abs
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		for d := abs; ; d = filepath.Dir(d) {
			if _, err := os.Stat(d); err == nil {
				break
			}
			if d != abs {
				p.parents = append([]string{d}, p.parents...)
			}
		}
	case err != nil:
		return inputErrorf("lab dir %s: %v", abs, err)
	case !fi.IsDir():
		return inputErrorf("lab dir %s exists and is not a directory: choose a new or empty directory", abs)
	default:
		entries, err := os.ReadDir(abs)
		if err != nil {
			return inputErrorf("lab dir %s: %v", abs, err)
		}
		if len(entries) > 0 {
			if _, err := os.Stat(statePath(abs)); err != nil {
				return inputErrorf("lab dir %s is not empty and holds no lab (no %s): choose a new or empty directory", abs, StateFile)
			}
			if !force {
				return inputErrorf("lab dir %s already holds a lab: remove it with `vigil lab down --dir %s`, or use --force to replace it", abs, abs)
			}
			p.replace = true
		}
	}
	longest := filepath.Join(abs, fmt.Sprintf("node%d", p.nodes), "run", ".s.PGSQL.65535")
	if len(longest) > maxSocketPath {
		return inputErrorf("lab dir %s is too long: its unix socket paths (%s) would exceed %d bytes; choose a shorter path", abs, longest, maxSocketPath)
	}
	return nil
}

func (p *plan) choosePorts(base int) error {
	if base < 0 || base > 65535 {
		return inputErrorf("--port %d: not a TCP port", base)
	}
	p.ports = make([]int, p.nodes)
	if p.netns {
		port := base
		if port == 0 {
			port = p.flavor.DefaultPort
		}
		if err := p.checkUnprivileged(port); err != nil {
			return err
		}
		for i := range p.ports {
			p.ports[i] = port
		}
		return nil
	}
	if base == 0 {
		return p.pickFreePorts()
	}
	if last := base + p.nodes - 1; last > 65535 {
		return inputErrorf("--port %d: %d nodes need ports up to %d, beyond 65535", base, p.nodes, last)
	}
	if err := p.checkUnprivileged(base); err != nil {
		return err
	}
	for i := range p.ports {
		port := base + i
		if !portFree(port) {
			return inputErrorf("port %d on 127.0.0.1 (for node%d) is in use: choose another --port, or leave it out to pick free ports", port, i+1)
		}
		p.ports[i] = port
	}
	return nil
}

func (p *plan) checkUnprivileged(port int) error {
	if port < 1024 {
		return inputErrorf("--port %d: ports below 1024 need root, and the servers do not run as root; use 1024 or above", port)
	}
	return nil
}

// pickFreePorts takes consecutive free ports from a random place above the
// usual ephemeral range's start, so that concurrent labs (tests of several
// packages run at once) rarely try the same ones.
func (p *plan) pickFreePorts() error {
	const lo, hi = 20000, 32000
	start := lo + rand.IntN(hi-lo)
	for off := 0; off < hi-lo; off++ {
		port := lo + (start-lo+off)%(hi-lo)
		if port+p.nodes-1 >= hi {
			continue
		}
		ok := true
		for i := 0; i < p.nodes && ok; i++ {
			ok = portFree(port + i)
		}
		if ok {
			for i := range p.ports {
				p.ports[i] = port + i
			}
			return nil
		}
	}
	return fmt.Errorf("no %d consecutive free ports on 127.0.0.1 between %d and %d", p.nodes, lo, hi)
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// checkReachable makes sure the OS user can get to the lab dir: tests and
// people often work under 0700 directories (t.TempDir, a home directory),
// where initdb would fail with a bare "permission denied".
func (p *plan) checkReachable(ctx context.Context) error {
	var dirs []string
	for d := p.dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && (d != p.dir || !p.replace) {
			dirs = append([]string{d}, dirs...)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	// One process for all directories; it prints the first it cannot search.
	script := `for d do test -x "$d" || { printf '%s' "$d"; exit 1; }; done`
	out, err := proc.Runner{As: p.user}.Run(ctx, "sh", append([]string{"-c", script, "sh"}, dirs...)...)
	if err == nil {
		return nil
	}
	if proc.ExitCode(err) != 1 {
		return fmt.Errorf("check that OS user %s can reach %s: %w", p.user.Name, p.dir, err)
	}
	blocked := strings.TrimSpace(string(out))
	mode := "?"
	if fi, err := os.Stat(blocked); err == nil {
		mode = fmt.Sprintf("%04o", fi.Mode().Perm())
	}
	return inputErrorf("OS user %s cannot reach lab dir %s: %s (mode %s) is not searchable by %s; chmod o+x %s, or choose a lab dir under /var/tmp", p.user.Name, p.dir, blocked, mode, p.user.Name, blocked)
}
