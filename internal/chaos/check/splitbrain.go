package check

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// identity is one server's history: the node (its address when the name is
// unknown), the cluster it belongs to and the timeline it wrote on. A
// promotion always starts a new timeline, so an old primary and its
// successor are two identities even on the same node.
type identity struct {
	Server   string
	SystemID string
	Timeline uint32
}

func (id identity) String() string {
	return fmt.Sprintf("%s (system %s, timeline %d)", id.Server, id.SystemID, id.Timeline)
}

func identityOf(w history.Write) identity {
	return identity{Server: cmp.Or(w.Node, w.Server), SystemID: w.SystemID, Timeline: w.Timeline}
}

// acks are the acknowledged writes of one identity, with the span in which
// it certainly accepted writes: from its first acknowledgement (firstEnd)
// to the start of its last acknowledged write (lastStart).
type acks struct {
	id                  identity
	writes              []history.Write
	firstEnd, lastStart time.Time
}

// servers groups the acknowledged writes by identity, by first
// acknowledgement.
func (c *checker) servers() []*acks {
	by := map[identity]*acks{}
	var out []*acks
	anonymous, nameless := 0, 0
	for _, w := range c.h.Writes {
		if w.Outcome != history.OK {
			continue
		}
		if w.Node == "" && w.Server == "" {
			anonymous++
			continue
		}
		if w.Node == "" {
			nameless++
		}
		id := identityOf(w)
		a := by[id]
		if a == nil {
			a = &acks{id: id, firstEnd: w.End, lastStart: w.Start}
			by[id] = a
			out = append(out, a)
		}
		a.writes = append(a.writes, w)
		if w.End.Before(a.firstEnd) {
			a.firstEnd = w.End
		}
		if w.Start.After(a.lastStart) {
			a.lastStart = w.Start
		}
	}
	if anonymous > 0 {
		c.warn("%d acknowledged write(s) name no server: left out of the split-brain check", anonymous)
	}
	if nameless > 0 {
		c.warn("%d acknowledged write(s) name no node: identified by address, so one server reached by two addresses looks like two", nameless)
	}
	slices.SortStableFunc(out, func(a, b *acks) int { return a.firstEnd.Compare(b.firstEnd) })
	return out
}

// splitBrain reports every pair of identities that accepted writes at the
// same time. The client knows a commit only to lie between the write's
// Start and its End, so the check asks for certainty, not for overlapping
// acknowledgement times: A and B overlap when A began a write it got
// acknowledged after B had acknowledged one, and B began one after A had.
// An old primary's acknowledgement that arrives late (a slow link) for a
// commit made before the new primary's first is thus not split brain, but a
// write the old primary accepted after the new one acknowledged its first
// always is.
func (c *checker) splitBrain() []Violation {
	srv := c.servers()
	var out []Violation
	for i, a := range srv {
		for _, b := range srv[i+1:] {
			if !a.lastStart.After(b.firstEnd) || !b.lastStart.After(a.firstEnd) {
				continue
			}
			var late, early []history.Write
			for _, w := range a.writes {
				if w.Start.After(b.firstEnd) {
					late = append(late, w)
				}
			}
			for _, w := range b.writes {
				if w.End.Before(a.lastStart) {
					early = append(early, w)
				}
			}
			out = append(out, c.violation(SplitBrain, c.inEffect(b.firstEnd), b.firstEnd, ids(append(late, early...)),
				"%s acknowledged %d write(s) begun after %s had acknowledged its first at %s; %s acknowledged %d before %s's last began at %s",
				a.id, len(late), b.id, clock(b.firstEnd), b.id.Server, len(early), a.id.Server, clock(a.lastStart)))
		}
	}
	return out
}

// clock renders a time in messages: to the millisecond, in the history's zone.
func clock(t time.Time) string { return t.Format("15:04:05.000") }
