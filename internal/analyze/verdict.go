package analyze

import (
	"fmt"
	"strings"
	"time"
)

// verdict writes the plain-language paragraph and the advice.
func verdict(f *Findings) {
	var b strings.Builder
	server := "the new primary"
	if f.PromotedServer != "" {
		server = "the database (" + f.PromotedServer + ")"
	}
	route := "The route"
	if f.RouteUp != nil {
		route = routeName(f.RouteUp)
	}
	checks := len(f.ChecksPassedReadOnly)
	switch {
	case f.Promote == nil && f.Writable == nil:
		b.WriteString("No promotion appears in these logs: the failover was aborted before promoting (for example because the trusted IP did not answer), or the logs end before it. ")
		if f.RouteUp != nil {
			fmt.Fprintf(&b, "%s nevertheless came up at %s (%s): clients may have reached a server that was never promoted. ", route, f.RouteUp.Clock(), f.RouteUp.Short())
			f.Advice = append(f.Advice, adviceOrder)
		}
	case f.Writable == nil && f.PromotedServer == "":
		fmt.Fprintf(&b, "A promotion was requested at %s (%s), but no server log in the input shows the database becoming writable. ", f.Promote.Clock(), f.Promote.Short())
		if f.RouteUp != nil {
			fmt.Fprintf(&b, "%s came up at %s. ", route, f.RouteUp.Clock())
		}
		if checks > 0 {
			fmt.Fprintf(&b, "The failover tool's checks passed %d times, but a SELECT or CHECKPOINT passes on a read-only server, so they do not prove it. ", checks)
		}
		b.WriteString("Add the promoted server's log to see when it could really write.")
		f.Advice = append(f.Advice, "Give `vigil analyze` the new primary's server log (stderr, csvlog, jsonlog or sys_log) with the cluster log.")
	case f.Writable == nil:
		fmt.Fprintf(&b, "%s was asked to promote at %s, and its log never shows it ready for writes: it was still read-only when the logs end. ", server, f.Promote.Clock())
		if f.ReadOnlyWindowS != nil {
			fmt.Fprintf(&b, "%s had been up since %s: clients reached a read-only server for at least %s, and %d statements failed as read-only. ", route, f.RouteUp.Clock(), secs(*f.ReadOnlyWindowS), f.ReadOnlyErrors)
		}
		f.Advice = append(f.Advice, adviceOrder, adviceRecovery)
	case f.ReadOnlyWindowS != nil && *f.ReadOnlyWindowS > 0:
		fmt.Fprintf(&b, "%s came up at %s (%s), %s before %s could write (%s at %s, %s). ", route, f.RouteUp.Clock(), f.RouteUp.Short(),
			secs(*f.ReadOnlyWindowS), server, writableWhat(f.Writable), f.Writable.Clock(), f.Writable.Short())
		fmt.Fprintf(&b, "For those %s clients reached a server that accepted connections and queries but refused every write: ", secs(*f.ReadOnlyWindowS))
		fmt.Fprintf(&b, "%d statements failed as read-only transactions", f.ReadOnlyErrors)
		if f.ConnectionErrors > 0 {
			fmt.Fprintf(&b, " and %d connections were refused or cut", f.ConnectionErrors)
		}
		b.WriteString(". ")
		if checks > 0 {
			fmt.Fprintf(&b, "The failover tool's checks passed %d times while the database was read-only (%s): a SELECT and a CHECKPOINT succeed on a server in recovery, so the tool reported success. ", checks, checkNames(f))
		}
		if f.Replay != nil && f.Replay.S > 0 {
			fmt.Fprintf(&b, "The server spent %s replaying WAL after the promote request: %s. ", secs(f.Replay.S), f.Replay.Cause)
		}
		if f.WriteOutageS != nil {
			fmt.Fprintf(&b, "Writes were impossible for %s in all, from the first sign of failure at %s (%s).", secs(*f.WriteOutageS), f.Failure.Clock(), f.Failure.Short())
		}
		f.Advice = append(f.Advice, adviceOrder, adviceWriteCheck)
		if f.Replay != nil && f.Replay.S > 5 {
			f.Advice = append(f.Advice, adviceRecovery)
		}
		f.Advice = append(f.Advice, adviceVigil)
	default:
		if f.RouteUp != nil {
			fmt.Fprintf(&b, "%s came up at %s, %s after %s could write (%s at %s): clients never reached a read-only primary. ", route, f.RouteUp.Clock(),
				secs(f.RouteUp.Time.Sub(f.Writable.Time).Seconds()), server, writableWhat(f.Writable), f.Writable.Clock())
		} else {
			fmt.Fprintf(&b, "No VIP or route change is in these logs. %s could write at %s (%s). ", server, f.Writable.Clock(), f.Writable.Short())
		}
		if f.ReadOnlyErrors > 0 {
			fmt.Fprintf(&b, "%d statements that reached %s directly between the promotion and then were refused as read-only. ", f.ReadOnlyErrors, server)
		}
		if f.WriteOutageS != nil {
			fmt.Fprintf(&b, "Write outage: %s from the first sign of failure at %s (%s)", secs(*f.WriteOutageS), f.Failure.Clock(), f.Failure.Short())
			if f.Promote != nil {
				fmt.Fprintf(&b, ": %s until the promotion, %s promoting", secs(f.Promote.Time.Sub(f.Failure.Time).Seconds()), secs(f.Writable.Time.Sub(f.Promote.Time).Seconds()))
			}
			b.WriteString(". ")
		}
		if f.Replay != nil && f.Replay.S > 5 {
			fmt.Fprintf(&b, "Replay took %s: %s.", secs(f.Replay.S), f.Replay.Cause)
			f.Advice = append(f.Advice, adviceRecovery)
		}
		if f.RouteUp == nil {
			f.Advice = append(f.Advice, "Give the failover tool's or router's log as well (failover.log, Vigil's step log, Pgpool-II) to check when clients were sent to the new primary.")
		}
		if f.WriteOutageS != nil && f.Failure != nil && f.Promote != nil && f.Promote.Time.Sub(f.Failure.Time) > 30*time.Second {
			f.Advice = append(f.Advice, "Detection took over 30 s: shorten the health-check interval and retries (or the leader lease) so that a dead primary is noticed sooner.")
		}
	}
	f.Verdict = strings.TrimSpace(b.String())
}

