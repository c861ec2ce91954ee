package clock

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		wall string // RFC 3339 of the fields read as UTC
		zone string
		prec time.Duration
		n    int
		ok   bool
	}{
		{"2023-09-19 15:12:01.123 CST [1] LOG", "2023-09-19T15:12:01.123Z", "CST", time.Millisecond, 27, true},
		{"2023-09-19 15:12:01 CST [2090]: [6-1]", "2023-09-19T15:12:01Z", "CST", time.Second, 23, true},
		{"2023-09-19 15:12:01 failover", "2023-09-19T15:12:01Z", "", time.Second, 19, true},
		{"2023-09-19T15:12:01.123456+08:00", "2023-09-19T15:12:01.123456Z", "+08:00", time.Microsecond, 32, true},
		{"2023-09-19 15:12:01.5+08 x", "2023-09-19T15:12:01.5Z", "+08", 100 * time.Millisecond, 24, true},
		{"2023-09-19 15:12:01 +0800 x", "2023-09-19T15:12:01Z", "+0800", time.Second, 25, true},
		{"2023-09-19 15:12:01 -05:30", "2023-09-19T15:12:01Z", "-05:30", time.Second, 26, true},
		{"2023-09-19T15:12:01Z", "2023-09-19T15:12:01Z", "Z", time.Second, 20, true},
		{"2023-09-19 15:12:01,250 ERROR", "2023-09-19T15:12:01.25Z", "", time.Millisecond, 23, true},
		{"2023-09-19 15:12:01.123456789123 UTC", "2023-09-19T15:12:01.123456789Z", "UTC", time.Nanosecond, 36, true},
		// A word after the time is not a zone when it is too long.
		{"2023-09-19 15:12:01 failover", "2023-09-19T15:12:01Z", "", time.Second, 19, true},
		{"2023-09-19 15:12:01 12345", "2023-09-19T15:12:01Z", "", time.Second, 19, true},
		{"2023-13-19 15:12:01", "", "", 0, 0, false},
		{"2023-09-19 25:12:01", "", "", 0, 0, false},
		{"2023/09/19 15:12:01", "", "", 0, 0, false},
		{"2023-09-19 15:12", "", "", 0, 0, false},
		{"", "", "", 0, 0, false},
	}
	for _, tt := range tests {
		s, n, ok := Parse([]byte(tt.in))
		if ok != tt.ok {
			t.Errorf("Parse(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := s.Wall.Format(time.RFC3339Nano); got != tt.wall || s.Zone != tt.zone || s.Precision != tt.prec || n != tt.n {
			t.Errorf("Parse(%q) = %s zone %q prec %s n %d, want %s %q %s %d", tt.in, got, s.Zone, s.Precision, n, tt.wall, tt.zone, tt.prec, tt.n)
		}
	}
}

