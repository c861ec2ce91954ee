package database_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/database"
	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/pgctl"
	"github.com/vigil-ha/vigil/internal/wal"
)

// The verdicts a rejoin rests on (package rejoin runs it, against real
// servers in its tests): pg_rewind's output, timeline histories,
// divergence, the node's own files.

func TestRejoinParsesRewindOutput(t *testing.T) {
	// pg_rewind 15 --progress, as captured; progress lines end in \r.
	rewound := "pg_rewind: connected to server\n" +
		"pg_rewind: servers diverged at WAL location 0/30224F8 on timeline 1\n" +
		"pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1\n" +
		"pg_rewind: reading source file list\npg_rewind: reading target file list\npg_rewind: reading WAL in target\n" +
		"pg_rewind: need to copy 51 MB (total source directory size is 70 MB)\n" +
		"    0/53116 kB (0%) copied\r53116/53116 kB (100%) copied\n" +
		"pg_rewind: creating backup label and updating control file\npg_rewind: syncing target data directory\npg_rewind: Done!\n"
	r := database.ParseRewindOutput(rewound)
	want := database.RewindReport{Required: true, DivergedAt: 0x30224F8, DivergedTimeline: 1, CommonCheckpoint: 0x2000060, CopiedKB: 53116,
		Summary: "diverged at 0/30224F8 on timeline 1; rewound to the common checkpoint 0/2000060; copied 53116 kB"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("rewound:\n got %+v\nwant %+v", r, want)
	}

	none := database.ParseRewindOutput("pg_rewind: connected to server\npg_rewind: source and target cluster are on the same timeline\npg_rewind: no rewind required\n")
	if none.Required || none.Summary != "no rewind required" {
		t.Errorf("no rewind: %+v", none)
	}

	failed := database.ParseRewindOutput("pg_rewind: connected to server\n" +
		"pg_rewind: servers diverged at WAL location 0/30224F8 on timeline 1\n" +
		"pg_rewind: error: could not open file \"/x/pg_wal/000000010000000000000003\": No such file or directory\n" +
		"sys_rewind: error: could not find previous WAL record at 0/30224F8\n")
	if len(failed.Errors) != 2 || !strings.HasPrefix(failed.Errors[1], "could not find previous WAL record") {
		t.Errorf("failed: errors %q", failed.Errors)
	}
	if failed.Required || failed.DivergedAt != 0x30224F8 || !strings.Contains(failed.Summary, "error: could not open file") ||
		!strings.Contains(failed.Summary, "error: could not find previous WAL record") {
		t.Errorf("failed: %+v", failed)
	}
}

func TestRejoinParsesTimelineHistory(t *testing.T) {
	got, err := database.ParseTimelineHistory("1\t0/30224F8\tno recovery target specified\n\n2\t0/5000000\tbefore 2026-01-01\n")
	want := []database.TimelineSwitch{{Timeline: 1, SwitchPoint: 0x30224F8}, {Timeline: 2, SwitchPoint: 0x5000000}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"1\n", "x\t0/1\n", "1\tnot-an-lsn\n"} {
		if _, err := database.ParseTimelineHistory(bad); err == nil {
			t.Errorf("ParseTimelineHistory(%q) succeeded", bad)
		}
	}
}

