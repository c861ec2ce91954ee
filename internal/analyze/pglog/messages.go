// Package pglog reads PostgreSQL and KingbaseES server logs: stderr (any
// common log_line_prefix), csvlog and jsonlog, and the KingbaseES sys_log,
// which has the same shapes. It recognises the lines that tell a failover's
// story (promotion, end of recovery, ready for writes, crashes) and counts
// the errors clients got (read-only transactions, refused and terminated
// connections). It also reads application logs for those client errors.
//
// Messages are matched in English, as PostgreSQL writes them with
// lc_messages=C or en_US. With translated messages the line structure is
// still read (Chinese severities included) and errors are still recognised
// by SQLSTATE where the log carries it (csvlog, jsonlog, %e in the prefix).
package pglog

import (
	"bytes"
	"regexp"

	"github.com/vigil-ha/vigil/internal/analyze/event"
)

// severity is a message's level, normalised to English.
type severity uint8

const (
	sevNone severity = iota
	sevDebug
	sevLog
	sevInfo
	sevNotice
	sevWarning
	sevError
	sevFatal
	sevPanic
	sevStatement
	sevDetail // DETAIL, HINT, CONTEXT, QUERY, LOCATION: the previous message's
)

// severityOf reads a severity word, English or as the zh_CN translation
// prints it.
func severityOf(b []byte) severity {
	switch string(b) {
	case "LOG", "日志":
		return sevLog
	case "ERROR", "错误":
		return sevError
	case "FATAL", "致命错误":
		return sevFatal
	case "PANIC", "比致命错误还过分的错误":
		return sevPanic
	case "WARNING", "警告":
		return sevWarning
	case "STATEMENT", "语句":
		return sevStatement
	case "DETAIL", "HINT", "CONTEXT", "QUERY", "LOCATION", "详细信息", "提示", "上下文":
		return sevDetail
	case "INFO", "信息":
		return sevInfo
	case "NOTICE", "注意":
		return sevNotice
	case "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "调试":
		return sevDebug
	}
	return sevNone
}

type rule struct {
	prefix string
	kind   event.Kind
	pb     []byte
}

// Milestones by message start. Where PostgreSQL versions differ (9.6, on
// which KingbaseES V8R3 is built, and 15) both wordings are listed.
var logRules = []rule{
	{prefix: "database system is ready to accept connections", kind: event.Ready},
	{prefix: "database system is ready to accept read only connections", kind: event.ReadOnlyReady},
	{prefix: "database system is ready to accept read-only connections", kind: event.ReadOnlyReady},
	{prefix: "received promote request", kind: event.PromoteReceived},
	{prefix: "promote trigger file found", kind: event.PromoteReceived},
	{prefix: "trigger file found", kind: event.PromoteReceived},
	{prefix: "redo done at ", kind: event.RedoDone},
	{prefix: "redo starts at ", kind: event.RedoStarts},
	{prefix: "selected new timeline ID", kind: event.NewTimeline},
	{prefix: "archive recovery complete", kind: event.ArchiveRecoveryComplete},
	{prefix: "checkpoint starting: end-of-recovery", kind: event.EndOfRecoveryCheckpoint},
	{prefix: "checkpoint complete", kind: event.CheckpointComplete},
	{prefix: "starting PostgreSQL", kind: event.ServerStart},
	{prefix: "starting KingbaseES", kind: event.ServerStart},
	{prefix: "database system was shut down at", kind: event.ServerStart},
	{prefix: "database system was shut down in recovery at", kind: event.ServerStart},
	{prefix: "database system was interrupted", kind: event.ServerStart},
	{prefix: "database system was not properly shut down", kind: event.RecoveryStart},
	{prefix: "entering standby mode", kind: event.RecoveryStart},
	{prefix: "received smart shutdown request", kind: event.ShutdownRequest},
	{prefix: "received fast shutdown request", kind: event.ShutdownRequest},
	{prefix: "received immediate shutdown request", kind: event.ShutdownRequest},
	{prefix: "database system is shut down", kind: event.ServerStopped},
	{prefix: "server process (PID", kind: event.ServerCrash},
	{prefix: "startup process (PID", kind: event.ServerCrash},
	{prefix: "terminating any other active server processes", kind: event.ServerCrash},
	{prefix: "all server processes terminated; reinitializing", kind: event.ServerCrash},
	{prefix: "replication terminated by primary server", kind: event.UpstreamLost},
}

