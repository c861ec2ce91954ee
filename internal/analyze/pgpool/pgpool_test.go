package pgpool

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

const log = `2023-09-19 15:11:55: pid 12345: LOG:  failed to connect to PostgreSQL server on "192.168.1.201:54321", getsockopt() failed
2023-09-19 15:11:55: pid 12345: LOG:  health check failed on node 0 (timeout:0)
2023-09-19 15:11:55: pid 12345: LOG:  received degenerate backend request for node_id: 0 from pid [12345]
2023-09-19 15:11:56: pid 12300: LOG:  starting degeneration. shutdown host 192.168.1.201(54321)
2023-09-19 15:11:56: pid 12300: LOG:  Restart all children
2023-09-19 15:11:56: pid 12300: LOG:  execute command: /home/kingbase/cluster/R3HA/db/bin/failover_stream.sh 192.168.1.202 0 0 192.168.1.201
2023-09-19 15:12:02: pid 12300: LOG:  failover: set new primary node: 1
2023-09-19 15:12:02: pid 12300: LOG:  failover done. shutdown host 192.168.1.201(54321)
garbage
`

func parse(t testing.TB, data []byte) *event.Sink {
	t.Helper()
	s := event.NewSink("pgpool.log", "pgpool.log", Format)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Parse(ctx, input.NewLines(bytes.NewReader(data), 0), s, clock.NewResolver(nil, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParse(t *testing.T) {
	if Sniff([]byte(log)) < 90 {
		t.Errorf("sniff = %d", Sniff([]byte(log)))
	}
	s := parse(t, []byte(log))
	var kinds []string
	for _, e := range s.Events {
		kinds = append(kinds, string(e.Kind))
	}
	want := "health_check_failed,health_check_failed,failure_detected,failover_start,step,step,failover_end"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("kinds = %s\nwant    %s", got, want)
	}
	if !s.Floating || s.Unparsed != 1 {
		t.Errorf("floating %v unparsed %d", s.Floating, s.Unparsed)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(log))
	f.Add([]byte("2023-09-19 15:11:55: pid 1: LOG:  failover done\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := parse(t, data)
		for _, e := range s.Events {
			if e.Time.IsZero() || e.Line < 1 {
				t.Fatalf("event %+v", e)
			}
		}
	})
}

// A pgpool log stamped with a zone is placed in it, as a server log is:
// the zone is counted for the file (the analysis reads zone-less logs in
// it), a line without a zone is in the zone last written, and a zone that
// cannot be resolved is warned about.
func TestZone(t *testing.T) {
	const zoned = `2023-09-19 15:11:55 CST: pid 12345: LOG:  health check failed on node 0 (timeout:0)
2023-09-19 15:11:56: pid 12300: LOG:  starting degeneration. shutdown host 192.168.1.201(54321)
2023-09-19 15:12:02 CST: pid 12300: LOG:  failover done. shutdown host 192.168.1.201(54321)
`
	s := parse(t, []byte(zoned))
	if s.Floating {
		t.Fatal("a zoned log read as floating")
	}
	if s.Zones["CST"] == 0 {
		t.Errorf("zones = %v, want CST", s.Zones)
	}
	cst := time.FixedZone("CST", 8*3600)
	want := []time.Time{
		time.Date(2023, 9, 19, 15, 11, 55, 0, cst),
		time.Date(2023, 9, 19, 15, 11, 56, 0, cst),
		time.Date(2023, 9, 19, 15, 12, 2, 0, cst),
	}
	if len(s.Events) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(s.Events), len(want), s.Events)
	}
	for i, e := range s.Events {
		if !e.Time.Equal(want[i]) {
			t.Errorf("event %d (%s) at %s, want %s", i, e.Kind, e.Time.UTC(), want[i].UTC())
		}
	}
	if !s.First.Equal(want[0]) || !s.Last.Equal(want[2]) || s.Timed != 3 {
		t.Errorf("range %s .. %s, %d timed lines", s.First.UTC(), s.Last.UTC(), s.Timed)
	}

	s = parse(t, []byte("2023-09-19 15:11:55 QQQ: pid 1: LOG:  failover done\n"))
	if len(s.Events) != 0 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], `"QQQ" is unknown`) {
		t.Errorf("unknown zone: events %v, warnings %q", s.Events, s.Warnings)
	}
}
