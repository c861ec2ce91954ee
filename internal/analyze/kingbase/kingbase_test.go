package kingbase

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
	"golang.org/x/text/encoding/simplifiedchinese"
)

func parse(t testing.TB, data []byte) *event.Sink {
	t.Helper()
	r, _, err := input.Prepare(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	s := event.NewSink("failover.log", "failover.log", Format)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Parse(ctx, input.NewLines(r, 0), s, clock.NewResolver(nil, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSeedNoLoadLog reads the seed's own failover_stream.sh log, verbatim:
// every line is understood, and each step lands at the seed's time.
func TestSeedNoLoadLog(t *testing.T) {
	data, err := os.ReadFile("../testdata/seed/failover-2023-09-21-noload.log")
	if err != nil {
		t.Fatal(err)
	}
	if Sniff(data) < 90 {
		t.Errorf("sniff = %d", Sniff(data))
	}
	s := parse(t, data)
	want := []struct {
		at        string
		kind      event.Kind
		line      int64
		inherited bool
	}{
		{"11:50:54", event.FailoverStart, 1, false},
		{"11:50:54", event.TrustedPingOK, 4, true},
		{"11:50:54", event.FailureDetected, 6, true},
		{"11:50:56", event.OldPrimaryStop, 9, true},
		{"11:50:57", event.VIPDeleted, 10, false},
		{"11:50:58", event.VIPAdded, 16, false},
		{"11:50:58", event.GratuitousARP, 18, true},
		{"11:50:58", event.Step, 21, false},
		{"11:50:58", event.LivenessCheckOK, 24, false},
		{"11:50:58", event.PromoteRequested, 25, true},
		{"11:50:58", event.LivenessCheckOK, 29, false},
		{"11:50:58", event.SyncToAsync, 31, false},
		{"11:50:58", event.CheckpointRequest, 38, false},
		{"11:50:59", event.LivenessCheckOK, 41, false},
		{"11:50:59", event.CheckpointDone, 43, true},
		{"11:50:59", event.LivenessCheckOK, 46, false},
		{"11:50:59", event.FailoverEnd, 48, false},
	}
	if len(s.Events) != len(want) {
		for _, e := range s.Events {
			t.Logf("%s %s %d %q", e.Time.Format("15:04:05"), e.Kind, e.Line, e.Text)
		}
		t.Fatalf("%d events, want %d", len(s.Events), len(want))
	}
	for i, w := range want {
		e := s.Events[i]
		if e.Time.Format("15:04:05") != w.at || e.Kind != w.kind || e.Line != w.line || e.Inherited != w.inherited || e.Precision != time.Second {
			t.Errorf("event %d = %s %s line %d inherited %v, want %s %s line %d inherited %v", i, e.Time.Format("15:04:05"), e.Kind, e.Line, e.Inherited, w.at, w.kind, w.line, w.inherited)
		}
	}
	if s.Unparsed != 0 {
		t.Errorf("%d lines not recognised (first %d)", s.Unparsed, s.FirstUnparsed)
	}
	if !s.Floating || s.Events[0].Time.Year() != 2023 {
		t.Errorf("floating = %v", s.Floating)
	}
	st := s.Events[0].Attrs
	if st["new_master_host"] != "192.168.1.202" || st["old_primary_host"] != "192.168.1.201" || st["data_dir"] != "/home/kingbase/cluster/R3HA/db/data" {
		t.Errorf("header attrs = %v", st)
	}
	if s.Events[3].Attrs["already_stopped"] != "true" {
		t.Errorf("old primary stop: %v, want already_stopped (sys_ctl found no PID file)", s.Events[3].Attrs)
	}
	if s.Events[5].Attrs["vip"] != "192.168.1.10/24" || s.Events[5].Attrs["interface"] != "enp0s3" {
		t.Errorf("vip attrs = %v", s.Events[5].Attrs)
	}
	if s.Events[8].Attrs["check"] != "select 33333" {
		t.Errorf("check = %q", s.Events[8].Attrs["check"])
	}
}

func TestFailuresAndOddLines(t *testing.T) {
	log := strings.Join([]string{
		"execute promote", // before any time: cannot be placed
		"-----------------2023-09-21 11:50:54 failover begin-----",
		"ping trust ip 192.168.1.1 failed",
		"ksql \"port=54321 user=SYSTEM dbname=TEST connect_timeout=10\" -c \"select 33333;\"",
		"2023-09-21 11:50:58 kingbase is not ok, exit",
		"ssh connect host:192.168.1.201 failed",
		"something else entirely",
	}, "\n")
	s := parse(t, []byte(log))
	var kinds []string
	for _, e := range s.Events {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, ","); got != "failover_start,trusted_ping_failed,step_failed,step_failed" {
		t.Errorf("kinds = %s", got)
	}
	if s.Unparsed != 1 || s.FirstUnparsed != 7 {
		t.Errorf("unparsed %d first %d", s.Unparsed, s.FirstUnparsed)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "before the log printed any time") {
		t.Errorf("warnings = %v", s.Warnings)
	}
}

// TestGBKLog: a Kingbase failover log whose echo lines are Chinese in GBK
// is decoded and its English milestones still read.
func TestGBKLog(t *testing.T) {
	text := "-----------------2023-09-21 11:50:54 failover beging-----\n开始切换，检查网关\nADD VIP NOW AT 2023-09-21 11:50:58 ON enp0s3\n"
	enc, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	s := parse(t, enc)
	if len(s.Events) != 2 || s.Events[1].Kind != event.VIPAdded {
		t.Errorf("events = %+v", s.Events)
	}
	if s.Unparsed != 1 {
		t.Errorf("unparsed = %d, want the Chinese line", s.Unparsed)
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("../testdata/seed/failover-2023-09-21-noload.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("ADD VIP NOW AT 2023-09-21 11:50:58 ON\nexecute promote\n"))
	f.Add([]byte("ksql -c\n2023-01-01 00:00:00 is ok\n"))
	f.Add([]byte("failover-stats is %H = [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := input.Prepare(bytes.NewReader(data)); err != nil {
			return // binary data is refused before any parser sees it
		}
		s := parse(t, data)
		for _, e := range s.Events {
			if e.Time.IsZero() || e.Line < 1 {
				t.Fatalf("event without a time or line: %+v", e)
			}
		}
		if s.Unparsed > int64(bytes.Count(data, []byte("\n"))+1) {
			t.Fatalf("%d unparsed lines in %d", s.Unparsed, bytes.Count(data, []byte("\n"))+1)
		}
	})
}