func TestRejoinAssessesDivergence(t *testing.T) {
	history := []database.TimelineSwitch{{Timeline: 1, SwitchPoint: 0x30224F8}}
	cd := func(state string, tli uint32, cp string) pgctl.ControlData {
		return pgctl.ControlData{State: state, Timeline: tli, CheckpointLSN: cp}
	}
	cases := []struct {
		name    string
		cd      pgctl.ControlData
		upTLI   uint32
		upLSN   wal.LSN
		history []database.TimelineSwitch
		want    database.DivergenceVerdict
	}{
		// A clean shutdown streamed to the standby before it was promoted:
		// the new timeline starts just after the shutdown checkpoint.
		{"clean stop before the failover", cd("shut down", 1, "0/3022470"), 2, 0x4000000, history, database.NotDiverged},
		{"wrote after the failover", cd("shut down", 1, "0/5000050"), 2, 0x4000000, history, database.Diverged},
		{"checkpoint exactly at the switch", cd("shut down", 1, "0/30224F8"), 2, 0x4000000, history, database.Diverged},
		{"crashed, last checkpoint before the switch", cd("in production", 1, "0/2000060"), 2, 0x4000000, history, database.Unknown},
		{"crashed, checkpoint after the switch", cd("in production", 1, "0/5000050"), 2, 0x4000000, history, database.Diverged},
		{"standby stopped before the switch", cd("shut down in recovery", 1, "0/2000060"), 2, 0x4000000, history, database.Unknown},
		{"timeline not in the history", cd("shut down", 3, "0/2000060"), 4, 0x9000000, []database.TimelineSwitch{{Timeline: 1, SwitchPoint: 0x1000000}, {Timeline: 2, SwitchPoint: 0x2000000}}, database.Diverged},
		{"newer timeline than the upstream", cd("shut down", 3, "0/2000060"), 2, 0x9000000, history, database.Diverged},
		{"same timeline, behind", cd("shut down", 2, "0/2000060"), 2, 0x9000000, nil, database.NotDiverged},
		{"same timeline, ahead", cd("shut down", 2, "0/A000060"), 2, 0x9000000, nil, database.Diverged},
		{"same timeline, crashed", cd("in production", 2, "0/2000060"), 2, 0x9000000, nil, database.Unknown},
		{"no control data", cd("", 0, ""), 2, 0x9000000, history, database.Unknown},
	}
	for _, c := range cases {
		d := database.AssessDivergence(c.cd, c.upTLI, c.upLSN, c.history)
		if d.Verdict != c.want || d.Reason == "" {
			t.Errorf("%s: %s (%s), want %s", c.name, d.Verdict, d.Reason, c.want)
		}
	}
	if d := database.AssessDivergence(cd("shut down", 1, "0/5000050"), 2, 0x4000000, history); d.SwitchPoint != 0x30224F8 || d.TargetCheckpoint != 0x5000050 {
		t.Errorf("switch point %s, checkpoint %s", d.SwitchPoint, d.TargetCheckpoint)
	}
}

func TestRejoinNodeLocalFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("postgresql.conf", strings.Join([]string{
		"port = 5432",
		"# include 'commented.conf'",
		"include 'vigil-lab.conf'   # the lab's settings",
		"include_if_exists = 'missing.conf'",
		"INCLUDE_DIR 'conf.d'",
		"include '" + filepath.Join(dir, "absolute.conf") + "'",
		"include '/etc/outside.conf'",
		"include '../escape.conf'",
		"include 'it''s.conf'",
	}, "\n"))
	write("vigil-lab.conf", "include 'nested/more.conf'\n")
	write("nested/more.conf", "include 'deeper.conf'\n") // relative to nested/
	write("nested/deeper.conf", "work_mem = '4MB'\n")
	write("conf.d/a.conf", "")
	write("conf.d/.hidden.conf", "")
	write("conf.d/notes.txt", "")
	write("absolute.conf", "")
	write("it's.conf", "")
	write("commented.conf", "")
	write("pg_hba.conf", "")
	write("pg_ident.conf", "")
	write("postgresql.auto.conf", "")

	got, err := database.NodeLocalFiles(flavor.MustLookup(flavor.Postgres), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf",
		"vigil-lab.conf", "nested/more.conf", "nested/deeper.conf", "conf.d/a.conf", "absolute.conf", "it's.conf"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("NodeLocalFiles:\n got %q\nwant %q", got, want)
	}

	write("postgresql.conf", "include 'loop.conf'\n")
	write("loop.conf", "include 'postgresql.conf'\n")
	if got, err := database.NodeLocalFiles(flavor.MustLookup(flavor.Postgres), dir); err != nil || !slices.Contains(got, "loop.conf") {
		t.Errorf("an include loop: %q, %v; want it followed once", got, err)
	}
}
