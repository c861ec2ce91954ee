package pglog

import (
	"time"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
)

// Placer puts one file's timestamps on the timeline. A file whose first
// timestamp has no zone is floating (sink.Floating): its times stay
// wall-clock fields until the analysis places them. In a zoned file a line
// without a zone is in the zone last written. It serves every log that
// stamps its lines the way PostgreSQL's log_line_prefix does, Pgpool-II's
// too.
type Placer struct {
	sink     *event.Sink
	res      *clock.Resolver
	decided  bool
	lastZone string
	// started: a timed line was seen, and last is the latest one.
	started  bool
	last     clock.Stamp
	zoneWarn bool
}

// NewPlacer returns a placer for the file read into sink.
func NewPlacer(sink *event.Sink, res *clock.Resolver) *Placer {
	return &Placer{sink: sink, res: res}
}

// Instant places a stamp: an instant for a zoned file, wall-clock fields
// for a floating one. ok is false when the stamp cannot be placed; a zone
// that cannot be resolved is warned about once.
func (p *Placer) Instant(s clock.Stamp) (time.Time, bool) {
	if !p.decided {
		p.decided = true
		p.sink.Floating = s.Zone == ""
	}
	if p.sink.Floating {
		return s.Wall, true
	}
	if s.Zone == "" {
		s.Zone = p.lastZone
	} else {
		p.lastZone = s.Zone
	}
	t, ok, err := p.res.Resolve(s)
	if err != nil {
		if !p.zoneWarn {
			p.sink.Warnf("%v", err)
			p.zoneWarn = true
		}
		return time.Time{}, false
	}
	return t, ok
}

// Place is Instant for a line that becomes an event: the zone it was
// written with is counted for the file.
func (p *Placer) Place(s clock.Stamp) (time.Time, bool) {
	t, ok := p.Instant(s)
	if ok {
		p.sink.Zone(s.Zone)
	}
	return t, ok
}

// Timed records a line's stamp for the file's time range. Only the first
// and last are placed (the last by Finish), which keeps ordinary lines
// cheap.
func (p *Placer) Timed(s clock.Stamp) {
	if !p.started {
		p.started = true
		if t, ok := p.Instant(s); ok {
			p.sink.Extend(t)
			p.sink.Zone(s.Zone)
		}
	}
	p.last = s
	p.sink.Timed++
}

// Finish places the last timestamp seen.
func (p *Placer) Finish() {
	if !p.started {
		return
	}
	if t, ok := p.Instant(p.last); ok {
		p.sink.Extend(t)
	}
}
