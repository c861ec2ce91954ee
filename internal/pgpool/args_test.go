package pgpool

import (
	"strings"
	"testing"
)

func TestParsePositional(t *testing.T) {
	a, err := ParsePositional([]string{"0", "192.168.1.201", "54321", "/home/kingbase/data", "1", "192.168.1.202", "0", "0", "54321", "/home/kingbase/data", "192.168.1.201", "54321"})
	if err != nil {
		t.Fatal(err)
	}
	want := Args{FailedID: 0, FailedHost: "192.168.1.201", FailedPort: 54321, FailedDataDir: "/home/kingbase/data", NewMainID: 1, NewMainHost: "192.168.1.202",
		OldMainID: 0, OldPrimaryID: 0, NewMainPort: 54321, NewMainData: "/home/kingbase/data", OldPrimaryHost: "192.168.1.201", OldPrimaryPort: 54321}
	if a != want {
		t.Errorf("ParsePositional = %+v, want %+v", a, want)
	}
	// Pgpool-II before 4.1: ten values.
	old, err := ParsePositional([]string{"0", "h1", "5432", "/d", "1", "h2", "0", "0", "5432", "/d"})
	if err != nil || old.OldPrimaryHost != "" || old.OldPrimaryPort != 0 || old.NewMainHost != "h2" {
		t.Errorf("ten values: %+v, %v", old, err)
	}
	// Quoted empty placeholders: no new main node.
	none, err := ParsePositional([]string{"0", "h1", "5432", "/d", "-1", "", "0", "0", "", "", "h1", "5432"})
	if err != nil || none.NewMainID != -1 || none.NewMainHost != "" || none.NewMainPort != 0 {
		t.Errorf("empty placeholders: %+v, %v", none, err)
	}
}

func TestParsePositionalRefusesShiftedValues(t *testing.T) {
	// An unquoted empty %H disappears in the shell and shifts everything
	// after it: %M would be read as %H. Refused rather than guessed.
	_, err := ParsePositional([]string{"0", "h1", "5432", "/d", "-1", "0", "0", "", "", "h1", "5432"})
	if err == nil || !strings.Contains(err.Error(), "quote each placeholder") {
		t.Errorf("11 values: err = %v, want advice to quote", err)
	}
	for _, bad := range [][]string{
		{"x", "h1", "5432", "/d", "1", "h2", "0", "0", "5432", "/d"},
		{"0", "h1", "99999", "/d", "1", "h2", "0", "0", "5432", "/d"},
		{"0", "h1", "5432", "/d", "-7", "h2", "0", "0", "5432", "/d"},
	} {
		if _, err := ParsePositional(bad); err == nil {
			t.Errorf("ParsePositional(%q) accepted", bad)
		}
	}
}

func TestParseCommandLine(t *testing.T) {
	named := map[string]string{"failed-node-id": "0", "old-primary-id": "0", "new-main-id": "1", "new-main-host": "h2", "failed-host": "h1", "new-main-port": ""}
	a, err := ParseCommandLine(nil, named)
	if err != nil {
		t.Fatal(err)
	}
	if a.FailedID != 0 || a.OldPrimaryID != 0 || a.NewMainID != 1 || a.NewMainHost != "h2" || a.FailedHost != "h1" || a.OldMainID != -1 || a.NewMainPort != 0 {
		t.Errorf("named = %+v", a)
	}
	// Ten positional values and the two 4.1 placeholders by name.
	a, err = ParseCommandLine([]string{"0", "h1", "5432", "/d", "1", "h2", "0", "0", "5432", "/d"}, map[string]string{"old-primary-host": "h1", "old-primary-port": "5432"})
	if err != nil || a.OldPrimaryHost != "h1" || a.OldPrimaryPort != 5432 {
		t.Errorf("mixed: %+v, %v", a, err)
	}
	for name, tc := range map[string]struct {
		pos   []string
		named map[string]string
	}{
		"given twice": {[]string{"0", "h1", "5432", "/d", "1", "h2", "0", "0", "5432", "/d"}, map[string]string{"new-main-host": "h3"}},
		"nothing":     {nil, nil},
		"unknown":     {nil, map[string]string{"new-master": "1"}},
	} {
		if _, err := ParseCommandLine(tc.pos, tc.named); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPositionalRoundTrip(t *testing.T) {
	in := []string{"0", "h1", "", "/d", "-1", "", "0", "0", "", "", "h1", "5432"}
	a, err := ParsePositional(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Positional(); strings.Join(got, "|") != strings.Join(in, "|") {
		t.Errorf("Positional = %q, want %q", got, in)
	}
}
