package pgpool

import (
	"fmt"

	"github.com/vigil-ha/vigil/internal/remote"
)

// Describe renders a plan as the commands it would run, one line per
// command: the dry run's output, and a migration aid, since each line is
// what an operator would type by hand. SQL that the adapter sends is shown
// as the flavor's client (psql, ksql) running it; no password appears.
func Describe(p Plan, o Options) []string {
	c := o.Commands
	sql := func(t Target, stmt string) string {
		return remote.Command(c.ClientSQL(t.Host, t.Port, o.SQLUser, o.SQLDatabase, stmt)...)
	}
	on := func(host string, argv []string) string {
		return fmt.Sprintf("on %s: %s", host, remote.Command(argv...))
	}
	var out []string
	add := func(act Action, format string, args ...any) {
		out = append(out, fmt.Sprintf("%-24s %s", act, fmt.Sprintf(format, args...)))
	}
	for _, act := range p.Actions() {
		switch act {
		case ActFence:
			add(act, "%s", on(p.Old.Host, c.CtlStop(p.Old.DataDir, o.StopMode, o.stopWait())))
			add(act, "%s (exit 3: stopped)", on(p.Old.Host, c.CtlStatus(p.Old.DataDir)))
			if v := o.VIP; v != nil {
				add(act, "%s", on(p.Old.Host, c.AddrDel(v.Prefix, v.Interface)))
			}
		case ActPromote:
			switch p.PromoteVia {
			case ViaSQL:
				add(act, "%s", sql(p.New, fmt.Sprintf(sqlPromote, seconds64(o.PromoteTimeout))))
			case ViaSSH:
				add(act, "%s", on(p.New.Host, c.CtlPromote(p.New.DataDir, o.PromoteTimeout)))
			default:
				add(act, "none: %s is out of recovery already", p.New.Host)
			}
		case ActGate:
			add(act, "%s (until a write commits, at most %s; while refused: %s)", sql(p.New, sqlProbe), o.ReadinessTimeout, sql(p.New, sqlState))
		case ActSync:
			add(act, "%s (only when no synchronous standby is left)", sql(p.New, sqlAsync))
		case ActCheckpoint:
			add(act, "%s", sql(p.New, sqlCheckpoint))
		case ActVIP:
			v := o.VIP
			add(act, "%s (exit 0: no other host answers)", on(p.New.Host, c.DuplicateCheck(v.Prefix.Addr(), v.Interface)))
			add(act, "%s", on(p.New.Host, c.AddrAdd(v.Prefix, v.Interface, v.Label)))
			if v.ARPCount > 0 {
				add(act, "%s", on(p.New.Host, c.Announce(v.Prefix.Addr(), v.Interface, v.ARPCount)))
			}
			via := p.New
			via.Host = v.Prefix.Addr().String()
			add(act, "%s (through the VIP)", sql(via, sqlProbe))
		}
	}
	return out
}

// Positional renders the placeholders as the positional form takes them.
func (a Args) Positional() []string {
	vals := make([]string, 0, len(Placeholders()))
	for _, p := range Placeholders() {
		vals = append(vals, a.Get(p))
	}
	return vals
}
