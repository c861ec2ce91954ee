// Package pgparam checks PostgreSQL parameter values the way the server
// would, against the server's own description of each parameter (a row of
// pg_settings), so that a cluster-wide setting is refused before it reaches
// any server rather than by every server's reload.
package pgparam

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Spec is what pg_settings says about one parameter.
type Spec struct {
	Name string `json:"name"`
	// Vartype is bool, integer, real, string or enum.
	Vartype string `json:"vartype"`
	// Unit is the implicit unit of a number ("kB", "8kB", "ms", "s",
	// "min"), empty for none.
	Unit string `json:"unit,omitempty"`
	// Min and Max bound a number, as pg_settings prints them.
	Min string `json:"min,omitempty"`
	Max string `json:"max,omitempty"`
	// EnumVals are an enum's allowed values.
	EnumVals []string `json:"enumvals,omitempty"`
	// Context says when a change takes effect: "postmaster" needs a
	// restart; "internal" cannot be changed at all.
	Context string `json:"context"`
}

// NeedsRestart reports whether a new value takes effect only at restart.
func (s Spec) NeedsRestart() bool { return s.Context == "postmaster" }

// ManagedByVigil reports whether the agents set name themselves
// (replication and synchronous standbys follow the cluster's roles): a
// cluster-wide value would fight them.
func ManagedByVigil(name string) bool {
	switch name {
	case "synchronous_standby_names", "primary_conninfo", "primary_slot_name":
		return true
	}
	return false
}

// Check says what is wrong with value for spec, nil when the server would
// accept it.
func (s Spec) Check(value string) error {
	if ManagedByVigil(s.Name) {
		return fmt.Errorf("%s is set by Vigil's agents as the cluster's roles change; it cannot be set cluster-wide", s.Name)
	}
	switch s.Context {
	case "internal":
		return fmt.Errorf("%s is fixed when the server is built or initialised (context internal); it cannot be set", s.Name)
	}
	switch s.Vartype {
	case "bool":
		if _, ok := parseBool(value); !ok {
			return fmt.Errorf("%s is a boolean: %q is not on, off, true, false, yes, no, 1 or 0", s.Name, value)
		}
	case "enum":
		if !slices.ContainsFunc(s.EnumVals, func(v string) bool { return strings.EqualFold(v, value) }) {
			return fmt.Errorf("%s: %q is not one of %s", s.Name, value, strings.Join(s.EnumVals, ", "))
		}
	case "integer", "real":
		return s.checkNumber(value)
	case "string":
	default:
		return fmt.Errorf("%s has the unknown type %q", s.Name, s.Vartype)
	}
	return nil
}

func (s Spec) checkNumber(value string) error {
	n, err := s.parseNumber(value)
	if err != nil {
		return err
	}
	if s.Vartype == "integer" && n != math.Trunc(n) {
		return fmt.Errorf("%s is an integer: %q is not whole in its unit (%s)", s.Name, value, orNone(s.Unit))
	}
	lo, errLo := strconv.ParseFloat(s.Min, 64)
	hi, errHi := strconv.ParseFloat(s.Max, 64)
	if errLo == nil && errHi == nil && (n < lo || n > hi) {
		return fmt.Errorf("%s: %q is outside its range %s..%s (unit %s)", s.Name, value, s.Min, s.Max, orNone(s.Unit))
	}
	return nil
}

func orNone(unit string) string {
	if unit == "" {
		return "none"
	}
	return unit
}

// unitFactor is a unit suffix's size relative to a byte or to a
// millisecond, as the server reads it, and whether it measures time.
func unitFactor(unit string) (factor float64, isTime, ok bool) {
	switch unit {
	case "B":
		return 1, false, true
	case "kB":
		return 1 << 10, false, true
	case "MB":
		return 1 << 20, false, true
	case "GB":
		return 1 << 30, false, true
	case "TB":
		return 1 << 40, false, true
	case "us":
		return 0.001, true, true
	case "ms":
		return 1, true, true
	case "s":
		return 1000, true, true
	case "min":
		return 60000, true, true
	case "h":
		return 3600000, true, true
	case "d":
		return 86400000, true, true
	}
	return 0, false, false
}

// parseNumber reads value in the parameter's own unit: "8MB" for a
// parameter counted in 8kB pages is 1024.
func (s Spec) parseNumber(value string) (float64, error) {
	v := strings.TrimSpace(value)
	end := len(v)
	for end > 0 && (v[end-1] >= 'a' && v[end-1] <= 'z' || v[end-1] >= 'A' && v[end-1] <= 'Z') {
		end--
	}
	num, suffix := strings.TrimSpace(v[:end]), v[end:]
	var n float64
	if i, err := strconv.ParseInt(num, 0, 64); err == nil {
		n = float64(i)
	} else if f, err := strconv.ParseFloat(num, 64); err == nil {
		n = f
	} else {
		return 0, fmt.Errorf("%s is a number (%s): %q is not one", s.Name, s.Vartype, value)
	}
	if suffix == "" {
		return n, nil
	}
	base, scale := splitUnit(s.Unit)
	from, fromTime, ok := unitFactor(suffix)
	to, toTime, baseOK := unitFactor(base)
	if !ok || !baseOK || fromTime != toTime {
		return 0, fmt.Errorf("%s: unit %q is not valid here (the parameter's unit is %s)", s.Name, suffix, orNone(s.Unit))
	}
	return math.Round(n*from/(to*scale)*1e6) / 1e6, nil
}

// splitUnit splits pg_settings' "8kB" into kB and 8.
func splitUnit(unit string) (string, float64) {
	i := 0
	for i < len(unit) && unit[i] >= '0' && unit[i] <= '9' {
		i++
	}
	if i == 0 {
		return unit, 1
	}
	n, _ := strconv.ParseFloat(unit[:i], 64)
	return unit[i:], n
}

// parseBool reads a boolean as the server's parse_bool does: any
// unambiguous prefix of true, false, yes, no; on, off; 1, 0.
func parseBool(v string) (value, ok bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return false, false
	}
	for _, w := range []struct {
		word string
		val  bool
		min  int
	}{{"true", true, 1}, {"false", false, 1}, {"yes", true, 1}, {"no", false, 1}, {"on", true, 2}, {"off", false, 2}, {"1", true, 1}, {"0", false, 1}} {
		if len(v) >= w.min && strings.HasPrefix(w.word, v) {
			return w.val, true
		}
	}
	return false, false
}

// Catalog is every parameter of one server, by name.
type Catalog map[string]Spec

// ErrUnknown is a name the server has no parameter of.
var ErrUnknown = errors.New("not a parameter of this server")

// Check checks name = value.
func (c Catalog) Check(name, value string) error {
	spec, ok := c[strings.ToLower(name)]
	if !ok {
		return fmt.Errorf("%s is %w", name, ErrUnknown)
	}
	return spec.Check(value)
}
