package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-ha/vigil/internal/flavor"
)

// StateFile is the name of the lab's state file inside its directory.
const StateFile = "lab.json"

// stateVersion changes when an older vigil could no longer remove a lab
// described by a newer state file.
const stateVersion = 1

// state is everything a lab created, written after each step of Up so that
// Down can remove a half-built lab. Down removes what is listed here and
// nothing else.
type state struct {
	Version   int         `json:"version"`
	ID        string      `json:"id"`
	Dir       string      `json:"dir"`
	CreatedAt time.Time   `json:"created_at"`
	Flavor    flavor.Name `json:"flavor"`
	BinDir    string      `json:"bin_dir"`
	// OSUser runs the database processes; empty means the user who ran Up
	// (who was not root).
	OSUser string `json:"os_user,omitempty"`

	Superuser       string `json:"superuser"`
	ReplicationUser string `json:"replication_user"`

	// ParentDirs are ancestors of Dir that Up created, outermost first.
	ParentDirs []string `json:"parent_dirs,omitempty"`

	Netns bool `json:"netns"`
	// Empty: the nodes were left without data directories (Options.Empty).
	Empty       bool     `json:"empty,omitempty"`
	Subnet      string   `json:"subnet,omitempty"`
	SubnetClaim string   `json:"subnet_claim,omitempty"`
	Bridge      string   `json:"bridge,omitempty"`
	Links       []string `json:"links,omitempty"` // host ends of veth pairs
	Namespaces  []string `json:"namespaces,omitempty"`

	Nodes []nodeState `json:"nodes"`
	// Clients are hosts without a database (AddClient).
	Clients []Client `json:"clients,omitempty"`
}

type nodeState struct {
	Node
	// PIDs are the postmasters the lab started on this node.
	PIDs []int `json:"pids,omitempty"`
	// Built is set once the node's data directory is complete and its
	// server has run.
	Built bool `json:"built"`
}

func statePath(dir string) string { return filepath.Join(dir, StateFile) }

// save writes the state atomically: a reader never sees half a file, and a
// crash leaves either the old or the new list.
func (s *state) save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	path := statePath(s.Dir)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

func loadState(dir string) (state, error) {
	var s state
	data, err := os.ReadFile(statePath(dir))
	if err != nil {
		return s, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("read lab state %s: %w", statePath(dir), err)
	}
	if s.Version != stateVersion {
		return s, fmt.Errorf("lab state %s has version %d, this vigil reads version %d", statePath(dir), s.Version, stateVersion)
	}
	return s, nil
}