const (
	adviceOrder      = "Move the VIP (or any route) only after the new primary has left recovery: wait for pg_is_in_recovery() (sys_is_in_recovery() on KingbaseES) to return false after promote."
	adviceWriteCheck = "Replace the `select 33333` check with a write that must commit (for example an UPDATE of a heartbeat row): a SELECT and a CHECKPOINT succeed on a read-only server."
	adviceRecovery   = "Keep the standbys' replay lag small and watched (pg_last_wal_receive_lsn() - pg_last_wal_replay_lsn()), and checkpoint often enough (checkpoint_timeout, max_wal_size) that recovery after a restart has little to replay."
	adviceVigil      = "Vigil's failover runs these steps in that order: promote, a readiness gate that commits a real write, and only then the VIP."
)

func routeName(m *Mark) string {
	if m.Kind == "vip_added" {
		return "The VIP"
	}
	return "The route"
}

func writableWhat(m *Mark) string {
	if m.Kind == "write_committed" {
		return "a write committed"
	}
	return "ready to accept connections"
}

func checkNames(f *Findings) string {
	seen := map[string]bool{}
	var out []string
	for _, c := range f.ChecksPassedReadOnly {
		name := "CHECKPOINT"
		if c.Kind == "liveness_check_ok" {
			name = "select 33333"
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return strings.Join(out, ", ")
}

func secs(s float64) string {
	if s >= 10 {
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.2f s", s)
}
