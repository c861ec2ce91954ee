package pgpool

import (
	"fmt"
	"strconv"
	"strings"
)

// Args are the values Pgpool-II substitutes into failover_command and
// follow_primary_command. Node ids are -1 when Pgpool-II has none (it
// passes -1 for "no new main node"), ports 0 and strings empty when it
// passes nothing.
type Args struct {
	FailedID       int    // %d: the detached node (follow: the standby to re-point)
	FailedHost     string // %h
	FailedPort     int    // %p
	FailedDataDir  string // %D
	NewMainID      int    // %m: the node to promote (follow: the new primary)
	NewMainHost    string // %H
	OldMainID      int    // %M
	OldPrimaryID   int    // %P
	NewMainPort    int    // %r
	NewMainData    string // %R
	OldPrimaryHost string // %N (Pgpool-II 4.1 and later)
	OldPrimaryPort int    // %S (Pgpool-II 4.1 and later)
}

// Placeholder is one of Pgpool-II's special characters.
type Placeholder struct {
	Char string // "%d"
	Flag string // the named flag, "failed-node-id"
	Help string
	int  func(*Args) *int
	str  func(*Args) *string
}

// Placeholders returns Pgpool-II's special characters in the order its
// documentation (and its sample failover.sh) lists them: the order the
// positional form takes them in.
func Placeholders() []Placeholder {
	return []Placeholder{
		{Char: "%d", Flag: "failed-node-id", Help: "id of the detached node", int: func(a *Args) *int { return &a.FailedID }},
		{Char: "%h", Flag: "failed-host", Help: "host of the detached node", str: func(a *Args) *string { return &a.FailedHost }},
		{Char: "%p", Flag: "failed-port", Help: "port of the detached node", int: func(a *Args) *int { return &a.FailedPort }},
		{Char: "%D", Flag: "failed-data-dir", Help: "data directory of the detached node", str: func(a *Args) *string { return &a.FailedDataDir }},
		{Char: "%m", Flag: "new-main-id", Help: "id of the new main node (-1: none)", int: func(a *Args) *int { return &a.NewMainID }},
		{Char: "%H", Flag: "new-main-host", Help: "host of the new main node", str: func(a *Args) *string { return &a.NewMainHost }},
		{Char: "%M", Flag: "old-main-id", Help: "id of the old main node", int: func(a *Args) *int { return &a.OldMainID }},
		{Char: "%P", Flag: "old-primary-id", Help: "id of the old primary node", int: func(a *Args) *int { return &a.OldPrimaryID }},
		{Char: "%r", Flag: "new-main-port", Help: "port of the new main node", int: func(a *Args) *int { return &a.NewMainPort }},
		{Char: "%R", Flag: "new-main-data-dir", Help: "data directory of the new main node", str: func(a *Args) *string { return &a.NewMainData }},
		{Char: "%N", Flag: "old-primary-host", Help: "host of the old primary node (Pgpool-II 4.1+)", str: func(a *Args) *string { return &a.OldPrimaryHost }},
		{Char: "%S", Flag: "old-primary-port", Help: "port of the old primary node (Pgpool-II 4.1+)", int: func(a *Args) *int { return &a.OldPrimaryPort }},
	}
}

// NewArgs returns Args with every id unknown.
func NewArgs() Args {
	return Args{FailedID: -1, NewMainID: -1, OldMainID: -1, OldPrimaryID: -1}
}

// Set stores one placeholder's value, as Pgpool-II substituted it.
func (a *Args) Set(p Placeholder, value string) error {
	value = strings.TrimSpace(value)
	if p.str != nil {
		*p.str(a) = value
		return nil
	}
	n := -1
	if value != "" {
		v, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("%s (--%s) = %q: want a number", p.Char, p.Flag, value)
		}
		n = v
	}
	if strings.HasSuffix(p.Flag, "-port") {
		if n == -1 {
			n = 0
		}
		if n < 0 || n > 65535 {
			return fmt.Errorf("%s (--%s) = %d: not a port", p.Char, p.Flag, n)
		}
	} else if n < -1 {
		return fmt.Errorf("%s (--%s) = %d: not a node id", p.Char, p.Flag, n)
	}
	*p.int(a) = n
	return nil
}

// Get renders one placeholder's value as Pgpool-II would have passed it.
func (a Args) Get(p Placeholder) string {
	if p.str != nil {
		return *p.str(&a)
	}
	v := *p.int(&a)
	if strings.HasSuffix(p.Flag, "-port") {
		return portText(v)
	}
	return strconv.Itoa(v)
}

func portText(p int) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(p)
}

// ParsePositional reads the placeholders in documented order. Pgpool-II
// before 4.1 has no %N and %S, so 10 values are accepted as well as 12. Any
// other count is refused: an unquoted placeholder that Pgpool-II replaced
// with nothing (%H when there is no new main node) shifts every later value,
// and guessing would fence or promote the wrong node.
func ParsePositional(values []string) (Args, error) {
	a := NewArgs()
	ps := Placeholders()
	if len(values) != len(ps) && len(values) != len(ps)-2 {
		return a, fmt.Errorf("got %d placeholder values, want %d (%%d %%h %%p %%D %%m %%H %%M %%P %%r %%R %%N %%S) or 10 (without %%N %%S): "+
			"quote each placeholder in pgpool.conf (\"%%H\") so that an empty one still counts, or use the named flags (--new-main-host=%%H)", len(values), len(ps))
	}
	for i, v := range values {
		if err := a.Set(ps[i], v); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Stats is the seed's "failover-stats" line: every placeholder with its
// meaning and value. `vigil analyze` reads it.
func (a Args) Stats() string {
	return fmt.Sprintf("----failover-stats is %%H = hostname of the new master node [%s], %%P = old primary node id [%d], %%d = node id[%d], %%h = host name [%s], "+
		"%%m = new master node id [%d], %%M = old master node id [%d], %%D = database cluster path [%s], %%p = port [%s], %%r = new master port [%s], "+
		"%%R = new master database cluster path [%s], %%N = old primary host [%s], %%S = old primary port [%s].",
		a.NewMainHost, a.OldPrimaryID, a.FailedID, a.FailedHost, a.NewMainID, a.OldMainID, a.FailedDataDir,
		portText(a.FailedPort), portText(a.NewMainPort), a.NewMainData, a.OldPrimaryHost, portText(a.OldPrimaryPort))
}
