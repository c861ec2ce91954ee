// Package clock reads the timestamps that database and cluster logs write
// and turns them into instants. Logs disagree about zones: PostgreSQL's
// prefix carries an abbreviation ("CST", "UTC", "+08"), failover scripts
// carry none. An abbreviation alone is ambiguous ("CST" is China and US
// Central), so the resolver prefers the zone the operator named, then the
// machine's, and says when it had to guess.
package clock

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stamp is a timestamp as written: wall-clock fields, the zone text that
// followed them (possibly empty) and the precision the text carries.
type Stamp struct {
	Wall      time.Time // the fields, in UTC; not an instant until resolved
	Zone      string
	Precision time.Duration
}

// maxScan is how far into a line a timestamp is looked for: prefixes put it
// first or after a short tag ("< ", "[").
const maxScan = 48

// Find looks for "YYYY-MM-DD HH:MM:SS[.frac][ ZONE]" near the start of b and
// returns it with the offset just past it.
func Find(b []byte) (Stamp, int, bool) {
	limit := min(len(b), maxScan)
	for i := 0; i+19 <= len(b) && i < limit; i++ {
		if b[i] == '1' || b[i] == '2' {
			if s, n, ok := Parse(b[i:]); ok {
				return s, i + n, true
			}
		}
	}
	return Stamp{}, 0, false
}

// Parse reads a timestamp at the start of b: date, 'T' or ' ', time,
// optional fraction (any digits; nanoseconds kept), and an optional zone:
// "Z", a numeric offset ("+08", "+0800", "-05:30") or an abbreviation of 2
// to 5 letters after one space. It returns the bytes consumed.
func Parse(b []byte) (Stamp, int, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return Stamp{}, 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	h, ok4 := digits(b[11:13])
	mi, ok5 := digits(b[14:16])
	s, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 {
		return Stamp{}, 0, false
	}
	n := 19
	prec := time.Second
	ns := 0
	if n < len(b) && (b[n] == '.' || b[n] == ',') && n+1 < len(b) && isDigit(b[n+1]) {
		n++
		scale := 100000000
		digitsSeen := 0
		for n < len(b) && isDigit(b[n]) {
			if digitsSeen < 9 {
				ns += int(b[n]-'0') * scale
				scale /= 10
			}
			digitsSeen++
			n++
		}
		prec = time.Duration(1)
		for i := min(digitsSeen, 9); i < 9; i++ {
			prec *= 10
		}
	}
	st := Stamp{Wall: time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC), Precision: prec}
	// Zone: "Z", an offset glued on, or " ABBR"/" +08".
	switch {
	case n < len(b) && b[n] == 'Z':
		st.Zone = "Z"
		n++
	case n < len(b) && (b[n] == '+' || b[n] == '-'):
		if z, k := offsetText(b[n:]); k > 0 {
			st.Zone = z
			n += k
		}
	case n+1 < len(b) && b[n] == ' ':
		if b[n+1] == '+' || b[n+1] == '-' {
			if z, k := offsetText(b[n+1:]); k > 0 {
				st.Zone = z
				n += 1 + k
			}
		} else if k := letters(b[n+1:]); k >= 2 && k <= 5 && (n+1+k == len(b) || !isLetter(b[n+1+k])) && !notZone(b[n+1:n+1+k]) {
			st.Zone = string(b[n+1 : n+1+k])
			n += 1 + k
		}
	}
	return st, n, true
}

// offsetText reads "+08", "+0800", "+08:00" and returns it with its length.
func offsetText(b []byte) (string, int) {
	if len(b) < 3 || !isDigit(b[1]) || !isDigit(b[2]) {
		return "", 0
	}
	k := 3
	switch {
	case len(b) >= 6 && b[3] == ':' && isDigit(b[4]) && isDigit(b[5]):
		k = 6
	case len(b) >= 5 && isDigit(b[3]) && isDigit(b[4]):
		k = 5
	}
	if k < len(b) && isDigit(b[k]) {
		return "", 0 // a number, not an offset
	}
	return string(b[:k]), k
}

func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func letters(b []byte) int {
	k := 0
	for k < len(b) && isLetter(b[k]) {
		k++
	}
	return k
}

// notZone rejects words that follow a time in application logs but are
// not zones: severities, and anything in lower case.
func notZone(w []byte) bool {
	for _, c := range w {
		if c < 'A' || c > 'Z' {
			return true
		}
	}
	switch string(w) {
	case "LOG", "INFO", "ERROR", "FATAL", "PANIC", "DEBUG", "WARN", "TRACE":
		return true
	}
	return false
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }

// knownAbbrev are abbreviations PostgreSQL prints for common log_timezone
// settings. Where one name means several zones the first listed is the
// guess made when neither --tz nor the machine's zone uses the name.
var knownAbbrev = map[string][]int{
	"UTC": {0}, "GMT": {0}, "UT": {0}, "Z": {0},
	"CST":  {8 * 3600, -6 * 3600}, // China Standard Time, US Central
	"CDT":  {-5 * 3600},
	"EST":  {-5 * 3600},
	"EDT":  {-4 * 3600},
	"MST":  {-7 * 3600},
	"MDT":  {-6 * 3600},
	"PST":  {-8 * 3600},
	"PDT":  {-7 * 3600},
	"HKT":  {8 * 3600},
	"SGT":  {8 * 3600},
	"AWST": {8 * 3600},
	"JST":  {9 * 3600},
	"KST":  {9 * 3600},
	"IST":  {5*3600 + 1800, 3600}, // India, Ireland (summer)
	"CET":  {3600},
	"CEST": {7200},
	"EET":  {7200},
	"EEST": {10800},
	"MSK":  {10800},
	"WET":  {0},
	"WEST": {3600},
	"BST":  {3600},
	"AEST": {10 * 3600},
	"AEDT": {11 * 3600},
}

