package report

import (
	"encoding/json"
	"io"

	"github.com/vigil-ha/vigil/internal/analyze"
)

// JSON writes the report as one JSON object: files, milestones (time,
// kind, source, file, line, text), client_errors, failovers, findings (the
// last failover's) and warnings.
func JSON(w io.Writer, rep *analyze.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
