package pgparam

import (
	"strings"
	"testing"
)

func testCatalog() Catalog {
	return Catalog{
		"work_mem":                     {Name: "work_mem", Vartype: "integer", Unit: "kB", Min: "64", Max: "2147483647", Context: "user"},
		"shared_buffers":               {Name: "shared_buffers", Vartype: "integer", Unit: "8kB", Min: "16", Max: "1073741823", Context: "postmaster"},
		"statement_timeout":            {Name: "statement_timeout", Vartype: "integer", Unit: "ms", Min: "0", Max: "2147483647", Context: "user"},
		"checkpoint_completion_target": {Name: "checkpoint_completion_target", Vartype: "real", Min: "0", Max: "1", Context: "sighup"},
		"log_connections":              {Name: "log_connections", Vartype: "bool", Context: "superuser-backend"},
		"wal_level":                    {Name: "wal_level", Vartype: "enum", EnumVals: []string{"minimal", "replica", "logical"}, Context: "postmaster"},
		"application_name":             {Name: "application_name", Vartype: "string", Context: "user"},
		"block_size":                   {Name: "block_size", Vartype: "integer", Min: "8192", Max: "8192", Context: "internal"},
		"synchronous_standby_names":    {Name: "synchronous_standby_names", Vartype: "string", Context: "sighup"},
	}
}

func TestCatalogCheck(t *testing.T) {
	c := testCatalog()
	for _, tc := range []struct {
		name, value string
		// refused is a fragment of the reason, "" when the value is valid.
		refused string
	}{
		{"work_mem", "8MB", ""},
		{"work_mem", "8192", ""},
		{"work_mem", "32kB", "outside its range"},
		{"work_mem", "lots", "is not one"},
		{"work_mem", "8ms", "not valid here"},
		{"shared_buffers", "128MB", ""},
		{"shared_buffers", "4kB", "not whole"},
		{"statement_timeout", "5s", ""},
		{"statement_timeout", "1min", ""},
		{"statement_timeout", "-1", "outside its range"},
		{"checkpoint_completion_target", "0.9", ""},
		{"checkpoint_completion_target", "1.5", "outside its range"},
		{"log_connections", "on", ""},
		{"log_connections", "YES", ""},
		{"log_connections", "o", "is a boolean"},
		{"log_connections", "maybe", "is a boolean"},
		{"wal_level", "Logical", ""},
		{"wal_level", "archive", "not one of minimal, replica, logical"},
		{"application_name", "anything at all", ""},
		{"block_size", "8192", "cannot be set"},
		{"synchronous_standby_names", "a", "set by Vigil's agents"},

		{"no_such_thing", "1", "not a parameter of this server"},
	} {
		err := c.Check(tc.name, tc.value)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s = %q refused: %v", tc.name, tc.value, err)
		case tc.refused != "" && err == nil:
			t.Errorf("%s = %q accepted, want refused with %q", tc.name, tc.value, tc.refused)
		case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
			t.Errorf("%s = %q refused with %q, want %q in it", tc.name, tc.value, err, tc.refused)
		}
	}
}

func TestNeedsRestart(t *testing.T) {
	c := testCatalog()
	if !c["shared_buffers"].NeedsRestart() || c["work_mem"].NeedsRestart() {
		t.Fatal("only a postmaster parameter needs a restart")
	}
}