var errorRules = []rule{
	{prefix: "could not receive data from WAL stream", kind: event.UpstreamLost},
	{prefix: "could not connect to the primary server", kind: event.UpstreamLost},
	{prefix: "terminating walreceiver due to timeout", kind: event.UpstreamLost},
	{prefix: "the database system is starting up", kind: event.ConnectionRefused},
	{prefix: "the database system is in recovery mode", kind: event.ConnectionRefused},
	{prefix: "the database system is not yet accepting connections", kind: event.ConnectionRefused},
	{prefix: "the database system is not accepting connections", kind: event.ConnectionRefused},
	{prefix: "the database system is shutting down", kind: event.ConnectionRefused},
	{prefix: "terminating connection due to administrator command", kind: event.ConnectionTerminated},
	{prefix: "terminating connection due to unexpected postmaster exit", kind: event.ConnectionTerminated},
	{prefix: "terminating connection because of crash of another server process", kind: event.ConnectionTerminated},
	{prefix: "cannot set transaction read-write mode during recovery", kind: event.ReadOnlyError},
}

var (
	readOnlyTail = []byte(" in a read-only transaction")
	recoveryTail = []byte(" during recovery")
	cannotExec   = []byte("cannot execute ")
	lsnRe        = regexp.MustCompile(`\b([0-9A-F]{1,8}/[0-9A-F]{1,8})\b`)
	elapsedRe    = regexp.MustCompile(`elapsed: ([0-9.]+) s`)
	timelineRe   = regexp.MustCompile(`timeline ID: (\d+)`)
)

// byFirst indexes rules by their first byte: most lines are rejected by
// one table lookup.
type ruleIndex [256][]rule

func index(rules []rule) *ruleIndex {
	var ix ruleIndex
	for _, r := range rules {
		r.pb = []byte(r.prefix)
		ix[r.prefix[0]] = append(ix[r.prefix[0]], r)
	}
	return &ix
}

// classifier matches messages. It holds only read-only tables; one is
// built per parse (no package state beyond the rule lists).
type classifier struct {
	log, errs *ruleIndex
}

func newClassifier() *classifier {
	return &classifier{log: index(logRules), errs: index(errorRules)}
}

func (c *classifier) match(ix *ruleIndex, msg []byte) (event.Kind, bool) {
	if len(msg) == 0 {
		return "", false
	}
	for _, r := range ix[msg[0]] {
		if bytes.HasPrefix(msg, r.pb) {
			return r.kind, true
		}
	}
	return "", false
}

// classify says what a message means. sqlstate may be empty. command is
// the statement's command for a read-only error ("INSERT").
func (c *classifier) classify(sev severity, msg []byte, sqlstate string) (kind event.Kind, command string, ok bool) {
	switch sev {
	case sevLog, sevInfo, sevNotice:
		kind, ok = c.match(c.log, msg)
		return kind, "", ok
	case sevWarning:
		if k, ok := c.match(c.errs, msg); ok && k == event.ConnectionTerminated {
			return k, "", true
		}
		return "", "", false
	case sevError, sevFatal:
		if bytes.HasPrefix(msg, cannotExec) {
			rest := msg[len(cannotExec):]
			if i := bytes.Index(rest, readOnlyTail); i >= 0 {
				return event.ReadOnlyError, string(rest[:i]), true
			}
			if i := bytes.Index(rest, recoveryTail); i >= 0 {
				return event.ReadOnlyError, string(rest[:i]), true
			}
		}
		if k, ok := c.match(c.errs, msg); ok {
			return k, "", true
		}
		switch sqlstate {
		case "25006":
			return event.ReadOnlyError, "", true
		case "57P03":
			return event.ConnectionRefused, "", true
		case "57P01", "57P02":
			return event.ConnectionTerminated, "", true
		}
	case sevPanic:
		return event.ServerCrash, "", true
	}
	return "", "", false
}

// attrs extracts what a milestone line says beyond its kind.
func attrs(kind event.Kind, msg []byte) map[string]string {
	switch kind {
	case event.RedoDone:
		a := map[string]string{}
		if m := lsnRe.FindSubmatch(msg); m != nil {
			a["lsn"] = string(m[1])
		}
		if m := elapsedRe.FindSubmatch(msg); m != nil {
			a["elapsed_s"] = string(m[1])
		}
		return a
	case event.RedoStarts:
		if m := lsnRe.FindSubmatch(msg); m != nil {
			return map[string]string{"lsn": string(m[1])}
		}
	case event.NewTimeline:
		if m := timelineRe.FindSubmatch(msg); m != nil {
			return map[string]string{"timeline": string(m[1])}
		}
	case event.ServerCrash:
		if bytes.Contains(msg, []byte("terminated by signal")) || bytes.Contains(msg, []byte("exited with exit code")) {
			return map[string]string{"process_exit": "true"}
		}
	}
	return nil
}
