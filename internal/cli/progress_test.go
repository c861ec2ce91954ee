package cli

import (
	"testing"

	"github.com/vigil-ha/vigil/internal/dcs"
)

func TestBuildProgress(t *testing.T) {
	tests := []struct {
		m    dcs.Member
		want string
	}{
		{dcs.Member{}, ""},
		{dcs.Member{Phase: "empty"}, "no data directory: waiting to be built"},
		{dcs.Member{Phase: "bootstrap"}, "creating the cluster"},
		{dcs.Member{Phase: "clone"}, "clone: starting"},
		{dcs.Member{Phase: "clone", Clone: &dcs.CloneProgress{From: "node1", BytesDone: 10 << 20, BytesTotal: 40 << 20, RateBytes: 5 << 20, ETASeconds: 6}},
			"clone from node1: 10.0 MiB of 40.0 MiB (25%), 5.0 MiB/s, 6s left"},
		{dcs.Member{Phase: "clone", Clone: &dcs.CloneProgress{From: "node1", BytesDone: 1 << 20, ETASeconds: -1}},
			"clone from node1: 1.0 MiB, 0.0 MiB/s"},
	}
	for _, tt := range tests {
		if got := buildProgress(tt.m); got != tt.want {
			t.Errorf("buildProgress(%+v) = %q, want %q", tt.m, got, tt.want)
		}
	}
}
