package pgpool

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/host"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/vip"
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

// Ctl is the control binary on dataDir, run as the database's OS user.
func (c Commands) Ctl(dataDir string) pgctl.Ctl {
	return pgctl.Ctl{Flavor: c.Flavor, BinDir: c.BinDir, DataDir: dataDir, Prefix: c.DBPrefix}
}

// VIP is the address work for v on the node that h reaches.
func (c Commands) VIP(v VIP, h host.Host) vip.Remote {
	return vip.Remote{Host: h, Address: v.Prefix, Interface: v.Interface, Label: v.Label, IP: c.IP, Arping: c.Arping, Prefix: c.NetPrefix}
}

// CtlStop stops the server on dataDir (mode immediate or fast) and waits.
func (c Commands) CtlStop(dataDir, mode string, wait time.Duration) []string {
	return c.Ctl(dataDir).StopArgv(pgctl.StopMode(mode), wait)
}

// CtlStatus asks whether a server runs on dataDir: exit 0 running, 3 not
// running, 4 no accessible data directory.
func (c Commands) CtlStatus(dataDir string) []string { return c.Ctl(dataDir).StatusArgv() }

// CtlPromote promotes the standby on dataDir and waits until it has left
// recovery.
func (c Commands) CtlPromote(dataDir string, wait time.Duration) []string {
	return c.Ctl(dataDir).PromoteArgv(wait)
}

// AddrAdd adds the VIP with the seed's label (ip addr add ... label IF:N).
func (c Commands) AddrAdd(prefix netip.Prefix, iface, label string) []string {
	return c.VIP(VIP{Prefix: prefix, Interface: iface, Label: label}, nil).AddArgv()
}

// AddrDel removes the VIP.
func (c Commands) AddrDel(prefix netip.Prefix, iface string) []string {
	return c.VIP(VIP{Prefix: prefix, Interface: iface}, nil).DelArgv()
}

// DuplicateCheck asks the segment whether any host answers for addr
// (arping -D: exit 0 when no one does, 1 when someone does).
func (c Commands) DuplicateCheck(addr netip.Addr, iface string) []string {
	return c.VIP(VIP{Prefix: netip.PrefixFrom(addr, addr.BitLen()), Interface: iface}, nil).DuplicateCheckArgv()
}

// Announce sends count gratuitous ARPs for addr, in the seed's argument
// order (arping -U VIP -I IF), so that neighbours update their caches.
func (c Commands) Announce(addr netip.Addr, iface string, count int) []string {
	return c.VIP(VIP{Prefix: netip.PrefixFrom(addr, addr.BitLen()), Interface: iface}, nil).AnnounceArgv(count)
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