// Resolver turns stamps into instants. It is used by one goroutine: each
// file's parser has its own.
type Resolver struct {
	// TZ is the zone named with --tz (nil: none named).
	TZ *time.Location
	// Local is the machine's zone.
	Local *time.Location
	cache map[string]resolved
	// Guesses lists abbreviations resolved by the table alone, for a warning.
	Guesses map[string]string
}

type resolved struct {
	loc *time.Location
	err error
}

// NewResolver resolves with tz (may be nil) and local (time.Local if nil).
func NewResolver(tz, local *time.Location) *Resolver {
	if local == nil {
		local = time.Local
	}
	return &Resolver{TZ: tz, Local: local, cache: map[string]resolved{}, Guesses: map[string]string{}}
}

// Resolve returns the instant a stamp names. A stamp without a zone is
// floating: the caller places it once the files' zones are known (see
// Place), so Resolve reports ok=false for it.
func (r *Resolver) Resolve(s Stamp) (time.Time, bool, error) {
	if s.Zone == "" {
		return time.Time{}, false, nil
	}
	z, ok := r.cache[s.Zone]
	if !ok {
		z = r.lookup(s.Zone, s.Wall)
		r.cache[s.Zone] = z
	}
	if z.err != nil {
		return time.Time{}, false, z.err
	}
	return Place(s.Wall, z.loc), true, nil
}

func (r *Resolver) lookup(zone string, wall time.Time) resolved {
	if zone == "Z" {
		return resolved{loc: time.UTC}
	}
	if zone[0] == '+' || zone[0] == '-' {
		secs, err := ParseOffset(zone)
		if err != nil {
			return resolved{err: err}
		}
		return resolved{loc: time.FixedZone(zone, secs)}
	}
	// An abbreviation: the operator's zone first, then the machine's, when
	// either calls some instant near this one by that name.
	for _, loc := range []*time.Location{r.TZ, r.Local} {
		if loc == nil {
			continue
		}
		// The offset is the one the name stands for in that zone: "CST"
		// in Chicago is UTC-6 even on a September date, when Chicago
		// itself is on CDT.
		y := wall.Year()
		for _, probe := range []time.Time{wall, time.Date(y, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(y, 7, 15, 12, 0, 0, 0, time.UTC)} {
			if name, off := Place(probe, loc).Zone(); name == zone {
				return resolved{loc: time.FixedZone(zone, off)}
			}
		}
	}
	offs, ok := knownAbbrev[strings.ToUpper(zone)]
	if !ok {
		return resolved{err: fmt.Errorf("time zone %q is unknown: name it with --tz", zone)}
	}
	if len(offs) > 1 || zone == "IST" {
		r.Guesses[zone] = fmt.Sprintf("%q is ambiguous: read as UTC%s; name the zone with --tz if that is wrong", zone, FormatOffset(offs[0]))
	}
	return resolved{loc: time.FixedZone(zone, offs[0])}
}

// ParseOffset reads "+08", "+0800" or "-05:30" as seconds east of UTC.
func ParseOffset(z string) (int, error) {
	if len(z) < 3 || (z[0] != '+' && z[0] != '-') {
		return 0, fmt.Errorf("offset %q: want +HH, +HHMM or +HH:MM", z)
	}
	body := strings.ReplaceAll(z[1:], ":", "")
	h, err := strconv.Atoi(body[:2])
	if err != nil {
		return 0, fmt.Errorf("offset %q: %w", z, err)
	}
	m := 0
	if len(body) == 4 {
		if m, err = strconv.Atoi(body[2:]); err != nil {
			return 0, fmt.Errorf("offset %q: %w", z, err)
		}
	} else if len(body) != 2 {
		return 0, fmt.Errorf("offset %q: want +HH, +HHMM or +HH:MM", z)
	}
	if h > 15 || m > 59 {
		return 0, fmt.Errorf("offset %q is out of range", z)
	}
	secs := h*3600 + m*60
	if z[0] == '-' {
		secs = -secs
	}
	return secs, nil
}

// FormatOffset writes seconds east of UTC as "+08:00".
func FormatOffset(secs int) string {
	sign := '+'
	if secs < 0 {
		sign = '-'
		secs = -secs
	}
	return fmt.Sprintf("%c%02d:%02d", sign, secs/3600, secs/60%60)
}

// Place reads wall-clock fields (held in a UTC time) in loc.
func Place(wall time.Time, loc *time.Location) time.Time {
	y, mo, d := wall.Date()
	h, mi, s := wall.Clock()
	return time.Date(y, mo, d, h, mi, s, wall.Nanosecond(), loc)
}

// LoadTZ reads a --tz value: an IANA name ("Asia/Shanghai"), "Local",
// "UTC" or a numeric offset ("+08:00").
func LoadTZ(name string) (*time.Location, error) {
	if name == "" {
		return nil, nil
	}
	if name[0] == '+' || name[0] == '-' {
		secs, err := ParseOffset(name)
		if err != nil {
			return nil, err
		}
		return time.FixedZone("UTC"+FormatOffset(secs), secs), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	return loc, nil
}
