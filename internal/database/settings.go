package database

import (
	"strings"
	"unicode"
)

// ParseConninfo reads a libpq keyword/value connection string
// ("host=a port=5432 application_name='x y'").
func ParseConninfo(s string) map[string]string {
	out := map[string]string{}
	i := 0
	for i < len(s) {
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
		start := i
		for i < len(s) && s[i] != '=' && !unicode.IsSpace(rune(s[i])) {
			i++
		}
		key := s[start:i]
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			break
		}
		i++
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
			i++
		} else {
			for i < len(s) && !unicode.IsSpace(rune(s[i])) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		if key != "" {
			out[key] = val.String()
		}
	}
	return out
}

// ParseSyncStandbyNames returns the standby names in a
// synchronous_standby_names value, in any of its forms: "a, b",
// "FIRST 1 (a, b)", "ANY 2 ("a", "b")", "2 (a, b)". "*" is returned as is.
func ParseSyncStandbyNames(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if open := strings.IndexByte(v, '('); open >= 0 {
		end := strings.LastIndexByte(v, ')')
		if end < open {
			end = len(v)
		}
		v = v[open+1 : end]
	}
	var names []string
	for _, part := range strings.Split(v, ",") {
		name := strings.TrimSpace(part)
		if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
			name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
		}
		if name != "" {
			names = append(names, name)
		}
	}
	return names
}
