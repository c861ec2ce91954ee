package stability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// releaseMsg is what an agent logs when it gives the leader key up by
// itself (package agent, action release_leader), with the decision's
// reason.
const releaseMsg = "leader key released"

// releases counts, by reason, the times an agent in dir (its JSON logs,
// *.agent.log) gave the leader key up between from and to. The key's
// history cannot tell a release from an expiry (both delete the key with
// its lease): the losses not released were expiries, renewals that
// missed the lease.
func releases(dir string, from, to time.Time) (map[string]int, error) {
	logs, err := filepath.Glob(filepath.Join(dir, "*.agent.log"))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, path := range logs {
		if err := countReleases(path, from, to, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func countReleases(path string, from, to time.Time, out map[string]int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read the agent log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Time   time.Time `json:"time"`
			Msg    string    `json:"msg"`
			Reason string    `json:"reason"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Msg != releaseMsg {
			continue // not a record of the agent's (a panic's lines) or another one
		}
		if !rec.Time.Before(from) && !rec.Time.After(to) {
			out[rec.Reason]++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
