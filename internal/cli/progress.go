package cli

import (
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
)

// buildProgress says how far the build of a member whose data directory
// held no cluster has come, "" when none is under way.
func buildProgress(m dcs.Member) string {
	switch m.Phase {
	case "":
		return ""
	case "empty":
		return "no data directory: waiting to be built"
	case "bootstrap":
		return "creating the cluster"
	}
	c := m.Clone
	if c == nil {
		return m.Phase + ": starting"
	}
	s := fmt.Sprintf("%s from %s: %s", m.Phase, c.From, mib(c.BytesDone))
	if c.BytesTotal > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", mib(c.BytesTotal), c.BytesDone*100/c.BytesTotal)
	}
	s += ", " + mib(c.RateBytes) + "/s"
	if c.ETASeconds >= 0 {
		s += fmt.Sprintf(", %s left", (time.Duration(c.ETASeconds) * time.Second).String())
	}
	return s
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
