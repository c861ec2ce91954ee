package pgpool

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// humanLog writes the failover log in failover_stream.sh's shape, so that
// operators read it as they always did and `vigil analyze` recognises every
// line (internal/analyze/kingbase): the banners, "ping trust ip ... success",
// "master down", "stop the old primary db", "DEL VIP NOW AT", "promote
// begin", "execute promote", "sync to async", "make checkpoint",
// "CHECKPOINT", "ADD VIP NOW AT", "execute: [...]". Vigil's own lines
// (the readiness gate) start with phrases the analyzer files as commentary
// ("after execute promote", "add vip on"), and only real failures contain
// the word "failed". Times carry milliseconds: the analyzer lines them up
// against the JSON step log, and a whole second would blur the gate and
// the VIP into one moment.
type humanLog struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// timeLayout is the script's `date "+%Y-%m-%d %H:%M:%S"` with milliseconds.
const timeLayout = "2006-01-02 15:04:05.000"

func newHumanLog(w io.Writer, now func() time.Time) *humanLog {
	if w == nil {
		w = io.Discard
	}
	if now == nil {
		now = time.Now
	}
	return &humanLog{w: w, now: now}
}

// stamp is the current time as the log writes it.
func (l *humanLog) stamp() string { return l.now().Format(timeLayout) }

// line writes one line. Write errors are ignored: a full disk must not stop
// a failover, and the JSON step log and Vigil's own log have the record too.
func (l *humanLog) line(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	s = strings.ReplaceAll(s, "\n", " / ")
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s+"\n")
}

// timed writes a line starting with the time, as the script's steps do.
func (l *humanLog) timed(format string, args ...any) {
	l.line("%s %s", l.stamp(), fmt.Sprintf(format, args...))
}

// banner writes "-----------------TIME failover beging-----..." (the
// script's spelling, which operators grep for) or "... failover end ...".
func (l *humanLog) banner(what string) {
	l.line("-----------------%s %s---------------------------------------", l.stamp(), what)
}

// exec echoes a command the way the script did ("execute: [...]") with its
// exit status and output on the same line.
func (l *humanLog) exec(argv []string, res Result, err error) {
	msg := fmt.Sprintf("execute: [%s]", strings.Join(argv, " "))
	switch {
	case err != nil:
		msg += " could not run: " + err.Error()
	default:
		msg += fmt.Sprintf(" exit %d", res.ExitCode)
		if out := strings.TrimSpace(string(res.Output)); out != "" {
			msg += ": " + cut(out, 400)
		}
	}
	l.line("%s", msg)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