func TestFind(t *testing.T) {
	tests := []struct {
		in   string
		wall string
		ok   bool
	}{
		{"-----------------2023-09-21 11:50:54 failover beging-----", "2023-09-21T11:50:54Z", true},
		{"DEL VIP NOW AT 2023-09-21 11:50:57 ON enp0s3", "2023-09-21T11:50:57Z", true},
		{" 2023-09-21 11:50:56 del old primary VIP", "2023-09-21T11:50:56Z", true},
		{"< 2023-09-21 11:50:56.001 UTC > LOG:  x", "2023-09-21T11:50:56.001Z", true},
		{"execute promote", "", false},
		// Too far into the line to be a prefix's timestamp.
		{strings.Repeat("x", 60) + " 2023-09-21 11:50:56", "", false},
	}
	for _, tt := range tests {
		s, _, ok := Find([]byte(tt.in))
		if ok != tt.ok || (ok && s.Wall.Format(time.RFC3339Nano) != tt.wall) {
			t.Errorf("Find(%q) = %v %v, want %s %v", tt.in, s.Wall, ok, tt.wall, tt.ok)
		}
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadTZ(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestResolve(t *testing.T) {
	shanghai := mustLoad(t, "Asia/Shanghai")
	chicago := mustLoad(t, "America/Chicago")
	wall := time.Date(2023, 9, 19, 15, 12, 1, 0, time.UTC)
	tests := []struct {
		name   string
		tz     *time.Location
		local  *time.Location
		zone   string
		offset int
		guess  bool
		err    bool
	}{
		{"CST with --tz Asia/Shanghai", shanghai, time.UTC, "CST", 8 * 3600, false, false},
		{"CST on a machine in Shanghai", nil, shanghai, "CST", 8 * 3600, false, false},
		// Chicago calls UTC-6 "CST" in winter; on a September date the name
		// still means UTC-6, not Chicago's summer offset.
		{"CST with --tz America/Chicago", chicago, time.UTC, "CST", -6 * 3600, false, false},
		{"CST with nothing to decide it", nil, time.UTC, "CST", 8 * 3600, true, false},
		{"UTC", nil, shanghai, "UTC", 0, false, false},
		{"numeric", nil, time.UTC, "+08", 8 * 3600, false, false},
		{"numeric with minutes", nil, time.UTC, "-05:30", -(5*3600 + 1800), false, false},
		{"unknown abbreviation", nil, time.UTC, "XYZ", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewResolver(tt.tz, tt.local)
			got, ok, err := r.Resolve(Stamp{Wall: wall, Zone: tt.zone})
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if tt.err {
				return
			}
			_, off := got.Zone()
			if !ok || off != tt.offset {
				t.Errorf("offset = %d (ok %v), want %d", off, ok, tt.offset)
			}
			if want := wall.Add(-time.Duration(tt.offset) * time.Second); !got.Equal(want) {
				t.Errorf("instant = %s, want %s", got.UTC(), want)
			}
			if (len(r.Guesses) > 0) != tt.guess {
				t.Errorf("guesses = %v, want a guess: %v", r.Guesses, tt.guess)
			}
		})
	}
	// A stamp without a zone is floating: the caller places it.
	if _, ok, err := NewResolver(nil, time.UTC).Resolve(Stamp{Wall: wall}); ok || err != nil {
		t.Errorf("zone-less stamp resolved: ok=%v err=%v", ok, err)
	}
}

func TestLoadTZAndOffsets(t *testing.T) {
	for _, tt := range []struct {
		in     string
		offset int
		err    bool
	}{
		{"+08:00", 8 * 3600, false},
		{"-0330", -(3*3600 + 1800), false},
		{"UTC", 0, false},
		{"Asia/Shanghai", 8 * 3600, false},
		{"Mars/Olympus", 0, true},
		{"+25", 0, true},
		{"+8", 0, true},
	} {
		loc, err := LoadTZ(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("LoadTZ(%q) err = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err == nil {
			if _, off := time.Date(2023, 9, 19, 0, 0, 0, 0, loc).Zone(); off != tt.offset {
				t.Errorf("LoadTZ(%q) offset %d, want %d", tt.in, off, tt.offset)
			}
		}
	}
	if loc, err := LoadTZ(""); loc != nil || err != nil {
		t.Errorf("LoadTZ(\"\") = %v, %v; want nil, nil", loc, err)
	}
	if got := FormatOffset(-(5*3600 + 1800)); got != "-05:30" {
		t.Errorf("FormatOffset = %s", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"2023-09-19 15:12:01.123 CST", "2023-09-19T15:12:01Z", "2023-09-19 15:12:01 +08:00", "x", "2023-09-19 15:12:01.9999999999999 ABCDE"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, n, ok := Parse(b)
		if !ok {
			return
		}
		if n < 19 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if s.Precision <= 0 || s.Precision > time.Second {
			t.Fatalf("precision %s", s.Precision)
		}
		// Whatever zone text was read resolves or errs; never panics.
		NewResolver(nil, time.UTC).Resolve(s)
	})
}
