// Package flavor is the single place that knows how PostgreSQL and KingbaseES
// differ. KingbaseES is a PostgreSQL fork that renamed its binaries, files and
// the "pg_" prefix of its SQL functions and views to "sys_"; everything else in
// Vigil asks a Flavor for a name instead of branching on the product.
package flavor

import (
	"fmt"
	"sort"
	"strings"
)

// Name identifies a database product.
type Name string

// Supported flavors.
const (
	Postgres Name = "postgres"
	Kingbase Name = "kingbase"
)

// Flavor holds every name that differs between products. The values are data,
// not behaviour, so adding a product is adding a row to the table below.
type Flavor struct {
	Name Name
	// Product is the name shown to people, e.g. in error messages.
	Product string

	// Binaries, relative to the configured bin dir.
	ControlBinary    string // pg_ctl
	ServerBinary     string // postgres
	ClientBinary     string // psql
	InitDBBinary     string // initdb
	BaseBackupBinary string // pg_basebackup
	RewindBinary     string // pg_rewind
	ControlDataBin   string // pg_controldata

	// Files inside the data directory.
	ConfigFile     string // postgresql.conf
	AutoConfigFile string // postgresql.auto.conf
	HBAFile        string // pg_hba.conf
	IdentFile      string // pg_ident.conf
	PIDFile        string // postmaster.pid
	StandbySignal  string // standby.signal
	LogDir         string // log

	// SQL naming: every built-in function and view starting with "pg_" is
	// renamed with this prefix.
	SQLPrefix string

	DefaultPort      int
	DefaultSuperuser string
	DefaultDatabase  string
}

var table = map[Name]Flavor{
	Postgres: {
		Name:             Postgres,
		Product:          "PostgreSQL",
		ControlBinary:    "pg_ctl",
		ServerBinary:     "postgres",
		ClientBinary:     "psql",
		InitDBBinary:     "initdb",
		BaseBackupBinary: "pg_basebackup",
		RewindBinary:     "pg_rewind",
		ControlDataBin:   "pg_controldata",
		ConfigFile:       "postgresql.conf",
		AutoConfigFile:   "postgresql.auto.conf",
		HBAFile:          "pg_hba.conf",
		IdentFile:        "pg_ident.conf",
		PIDFile:          "postmaster.pid",
		StandbySignal:    "standby.signal",
		LogDir:           "log",
		SQLPrefix:        "pg_",
		DefaultPort:      5432,
		DefaultSuperuser: "postgres",
		DefaultDatabase:  "postgres",
	},
	Kingbase: {
		Name:             Kingbase,
		Product:          "KingbaseES",
		ControlBinary:    "sys_ctl",
		ServerBinary:     "kingbase",
		ClientBinary:     "ksql",
		InitDBBinary:     "initdb",
		BaseBackupBinary: "sys_basebackup",
		RewindBinary:     "sys_rewind",
		ControlDataBin:   "sys_controldata",
		ConfigFile:       "kingbase.conf",
		AutoConfigFile:   "kingbase.auto.conf",
		HBAFile:          "sys_hba.conf",
		IdentFile:        "sys_ident.conf",
		PIDFile:          "kingbase.pid",
		StandbySignal:    "standby.signal",
		LogDir:           "sys_log",
		SQLPrefix:        "sys_",
		DefaultPort:      54321,
		DefaultSuperuser: "system",
		DefaultDatabase:  "test",
	},
}

// Lookup returns the flavor called name.
func Lookup(name string) (Flavor, error) {
	f, ok := table[Name(name)]
	if !ok {
		return Flavor{}, fmt.Errorf("unknown flavor %q: use one of %s", name, strings.Join(Names(), ", "))
	}
	return f, nil
}

// MustLookup is Lookup for names known at compile time (the constants above).
func MustLookup(name Name) Flavor {
	f, err := Lookup(string(name))
	if err != nil {
		panic(err)
	}
	return f
}

// Names lists the supported flavor names, sorted.
func Names() []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, string(n))
	}
	sort.Strings(names)
	return names
}

// Ident renames a PostgreSQL catalog identifier ("pg_is_in_recovery",
// "pg_stat_replication") for this flavor. Identifiers without the "pg_"
// prefix are returned unchanged.
func (f Flavor) Ident(pgName string) string {
	if rest, ok := strings.CutPrefix(pgName, "pg_"); ok {
		return f.SQLPrefix + rest
	}
	return pgName
}

// SQL rewrites a statement written for PostgreSQL into this flavor's names.
// Placeholders of the form {{pg_name}} are replaced with Ident(pg_name); the
// braces make the renaming explicit, so no accidental substring is touched.
func (f Flavor) SQL(stmt string) string {
	return f.SQLRenamed(stmt, func(name string) string { return name })
}

// SQLRenamed is SQL with every placeholder's name first passed through
// rename: for names that differ between server versions, not flavors.
func (f Flavor) SQLRenamed(stmt string, rename func(string) string) string {
	var b strings.Builder
	for {
		start := strings.Index(stmt, "{{")
		if start < 0 {
			b.WriteString(stmt)
			return b.String()
		}
		end := strings.Index(stmt[start:], "}}")
		if end < 0 {
			b.WriteString(stmt)
			return b.String()
		}
		b.WriteString(stmt[:start])
		b.WriteString(f.Ident(rename(stmt[start+2 : start+end])))
		stmt = stmt[start+end+2:]
	}
}
