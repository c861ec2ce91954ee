package pgpool

import (
	"bufio"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// Commands builds every command line the procedures run on the nodes. It
// is pure: the same settings give the same argv, which tests compare.
type Commands struct {
	Flavor flavor.Flavor
	// BinDir holds the flavor's binaries on the nodes.
	BinDir string
	IP     string // /sbin/ip
	Arping string // iputils arping
	// DBPrefix runs the control binary as the database's OS user
	// (runuser -u kingbase --) when commands run as root.
	DBPrefix []string
	// NetPrefix gives ip and arping their privileges (sudo -n) when
	// commands do not run as root.
	NetPrefix []string
}

// Privileges derives the prefixes from the account commands run as on the
// nodes (the SSH user), the database's OS user and commands.network_privilege
// (auto, sudo or none). The database refuses to run as root, and adding an
// address needs CAP_NET_ADMIN: one account has to borrow the other's rights.
func Privileges(runAs, osUser, networkPrivilege string) (db, net []string) {
	if runAs == "root" && osUser != "" && osUser != "root" {
		db = []string{"runuser", "-u", osUser, "--"}
	}
	switch networkPrivilege {
	case "sudo":
		net = []string{"sudo", "-n"}
	case "none":
	default:
		if runAs != "root" {
			net = []string{"sudo", "-n"}
		}
	}
	return db, net
}

func (c Commands) ctl(dataDir string, args ...string) []string {
	argv := append([]string(nil), c.DBPrefix...)
	argv = append(argv, filepath.Join(c.BinDir, c.Flavor.ControlBinary), "-D", dataDir)
	return append(argv, args...)
}

func (c Commands) net(prog string, args ...string) []string {
	argv := append([]string(nil), c.NetPrefix...)
	argv = append(argv, prog)
	return append(argv, args...)
}

// seconds renders a wait for pg_ctl's -t (whole seconds, at least 1).
func seconds(d time.Duration) string {
	return strconv.Itoa(max(int(d.Round(time.Second)/time.Second), 1))
}

// CtlStop stops the server on dataDir (mode immediate or fast) and waits.
func (c Commands) CtlStop(dataDir, mode string, wait time.Duration) []string {
	return c.ctl(dataDir, "stop", "-m", mode, "-w", "-t", seconds(wait))
}

// CtlStatus asks whether a server runs on dataDir: exit 0 running, 3 not
// running, 4 no accessible data directory.
func (c Commands) CtlStatus(dataDir string) []string { return c.ctl(dataDir, "status") }

// CtlPromote promotes the standby on dataDir and waits until it has left
// recovery.
func (c Commands) CtlPromote(dataDir string, wait time.Duration) []string {
	return c.ctl(dataDir, "promote", "-w", "-t", seconds(wait))
}

// Exit statuses of the control binary's status command.
const (
	ctlRunning    = 0
	ctlNotRunning = 3
)

// AddrShow lists the IPv4 addresses of iface, one per line.
func (c Commands) AddrShow(iface string) []string {
	return c.net(c.IP, "-o", "-4", "addr", "show", "dev", iface)
}

// AddrAdd adds the VIP with the seed's label (ip addr add ... label IF:N).
func (c Commands) AddrAdd(vip netip.Prefix, iface, label string) []string {
	argv := []string{"addr", "add", vip.String(), "dev", iface}
	if label != "" {
		argv = append(argv, "label", label)
	}
	return c.net(c.IP, argv...)
}

// AddrDel removes the VIP.
func (c Commands) AddrDel(vip netip.Prefix, iface string) []string {
	return c.net(c.IP, "addr", "del", vip.String(), "dev", iface)
}

// DuplicateCheck asks the segment whether any host answers for addr
// (arping -D: exit 0 when no one does, 1 when someone does).
func (c Commands) DuplicateCheck(addr netip.Addr, iface string) []string {
	return c.net(c.Arping, "-D", "-c", "2", "-w", "3", "-I", iface, addr.String())
}

// Announce sends count gratuitous ARPs for addr, in the seed's argument
// order (arping -U VIP -I IF), so that neighbours update their caches.
func (c Commands) Announce(addr netip.Addr, iface string, count int) []string {
	return c.net(c.Arping, "-U", addr.String(), "-I", iface, "-c", strconv.Itoa(count), "-w", strconv.Itoa(count+1))
}

// ClientSQL is the client binary (psql, ksql) running one statement: what
// an operator runs by hand to do what the adapter does. Only dry runs print
// it; the password is never part of it (the client reads .pgpass).
func (c Commands) ClientSQL(host string, port int, user, dbname, stmt string) []string {
	conn := fmt.Sprintf("host=%s port=%d user=%s dbname=%s connect_timeout=10", host, port, user, dbname)
	return []string{filepath.Join(c.BinDir, c.Flavor.ClientBinary), conn, "-c", c.Flavor.SQL(stmt)}
}

// Statements the procedure has the adapter run, with {{pg_name}}
// placeholders; dry runs show them renamed for the flavor.
const (
	sqlPromote    = "select {{pg_promote}}(true, %d)"
	sqlProbe      = "insert into vigil.heartbeat ... returning {{pg_current_wal_lsn}}()"
	sqlAsync      = "ALTER SYSTEM SET synchronous_standby_names = ''; select {{pg_reload_conf}}()"
	sqlCheckpoint = "CHECKPOINT"
	sqlState      = "select {{pg_is_in_recovery}}(), {{pg_last_wal_receive_lsn}}(), {{pg_last_wal_replay_lsn}}()"
)

// HasAddress reads `ip -o -4 addr show` output and reports whether addr is
// among the addresses.
func HasAddress(out string, addr netip.Addr) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" {
				continue
			}
			if p, err := netip.ParsePrefix(f[i+1]); err == nil && p.Addr() == addr {
				return true
			}
			if a, err := netip.ParseAddr(f[i+1]); err == nil && a == addr {
				return true
			}
		}
	}
	return false
}
