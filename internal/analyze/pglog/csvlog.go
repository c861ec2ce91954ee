package pglog

import (
	"bytes"
	"context"

	"github.com/vigil-ha/vigil/internal/analyze/clock"
	"github.com/vigil-ha/vigil/internal/analyze/event"
	"github.com/vigil-ha/vigil/internal/analyze/input"
)

// csvlog columns (PostgreSQL 9.6 to 15; later versions only append).
const (
	csvTime     = 0
	csvSeverity = 11
	csvState    = 12
	csvMessage  = 13
	csvQuery    = 19
	csvMinCols  = 14
)

// Limits of one csvlog record: a message may span lines, but a quote that
// never closes must not swallow the rest of the file.
const (
	maxRecordLines = 1000
	maxRecordBytes = 1 << 20
)

// SniffCSV scores how much sample looks like a csvlog.
func SniffCSV(sample []byte) int {
	var lines, good int
	for _, l := range sampleLines(sample) {
		if len(l) == 0 {
			continue
		}
		if _, n, ok := clock.Parse(l); ok {
			lines++
			if n < len(l) && l[n] == ',' && bytes.Count(l, []byte(",")) >= csvMinCols {
				good++
			}
		}
	}
	if good == 0 {
		return 0
	}
	return 40 + 50*good/max(lines, 1)
}

// ParseCSV reads a csvlog into sink. Records are assembled from lines by
// tracking quotes, so that they stay bounded (encoding/csv keeps a record
// whole in memory however long it grows).
// Cancellation comes through lines (input.NewLinesContext).
func ParseCSV(_ context.Context, lines *input.Lines, sink *event.Sink, res *clock.Resolver) error {
	st := newState(sink, res)
	var rec []byte
	var recLine int64
	var recLines int
	open := false
	var fields [][]byte
	flush := func() {
		if len(rec) == 0 {
			return
		}
		fields = splitCSV(rec, fields[:0])
		csvRecord(st, fields, recLine, rec)
		rec = rec[:0]
	}
	for {
		b, ok := lines.Next()
		if !ok {
			break
		}
		n := lines.Line()
		if open {
			// A line that starts like a new record ends a broken one.
			if _, k, ok := clock.Parse(b); ok && k < len(b) && b[k] == ',' {
				sink.Unrecognised(recLine)
				rec, open = rec[:0], false
			} else if recLines >= maxRecordLines || len(rec)+len(b) > maxRecordBytes {
				sink.Unrecognised(recLine)
				sink.Warnf("line %d: a quoted field never closes: record dropped", recLine)
				rec, open = rec[:0], false
				continue
			} else {
				rec = append(rec, '\n')
				rec = append(rec, b...)
				recLines++
				if bytes.Count(b, []byte(`"`))%2 == 1 {
					open = false
					flush()
				}
				continue
			}
		}
		if len(b) == 0 {
			continue
		}
		rec = append(rec[:0], b...)
		recLine, recLines = n, 1
		if bytes.Count(b, []byte(`"`))%2 == 1 {
			open = true
			continue
		}
		flush()
	}
	if open {
		sink.Unrecognised(recLine)
		sink.Warnf("line %d: the file ends inside a quoted field (truncated?)", recLine)
	}
	st.finish("csvlog")
	return lines.Canceled()
}

func csvRecord(st *state, f [][]byte, line int64, raw []byte) {
	if len(f) < csvMinCols {
		st.sink.Unrecognised(line)
		return
	}
	s, _, ok := clock.Parse(f[csvTime])
	if !ok {
		st.sink.Unrecognised(line)
		return
	}
	sev := severityOf(f[csvSeverity])
	if sev == sevNone {
		st.sink.Unrecognised(line)
		return
	}
	st.Timed(s)
	before := st.lastError.line
	st.message(s, sev, f[csvMessage], string(f[csvState]), line, raw)
	if st.lastError.line == line && st.lastError.line != before && len(f) > csvQuery && len(f[csvQuery]) > 0 {
		st.statement(line, f[csvQuery])
	}
}

// splitCSV splits one record into fields, unquoting them. Fields are
// sub-slices of rec where no unescaping was needed.
func splitCSV(rec []byte, out [][]byte) [][]byte {
	i := 0
	for {
		if i < len(rec) && rec[i] == '"' {
			i++
			start := i
			var buf []byte
			for i < len(rec) {
				if rec[i] == '"' {
					if i+1 < len(rec) && rec[i+1] == '"' {
						if buf == nil {
							buf = append([]byte(nil), rec[start:i]...)
						}
						buf = append(buf, '"')
						i += 2
						continue
					}
					break
				}
				if buf != nil {
					buf = append(buf, rec[i])
				}
				i++
			}
			if buf != nil {
				out = append(out, buf)
			} else {
				out = append(out, rec[start:min(i, len(rec))])
			}
			i++ // closing quote
			if i < len(rec) && rec[i] == ',' {
				i++
				continue
			}
			return out
		}
		j := bytes.IndexByte(rec[i:], ',')
		if j < 0 {
			return append(out, rec[i:])
		}
		out = append(out, rec[i:i+j])
		i += j + 1
	}
}
