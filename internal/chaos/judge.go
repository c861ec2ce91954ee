package chaos

import (
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/check"
	"github.com/vigil-ha/vigil/internal/chaos/history"
)

// Judge loads the campaign in dir, runs the history checker on it and
// writes its reports (report.json, report.html) next to the history.
// bound is the recovery bound of faults that record none.
func Judge(dir string, bound time.Duration) (history.History, check.Result, error) {
	h, err := history.Load(dir)
	if err != nil {
		return h, check.Result{}, err
	}
	res := check.Check(h, check.Options{RecoveryBound: bound})
	if err := check.WriteReports(dir, h, res); err != nil {
		return h, res, fmt.Errorf("write the reports: %w", err)
	}
	return h, res, nil
}
