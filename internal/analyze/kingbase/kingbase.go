// Package kingbase reads the failover log of KingbaseES V8R3's
// failover_stream.sh (the seed incident's "cluster log"): banner lines
// around each failover, "DEL VIP NOW AT"/"ADD VIP NOW AT", the promote and
// checkpoint commands, and the "select 33333" checks that decide the
// script's idea of "ok".
//
// The script prints times without a zone and only on some lines; a line
// without a time happened at or after the last time printed, and is placed
// there (marked inherited).
package kingbase

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// Format is the name --format uses.
const Format = "kingbase-failover"

var (
	statsField = regexp.MustCompile(`%([A-Za-z]) = [^\[]*\[([^\]]*)\]`)
	ipCmd      = regexp.MustCompile(`ip addr (add|del) (\S+) dev (\S+)`)
	vipIface   = regexp.MustCompile(`VIP NOW AT .* ON (\S+)`)
	arping     = regexp.MustCompile(`arping .*?-U (\S+)`)
)

// statsNames names the header's % fields.
var statsNames = map[string]string{
	"H": "new_master_host", "P": "old_primary_id", "d": "failed_node_id", "h": "failed_host",
	"O": "old_primary_host", "m": "new_master_id", "M": "old_master_id", "D": "data_dir",
}

// markers are the phrases that identify the script's log.
var markers = [][]byte{
	[]byte("failover beging"), []byte("failover begin"), []byte("ADD VIP NOW AT"), []byte("DEL VIP NOW AT"),
	[]byte("failover-stats is"), []byte("ping trust ip"), []byte("promote begin"), []byte(`select 33333`),
}

// Sniff scores how much sample looks like a failover_stream.sh log (0-100).
func Sniff(sample []byte) int {
	hits := 0
	for _, m := range markers {
		if bytes.Contains(sample, m) {
			hits++
		}
	}
	switch {
	case hits >= 2:
		return 95
	case hits == 1:
		return 70
	}
	return 0
}

type parser struct {
	sink    *event.Sink
	last    time.Time // last printed time (wall clock, floating)
	haveT   bool
	check   string // a liveness check command waiting for its verdict
	checkAt int64
	vip     string
	start   int // index of the current failover_start event, -1 if none
}

// Parse reads a failover log into sink. Its times are floating: the script
// prints no zone.
// Cancellation comes through lines (input.NewLinesContext).
func Parse(_ context.Context, lines *input.Lines, sink *event.Sink, _ *clock.Resolver) error {
	sink.Floating = true
	p := &parser{sink: sink, start: -1}
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		p.line(string(b), lines.Line())
	}
	if err := lines.Canceled(); err != nil {
		return err
	}
	if p.check != "" {
		sink.Warnf("line %d: the liveness check %q has no verdict in the log", p.checkAt, p.check)
	}
	return nil
}

