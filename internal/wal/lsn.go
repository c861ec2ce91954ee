// Package wal holds the values that name a place in PostgreSQL's history:
// a write-ahead log position and a timeline. It has no I/O and no
// dependency, so the decision core can use them without pulling in a
// database driver.
package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the write-ahead log. Zero means unknown.
type LSN uint64

// ParseLSN reads PostgreSQL's textual form "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("parse LSN %q: want the form X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// MarshalText renders the LSN in PostgreSQL's form, so JSON and logs show
// what an operator would type into SQL.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Sub returns l - o in bytes, or 0 when o is ahead.
func (l LSN) Sub(o LSN) uint64 {
	if o >= l {
		return 0
	}
	return uint64(l - o)
}
