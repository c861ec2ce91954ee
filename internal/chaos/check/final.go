package check

import (
	"slices"
	"strings"
	"time"
)

// recovery reports every fault the cluster did not recover from within its
// bound after the heal: back to one writable primary with every standby
// streaming, as the runner observed it.
func (c *checker) recovery() []Violation {
	var out []Violation
	for _, f := range c.faults {
		bound := c.bound(f)
		deadline := f.Healed.Add(bound)
		switch {
		case f.Healed.IsZero():
			out = append(out, c.violation(NotRecovered, f.Step, f.Injected, nil,
				"%s on %s was never healed (the run ended during it)", f.Type, f.Target))
		case f.Recovered.IsZero():
			out = append(out, c.violation(NotRecovered, f.Step, deadline, nil,
				"%s on %s: no single writable primary with every standby streaming within %s of the heal", f.Type, f.Target, bound))
		case f.Recovered.After(deadline):
			out = append(out, c.violation(NotRecovered, f.Step, f.Recovered, nil,
				"%s on %s: recovered %s after the heal, beyond the bound of %s", f.Type, f.Target,
				f.Recovered.Sub(f.Healed).Round(time.Millisecond), bound))
		}
	}
	return out
}

// final judges the cluster once every fault was healed: one writable
// primary, every other node streaming from it, no agent panic, nothing the
// run created left behind.
func (c *checker) final() []Violation {
	fin := c.h.Final
	at := fin.At
	if at.IsZero() {
		at = c.horizon
	}
	var out []Violation
	switch {
	case fin.At.IsZero() && fin.Primary == "":
		out = append(out, c.violation(NoPrimary, 0, at, nil, "no final state recorded: the run was interrupted before the cluster settled"))
	case fin.Primary == "":
		out = append(out, c.violation(NoPrimary, 0, at, nil, "no writable primary after the last heal"))
	default:
		for _, n := range c.h.Run.Nodes {
			if n != fin.Primary && !slices.Contains(fin.Streaming, n) {
				out = append(out, c.violation(NotStreaming, 0, at, nil, "%s does not stream from the final primary %s", n, fin.Primary))
			}
		}
	}
	if len(fin.Panics) > 0 {
		out = append(out, c.violation(AgentPanic, 0, at, nil, "%d agent log line(s) show a panic: %s",
			len(fin.Panics), strings.Join(fin.Panics[:min(3, len(fin.Panics))], " | ")))
	}
	for _, l := range fin.Leaks {
		out = append(out, c.violation(ResourceLeaked, 0, at, nil, "left behind: %s", l))
	}
	return out
}
