package config

import (
	"strings"
	"testing"
	"time"
)

func TestSharedProblemsUseTheFileRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		field string
		rule  string
	}{
		{"valid defaults", func(*Config) {}, "", ""},
		{"lease too short for the loop", func(c *Config) { c.Timing.LeaseTTL = 2 * time.Second; c.Timing.LoopInterval = time.Second }, "timing.", "lease_ttl"},
		{"fractional lease", func(c *Config) { c.Timing.LeaseTTL = 3500 * time.Millisecond }, "timing.lease_ttl", "whole number of seconds"},
		{"unknown sync mode", func(c *Config) { c.Failover.SynchronousMode = "sometimes" }, "failover.synchronous_mode", "use off, on or strict"},
		// Node-local problems are not the shared settings' business.
		{"node-local problem ignored", func(c *Config) { c.Node.Name = "" }, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.edit(&c)
			ps := c.SharedProblems()
			if tc.rule == "" {
				if len(ps) != 0 {
					t.Fatalf("problems %v, want none", ps)
				}
				return
			}
			if len(ps) == 0 || !strings.HasPrefix(ps[0].Field, tc.field) || !strings.Contains(ps[0].Message, tc.rule) {
				t.Fatalf("problems %v, want one on %s saying %q", ps, tc.field, tc.rule)
			}
		})
	}
}
