package check

import (
	"fmt"
	"slices"

	"github.com/vigil-ha/vigil/internal/chaos/history"
	"github.com/vigil-ha/vigil/internal/wal"
)

// losses lists every acknowledged write missing from the final primary and
// judges them by the sync mode: in on and strict none may be lost; in off
// each failover may lose up to maximum_lag_on_failover bytes, and a loss
// that cannot be measured is not trusted to be within it. Writes whose
// outcome is unknown are neither acknowledged nor lost.
func (c *checker) losses() ([]Lost, []Violation) {
	fin := c.h.Final
	if fin.Primary == "" {
		c.warn("no final primary: lost writes not checked")
		return nil, nil
	}
	present := make(map[int64]bool, len(fin.Present))
	for _, id := range fin.Present {
		present[id] = true
	}
	sync := c.syncMode()
	forks := c.forks()
	var lost []Lost
	late := 0
	var refused []int64
	for _, w := range c.h.Writes {
		if w.Outcome != history.OK {
			if present[w.ID] && w.Outcome != history.Unknown {
				refused = append(refused, w.ID)
			}
			continue
		}
		if present[w.ID] {
			continue
		}
		if !fin.At.IsZero() && w.End.After(fin.At) {
			late++ // acknowledged after the final primary was read: cannot say
			continue
		}
		l := Lost{ID: w.ID, Timeline: w.Timeline, LSN: w.LSN, Step: c.causedBy(w.End), Acked: w.End, Bytes: -1}
		if n, err := c.lossBytes(w, forks); err != nil {
			l.Unmeasured = err.Error()
		} else {
			l.Bytes = n
			l.WithinBound = !sync && n <= c.maxLag()
		}
		lost = append(lost, l)
	}
	if late > 0 {
		c.warn("%d acknowledged write(s) ended after the final state was read: not checked for loss", late)
	}
	if len(refused) > 0 {
		c.warn("%d write(s) the client saw fail were committed (the error was misclassified): ids %v", len(refused), head(refused))
	}
	return lost, c.lossViolations(lost, sync)
}

// lossViolations groups the lost writes that break the mode's promise by
// the fault that caused them.
func (c *checker) lossViolations(lost []Lost, sync bool) []Violation {
	byStep := map[int][]Lost{}
	var steps []int
	for _, l := range lost {
		if l.WithinBound {
			continue
		}
		if _, ok := byStep[l.Step]; !ok {
			steps = append(steps, l.Step)
		}
		byStep[l.Step] = append(byStep[l.Step], l)
	}
	var out []Violation
	for _, s := range steps {
		ls := byStep[s]
		ids := make([]int64, len(ls))
		worst, unmeasured := int64(0), 0
		for i, l := range ls {
			ids[i] = l.ID
			worst = max(worst, l.Bytes)
			if l.Bytes < 0 {
				unmeasured++
			}
		}
		slices.Sort(ids)
		if sync {
			out = append(out, c.violation(LostWrite, s, ls[0].Acked, ids,
				"%d acknowledged write(s) missing from the final primary %s in sync mode %s", len(ls), c.h.Final.Primary, c.h.Run.SyncMode))
			continue
		}
		out = append(out, c.violation(LossBeyondLag, s, ls[0].Acked, ids,
			"%d lost write(s) beyond maximum_lag_on_failover %d bytes: largest loss %d bytes, %d not measurable (no fork of their timeline on the final primary, or no LSN)",
			len(ls), c.maxLag(), worst, unmeasured))
	}
	return out
}

func (c *checker) syncMode() bool {
	switch c.h.Run.SyncMode {
	case "on", "strict":
		return true
	case "off":
		return false
	}
	c.warn("sync mode %q unknown: judged as off", c.h.Run.SyncMode)
	return false
}

func (c *checker) maxLag() int64 {
	if c.o.MaxLag > 0 {
		return c.o.MaxLag
	}
	return c.h.Run.MaxLag
}

// forks maps a timeline to where the final primary's history left it.
func (c *checker) forks() map[uint32]wal.LSN {
	out := map[uint32]wal.LSN{}
	for _, f := range c.h.Final.Forks {
		lsn, err := wal.ParseLSN(f.LSN)
		if err != nil {
			c.warn("fork of timeline %d: %v", f.Timeline, err)
			continue
		}
		out[f.Parent] = lsn
	}
	return out
}

// lossBytes is how much WAL past the fork of its timeline a lost write
// lies: what the failover that ended its timeline threw away up to it.
func (c *checker) lossBytes(w history.Write, forks map[uint32]wal.LSN) (int64, error) {
	if fin := c.h.Final; fin.SystemID != "" && w.SystemID != "" && fin.SystemID != w.SystemID {
		return 0, fmt.Errorf("write %d: system %s is not the final primary's %s", w.ID, w.SystemID, fin.SystemID)
	}
	fork, ok := forks[w.Timeline]
	if !ok {
		return 0, fmt.Errorf("write %d: timeline %d did not end on the final primary's history", w.ID, w.Timeline)
	}
	lsn, err := wal.ParseLSN(w.LSN)
	if err != nil {
		return 0, fmt.Errorf("write %d: %w", w.ID, err)
	}
	return int64(lsn.Sub(fork)), nil
}

// head keeps messages short: the first ids of a long list.
func head(ids []int64) []int64 {
	if len(ids) > 20 {
		return ids[:20]
	}
	return ids
}
