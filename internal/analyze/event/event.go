// Package event is the vocabulary shared by the log parsers and the
// analysis: what a line meant (a milestone or a client error), where it was
// read and when it happened. Parsers write into a Sink, one per file, which
// keeps memory bounded however long the file is.
package event

import (
	"time"
)

// Kind is what a log line means for a failover.
type Kind string

// Milestones of the failover tool (failover_stream.sh, Vigil, Pgpool-II).
const (
	FailoverStart     Kind = "failover_start"
	FailoverEnd       Kind = "failover_end"
	FailureDetected   Kind = "failure_detected"
	TrustedPingOK     Kind = "trusted_ping_ok"
	TrustedPingFailed Kind = "trusted_ping_failed"
	OldPrimaryStop    Kind = "old_primary_stop"
	VIPDeleted        Kind = "vip_deleted"
	VIPAdded          Kind = "vip_added"
	GratuitousARP     Kind = "gratuitous_arp"
	RouteUp           Kind = "route_up"
	PromoteRequested  Kind = "promote_requested"
	Promoted          Kind = "promoted"
	LivenessCheckOK   Kind = "liveness_check_ok"
	CheckpointRequest Kind = "checkpoint_requested"
	CheckpointDone    Kind = "checkpoint_done"
	SyncToAsync       Kind = "sync_to_async"
	WriteCommitted    Kind = "write_committed"
	StepFailed        Kind = "step_failed"
	Step              Kind = "step"
	HealthCheckFailed Kind = "health_check_failed"
)

// Milestones of a database server.
const (
	ServerStart             Kind = "server_start"
	ShutdownRequest         Kind = "shutdown_request"
	ServerStopped           Kind = "server_stopped"
	ServerCrash             Kind = "server_crash"
	UpstreamLost            Kind = "upstream_lost"
	RecoveryStart           Kind = "recovery_start"
	RedoStarts              Kind = "redo_starts"
	ReadOnlyReady           Kind = "read_only_ready"
	PromoteReceived         Kind = "promote_received"
	RedoDone                Kind = "redo_done"
	NewTimeline             Kind = "new_timeline"
	ArchiveRecoveryComplete Kind = "archive_recovery_complete"
	EndOfRecoveryCheckpoint Kind = "end_of_recovery_checkpoint"
	CheckpointComplete      Kind = "checkpoint_complete"
	Ready                   Kind = "ready"
)

// Client errors: counted, not listed one by one.
const (
	ReadOnlyError        Kind = "read_only_error"
	ConnectionRefused    Kind = "connection_refused"
	ConnectionTerminated Kind = "connection_terminated"
)

// IsClientError reports whether k is counted rather than listed.
func IsClientError(k Kind) bool {
	return k == ReadOnlyError || k == ConnectionRefused || k == ConnectionTerminated
}

// Event is one milestone read from a log.
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	// Source is the lane the event belongs to: the file's label.
	Source string `json:"source"`
	File   string `json:"file"`
	Line   int64  `json:"line"`
	// Text is the line as logged, cut to a readable length.
	Text string `json:"text"`
	// Precision is what the timestamp can tell apart (1s for a script's
	// "date" output, 1ms for %m).
	Precision time.Duration `json:"precision_ns"`
	// Inherited: the line had no time of its own; it happened at or after
	// the last time the log printed.
	Inherited bool `json:"inherited_time,omitempty"`
	// Attrs carry what the line says beyond its kind: LSNs, hosts, step
	// names, replay backlog.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// MaxText is how much of a line an event keeps as evidence.
const MaxText = 300

// Cut shortens a line for evidence.
func Cut(s string) string {
	if len(s) <= MaxText {
		return s
	}
	// Do not split a UTF-8 sequence.
	i := MaxText
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