func (p *parser) line(s string, n int64) {
	trimmed := strings.TrimSpace(s)
	own := false
	if st, _, ok := clock.Find([]byte(s)); ok {
		p.last, p.haveT, own = st.Wall, true, true
		p.sink.Seen(st.Wall)
		p.sink.Zone("")
	}
	add := func(kind event.Kind, attrs map[string]string) {
		if !p.haveT {
			p.sink.Warnf("line %d: %s before the log printed any time: left out", n, kind)
			return
		}
		p.sink.Add(event.Event{Time: p.last, Kind: kind, Line: n, Text: trimmed, Precision: time.Second, Inherited: !own, Attrs: attrs})
	}
	lower := strings.ToLower(trimmed)
	switch {
	case trimmed == "":
	case strings.Contains(lower, "failover beging") || strings.Contains(lower, "failover begin"):
		add(event.FailoverStart, nil)
		p.start = len(p.sink.Events) - 1
	case strings.Contains(lower, "failover end"):
		add(event.FailoverEnd, nil)
		p.start = -1
	case strings.Contains(s, "failover-stats is"):
		attrs := map[string]string{}
		for _, m := range statsField.FindAllStringSubmatch(s, -1) {
			if name, ok := statsNames[m[1]]; ok {
				attrs[name] = m[2]
			}
		}
		if p.start >= 0 && p.start < len(p.sink.Events) {
			ev := &p.sink.Events[p.start]
			if ev.Attrs == nil {
				ev.Attrs = map[string]string{}
			}
			for k, v := range attrs {
				ev.Attrs[k] = v
			}
		}
	case strings.HasPrefix(lower, "ping trust ip") || strings.HasPrefix(lower, "----ping trust ip"):
		switch {
		case strings.Contains(lower, "success"):
			add(event.TrustedPingOK, nil)
		case strings.Contains(lower, "fail"):
			add(event.TrustedPingFailed, nil)
		}
	case strings.Contains(lower, "master down"):
		add(event.FailureDetected, nil)
	case strings.HasPrefix(trimmed, "DEL VIP NOW AT"):
		add(event.VIPDeleted, p.ifaceAttrs(s))
	case strings.HasPrefix(trimmed, "ADD VIP NOW AT"):
		add(event.VIPAdded, p.ifaceAttrs(s))
	case strings.Contains(s, "ip addr add") || strings.Contains(s, "ip addr del"):
		if m := ipCmd.FindStringSubmatch(s); m != nil {
			p.vip = m[2]
		}
	case strings.Contains(s, "arping"):
		attrs := map[string]string{}
		if m := arping.FindStringSubmatch(s); m != nil {
			attrs["vip"] = m[1]
		}
		add(event.GratuitousARP, attrs)
	case strings.Contains(lower, "stop the old primary db"):
		add(event.OldPrimaryStop, nil)
	case strings.Contains(s, "PID file") && strings.Contains(s, "does not exist"), trimmed == "Is server running?":
		// sys_ctl's answer when the old primary was already down.
		p.annotateLast(event.OldPrimaryStop, "already_stopped", "true")
	case strings.Contains(lower, "promote begin"):
		add(event.Step, map[string]string{"step": "promote_begin"})
	case strings.Contains(s, "select 33333") || strings.Contains(s, "select 3333"):
		p.check, p.checkAt = checkSQL(s), n
	case p.check != "" && (strings.Contains(lower, " is ok") || strings.Contains(lower, "status is ok")):
		add(event.LivenessCheckOK, map[string]string{"check": p.check, "check_line": strconv.FormatInt(p.checkAt, 10)})
		p.check = ""
	case p.check != "" && (strings.Contains(lower, "not ok") || strings.Contains(lower, "fail")):
		add(event.StepFailed, map[string]string{"check": p.check})
		p.check = ""
	case trimmed == "execute promote":
		add(event.PromoteRequested, nil)
	case strings.Contains(lower, "sync to async"):
		add(event.SyncToAsync, nil)
	case strings.Contains(lower, "make checkpoint"):
		add(event.CheckpointRequest, nil)
	case trimmed == "CHECKPOINT":
		add(event.CheckpointDone, nil)
	case strings.Contains(lower, "failed") || strings.Contains(lower, "failure") || strings.Contains(lower, "error"):
		add(event.StepFailed, nil)
	case recognised(lower, trimmed):
	default:
		p.sink.Unrecognised(n)
	}
}

func (p *parser) ifaceAttrs(s string) map[string]string {
	attrs := map[string]string{}
	if m := vipIface.FindStringSubmatch(s); m != nil {
		attrs["interface"] = m[1]
	}
	if p.vip != "" {
		attrs["vip"] = p.vip
	}
	return attrs
}

func (p *parser) annotateLast(kind event.Kind, k, v string) {
	for i := len(p.sink.Events) - 1; i >= 0; i-- {
		if p.sink.Events[i].Kind == kind {
			if p.sink.Events[i].Attrs == nil {
				p.sink.Events[i].Attrs = map[string]string{}
			}
			p.sink.Events[i].Attrs[k] = v
			return
		}
	}
}

// recognised are the script's other lines: commands it echoes and their
// output. They carry nothing for the timeline.
func recognised(lower, trimmed string) bool {
	for _, p := range []string{"del old primary vip", "ssh connect host", "add vip on", "oprate del ip", "oprate add ip",
		"check db if is alive", "check the db to see if it is alive", "execute checkpoint", "server promoting",
		"success to send", "determine whether the faulty db", "alter system", "sys_reload_conf", "pg_reload_conf",
		"(1 row)", "execute: ", "after execute", "waiting for server to promote", "server promoted"} {
		if strings.Contains(lower, p) {
			return true
		}
	}
	return trimmed == "t" || strings.Trim(trimmed, "-") == ""
}

// checkSQL extracts the statement of a ksql/psql -c check.
func checkSQL(s string) string {
	if i := strings.Index(s, "-c"); i >= 0 {
		q := strings.TrimSpace(s[i+2:])
		q = strings.Trim(q, `"' `)
		return strings.TrimSuffix(q, ";")
	}
	return "select 33333"
}
