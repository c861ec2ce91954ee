package check

import (
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// at is a moment of a crafted campaign, s seconds after its start.
func at(s float64) time.Time {
	return time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

// ack is a write node acknowledged at end seconds on timeline tl, 50 ms
// after it began, at the given WAL offset.
func ack(id int64, end float64, node string, tl uint32, lsn uint32) history.Write {
	return history.Write{ID: id, Route: history.RouteVIP, Start: at(end - 0.05), End: at(end), Outcome: history.OK,
		Server: "10.0.0." + node[len(node)-1:], Node: node, SystemID: "7312", Timeline: tl, LSN: fmt.Sprintf("0/%X", lsn)}
}

func failed(id int64, end float64, o history.Outcome, r history.Route) history.Write {
	return history.Write{ID: id, Route: r, Start: at(end - 0.05), End: at(end), Outcome: o, Error: string(o)}
}

// fork is where timeline 1 ended on the final primary.
const fork = 0x3000000

// campaign is a clean failover in sync mode off: node1 (timeline 1)
// acknowledges writes 1-10 until 9 s, is crashed at 10 s (step 1), the
// client sees three connection errors, node2 is promoted on timeline 2 and
// acknowledges writes 14-20 from 13 s; the fault is healed at 20 s and the
// cluster whole again at 22 s. Every write is on the final primary.
func campaign() history.History {
	h := history.History{
		Run: history.Run{Seed: 7, Duration: history.Duration(30 * time.Second), Faults: []string{"node-crash"}, SyncMode: "off",
			DCS: "embedded", Nodes: []string{"node1", "node2", "node3"}, LeaseTTL: history.Duration(10 * time.Second),
			MaxLag: 1 << 20, Started: at(-1), Ended: at(30), Command: "vigil chaos --seed 7 --duration 30s --out /tmp/c"},
		Faults: []history.Fault{{Step: 1, Type: "node-crash", Target: "node1", Injected: at(10), Healed: at(20), Recovered: at(22),
			RecoveryBound: history.Duration(30 * time.Second), PrimaryBefore: "node1", PrimaryAfter: "node2"}},
		Final: history.Final{At: at(29), Primary: "node2", SystemID: "7312", Timeline: 2,
			Forks: []history.Fork{{Timeline: 2, Parent: 1, LSN: fmt.Sprintf("0/%X", fork)}}, Streaming: []string{"node1", "node3"}},
	}
	for i := int64(1); i <= 10; i++ {
		h.Writes = append(h.Writes, ack(i, float64(i-1), "node1", 1, fork-0x1000+uint32(i)*0x80))
	}
	for i := int64(11); i <= 13; i++ {
		h.Writes = append(h.Writes, failed(i, 10+float64(i-11)*0.5, history.Connection, history.RouteVIP))
	}
	for i := int64(14); i <= 20; i++ {
		h.Writes = append(h.Writes, ack(i, 13.1+float64(i-14), "node2", 2, fork+uint32(i)*0x80))
	}
	for _, w := range h.Writes {
		if w.Outcome == history.OK {
			h.Final.Present = append(h.Final.Present, w.ID)
		}
	}
	return h
}

// drop removes ids from the final primary's rows.
func drop(h *history.History, ids ...int64) {
	h.Final.Present = slices.DeleteFunc(h.Final.Present, func(id int64) bool { return slices.Contains(ids, id) })
}
