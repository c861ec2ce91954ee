package pgctl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
	"github.com/vigil-ha/vigil/internal/host"
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

// answers is a host whose control binary answers from a table keyed by
// its subcommand; it records what ran.
type answers struct {
	by  map[string]host.Result
	ran []string
}

func (a *answers) Run(_ context.Context, argv []string) (host.Result, error) {
	a.ran = append(a.ran, strings.Join(argv, " "))
	for _, word := range argv {
		if res, ok := a.by[word]; ok {
			return res, nil
		}
	}
	return host.Result{}, errors.New("no answer")
}

func TestCommandLines(t *testing.T) {
	c := Ctl{Flavor: flavor.MustLookup(flavor.Kingbase), BinDir: "/opt/kb/bin", DataDir: "/data/kb", Prefix: []string{"runuser", "-u", "kingbase", "--"}}
	for _, tt := range []struct {
		got  []string
		want string
	}{
		{c.StatusArgv(), "runuser -u kingbase -- /opt/kb/bin/sys_ctl -D /data/kb status"},
		{c.StopArgv(Immediate, 29*time.Second), "runuser -u kingbase -- /opt/kb/bin/sys_ctl -D /data/kb stop -m immediate -w -t 29"},
		{c.PromoteArgv(time.Minute), "runuser -u kingbase -- /opt/kb/bin/sys_ctl -D /data/kb promote -w -t 60"},
		{c.PromoteArgv(0), "runuser -u kingbase -- /opt/kb/bin/sys_ctl -D /data/kb promote"},
	} {
		if got := strings.Join(tt.got, " "); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

// TestExitCodesDecide: pg_ctl status's documented exit codes decide,
// whatever the output says (it is translated on hosts with another
// locale).
func TestExitCodesDecide(t *testing.T) {
	pg := flavor.MustLookup(flavor.Postgres)
	for _, tt := range []struct {
		name        string
		by          map[string]host.Result
		running     bool
		pid         int
		statusErr   string
		already     bool
		said        string
		stopErr     string
		stopCommand bool
	}{
		{name: "running",
			by:      map[string]host.Result{"status": {Output: []byte("pg_ctl: server is running (PID: 4242)\n")}, "stop": {Output: []byte("waiting for server to shut down.... done\nserver stopped\n")}},
			running: true, pid: 4242, said: "server stopped"},
		{name: "not running, message translated",
			by:      map[string]host.Result{"status": {Output: []byte("pg_ctl: 没有服务器在运行\n"), ExitCode: 3}, "stop": {Output: []byte("pg_ctl: PID 文件不存在\n服务器是否在运行?\n"), ExitCode: 1}},
			already: true, said: "pg_ctl: PID 文件不存在"},
		{name: "no data directory, whatever the stop said",
			by:        map[string]host.Result{"status": {Output: []byte("pg_ctl: directory \"/d\" does not exist\n"), ExitCode: 4}, "stop": {Output: []byte("Is server running?\n"), ExitCode: 1}},
			statusErr: "no accessible data directory", stopErr: "Is server running?"},
		{name: "a stop that fails on a running server",
			by:      map[string]host.Result{"status": {Output: []byte("pg_ctl: server is running (PID: 7)\n")}, "stop": {Output: []byte("pg_ctl: server does not shut down\n"), ExitCode: 1}},
			running: true, pid: 7, stopErr: "server does not shut down"},
		{name: "status cannot run",
			by:        map[string]host.Result{"stop": {ExitCode: 1}},
			statusErr: "no answer", stopErr: "exit status 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &answers{by: tt.by}
			c := Ctl{Flavor: pg, BinDir: "/bin", DataDir: "/d", Host: h}
			running, pid, err := c.Status(context.Background())
			if running != tt.running || pid != tt.pid || !errorSays(err, tt.statusErr) {
				t.Errorf("status = %v, %d, %v; want %v, %d, %q", running, pid, err, tt.running, tt.pid, tt.statusErr)
			}
			st, err := c.StopOutcome(context.Background(), Fast, time.Minute)
			if st.Already != tt.already || st.Said != tt.said || !errorSays(err, tt.stopErr) {
				t.Errorf("stop = %+v, %v; want already %v, said %q, err %q", st, err, tt.already, tt.said, tt.stopErr)
			}
			if h.ran[1] != "/bin/pg_ctl -D /d stop -m fast -w -t 60" {
				t.Errorf("stop ran %q", h.ran[1])
			}
		})
	}
}

func errorSays(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}

func TestInitDBArgv(t *testing.T) {
	f, err := flavor.Lookup("kingbase")
	if err != nil {
		t.Fatal(err)
	}
	c := Ctl{Flavor: f, BinDir: "/opt/kb/bin", DataDir: "/data", Prefix: []string{"runuser", "-u", "kingbase", "--"}}
	got := strings.Join(c.InitDBArgv(InitDBOptions{Superuser: "system", DataChecksums: true, Encoding: "UTF8", Extra: []string{"--wal-segsize=32"}}, "/run/pw"), " ")
	want := "runuser -u kingbase -- /opt/kb/bin/" + f.InitDBBinary + " -D /data -U system --pwfile=/run/pw --auth-local=peer --auth-host=scram-sha-256 --data-checksums --encoding=UTF8 --wal-segsize=32"
	if got != want {
		t.Fatalf("argv\n got %s\nwant %s", got, want)
	}
}
