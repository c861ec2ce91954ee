package pgctl

import (
	"testing"
	"time"
)

func TestParseControlData(t *testing.T) {
	out := `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7441937284749418717
Database cluster state:               shut down in recovery
pg_control last modified:             Wed 25 Nov 2026 06:30:00 AM UTC
Latest checkpoint location:           0/5000060
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
`
	got := parseControlData(out)
	want := ControlData{SystemID: "7441937284749418717", State: "shut down in recovery", Timeline: 2, CheckpointLSN: "0/5000060"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParsePIDAndSeconds(t *testing.T) {
	if pid := parsePID("pg_ctl: server is running (PID: 4242)\n/usr/lib/postgresql/15/bin/postgres \"-D\" \"/x\""); pid != 4242 {
		t.Errorf("pid = %d", pid)
	}
	if pid := parsePID("pg_ctl: no server running"); pid != 0 {
		t.Errorf("pid = %d", pid)
	}
	for d, want := range map[time.Duration]string{0: "1", 400 * time.Millisecond: "1", 1500 * time.Millisecond: "2", time.Minute: "60"} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%s) = %s, want %s", d, got, want)
		}
	}
}
