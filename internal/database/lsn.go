package database

import "github.com/vigil-ha/vigil/internal/wal"

// parseOptionalLSN reads a nullable LSN column scanned as text.
func parseOptionalLSN(s *string) (wal.LSN, error) {
	if s == nil || *s == "" {
		return 0, nil
	}
	return wal.ParseLSN(*s)
}
