package wal

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLSN(t *testing.T) {
	tests := []struct {
		in   string
		want LSN
		err  bool
	}{
		{"0/0", 0, false},
		{"0/3000148", 0x3000148, false},
		{"16/B374D848", 0x16B374D848, false},
		{"FFFFFFFF/FFFFFFFF", LSN(^uint64(0)), false},
		{"", 0, true},
		{"3000148", 0, true},
		{"0/XYZ", 0, true},
		{"100000000/0", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil && got.String() != strings.ToUpper(tt.in) {
			t.Errorf("LSN(%q).String() = %q", tt.in, got.String())
		}
	}
	if d := LSN(100).Sub(40); d != 60 {
		t.Errorf("Sub = %d", d)
	}
	if d := LSN(40).Sub(100); d != 0 {
		t.Errorf("Sub of a later LSN = %d, want 0", d)
	}
	b, _ := json.Marshal(struct{ L LSN }{0x16B374D848})
	if string(b) != `{"L":"16/B374D848"}` {
		t.Errorf("json = %s", b)
	}
	var back struct{ L LSN }
	if err := json.Unmarshal(b, &back); err != nil || back.L != 0x16B374D848 {
		t.Errorf("round trip = %v, %v", back.L, err)
	}
}
