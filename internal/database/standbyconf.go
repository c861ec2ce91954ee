package database

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Before PostgreSQL 12 (KingbaseES V8R3 included) a standby is configured
// by recovery.conf in the data directory, which also marks it as a standby;
// from 12 by settings in the server's configuration plus standby.signal. A
// server of the old kind started with only standby.signal would come up as a
// primary: the file must match the data directory's version.
const (
	recoveryConfFile        = "recovery.conf"
	majorStandbySignal      = 12
	dataDirVersionFile      = "PG_VERSION"
	recoveryTargetTimeline  = "latest"
	recoveryConfStandbyMode = "on"
)

// usesRecoveryConf reports whether the data directory belongs to a server
// older than 12, from its PG_VERSION file ("9.6", "15"). A directory without
// one (not a data directory yet, or a fork that names it otherwise) is
// taken as 12 or later.
func usesRecoveryConf(dataDir string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, dataDirVersionFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the data directory's version: %w", err)
	}
	text := strings.TrimSpace(string(data))
	major, err := strconv.Atoi(strings.SplitN(text, ".", 2)[0])
	if err != nil {
		return false, fmt.Errorf("data directory version %q in %s: %w", text, filepath.Join(dataDir, dataDirVersionFile), err)
	}
	return major < majorStandbySignal, nil
}

// recoveryConf is usesRecoveryConf for the server's data directory, read
// once it has a PG_VERSION: the agent asks every loop, and a directory's
// major version never changes (a rebuilt one is of the same server).
func (s *Server) recoveryConf() (bool, error) {
	if seen := s.recoveryConfSeen.Load(); seen != nil {
		return *seen, nil
	}
	old, err := usesRecoveryConf(s.Ctl.DataDir)
	if err != nil {
		return false, err
	}
	if _, statErr := os.Stat(filepath.Join(s.Ctl.DataDir, dataDirVersionFile)); statErr == nil {
		s.recoveryConfSeen.Store(&old)
	}
	return old, nil
}

// StandbyMarker is the file whose presence makes the server start as a
// standby: recovery.conf before 12, the flavor's standby.signal after.
func (s *Server) StandbyMarker() string {
	if old, err := s.recoveryConf(); err == nil && old {
		return filepath.Join(s.Ctl.DataDir, recoveryConfFile)
	}
	return filepath.Join(s.Ctl.DataDir, s.Flavor.StandbySignal)
}

// recoveryConf renders recovery.conf for a standby of conninfo: old is the
// current file, whose other settings (restore_command, ...) are kept.
func recoveryConf(old, conninfo, slot string) string {
	replaced := map[string]bool{"standby_mode": true, "primary_conninfo": true, "primary_slot_name": true, "recovery_target_timeline": true}
	body := keepSettings(old, replaced)
	body += fmt.Sprintf("standby_mode = %s\nprimary_conninfo = %s\n", quoteLiteral(recoveryConfStandbyMode), quoteLiteral(conninfo))
	if slot != "" {
		body += fmt.Sprintf("primary_slot_name = %s\n", quoteLiteral(slot))
	}
	return body + fmt.Sprintf("recovery_target_timeline = %s\n", quoteLiteral(recoveryTargetTimeline))
}

// keepSettings returns the lines of a configuration file that do not set one
// of the replaced keys, ending in a newline when not empty.
func keepSettings(old string, replaced map[string]bool) string {
	var kept []string
	for _, line := range strings.SplitAfter(old, "\n") {
		key := strings.TrimSpace(strings.SplitN(strings.TrimSpace(line), "=", 2)[0])
		if replaced[key] || line == "" {
			continue
		}
		kept = append(kept, line)
	}
	body := strings.Join(kept, "")
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	return body
}
