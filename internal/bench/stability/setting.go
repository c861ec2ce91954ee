package stability

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/internal/config"
)

// Setting is one timing configuration under test.
type Setting struct {
	LeaseTTL     time.Duration
	LoopInterval time.Duration
	DCSTimeout   time.Duration
}

func (s Setting) String() string {
	return fmt.Sprintf("lease_ttl %s, loop_interval %s, dcs_timeout %s", s.LeaseTTL, s.LoopInterval, s.DCSTimeout)
}

// SettingFor derives loop_interval and dcs_timeout from lease_ttl in the
// proportions of the configuration's defaults (3 s, 500 ms, 800 ms: a
// sixth and four fifteenths of the lease), so that every setting keeps the
// defaults' margins: the leader still notices a failed renewal with the
// same share of the lease left to demote. The setting is checked with the
// configuration's own timing rules.
func SettingFor(ttl time.Duration) (Setting, error) {
	def := config.Defaults().Timing
	s := Setting{
		LeaseTTL:     ttl,
		LoopInterval: scale(def.LoopInterval, ttl, def.LeaseTTL),
		DCSTimeout:   scale(def.DCSTimeout, ttl, def.LeaseTTL),
	}
	// Validate the defaults with this timing and keep only what it says
	// about the timing: the rest of a default configuration (no node name,
	// no cluster) is not what is being checked.
	cfg := config.Defaults()
	cfg.Timing.LeaseTTL, cfg.Timing.LoopInterval, cfg.Timing.DCSTimeout = s.LeaseTTL, s.LoopInterval, s.DCSTimeout
	var problems config.Problems
	if errors.As(cfg.Validate(), &problems) {
		var timing config.Problems
		for _, p := range problems {
			if strings.HasPrefix(p.Field, "timing.") {
				timing = append(timing, p)
			}
		}
		if len(timing) > 0 {
			return s, fmt.Errorf("lease_ttl %s (%s): %w", ttl, s, timing)
		}
	}
	return s, nil
}

// scale is d × num / den, rounded down to the millisecond.
func scale(d, num, den time.Duration) time.Duration {
	return (time.Duration(int64(d) * int64(num) / int64(den))).Truncate(time.Millisecond)
}

// ParseSettings reads a comma-separated list of lease TTLs ("3s,2s,1s")
// into settings.
func ParseSettings(list string) ([]Setting, error) {
	var out []Setting
	for _, part := range strings.Split(list, ",") {
		ttl, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("--settings %q: %w", list, err)
		}
		s, err := SettingFor(ttl)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseDelayRange reads "20ms-50ms" (or one duration, for a fixed delay).
func ParseDelayRange(s string) (lo, hi time.Duration, err error) {
	a, b, found := strings.Cut(s, "-")
	if lo, err = time.ParseDuration(strings.TrimSpace(a)); err != nil {
		return 0, 0, fmt.Errorf("--delay %q: %w", s, err)
	}
	hi = lo
	if found {
		if hi, err = time.ParseDuration(strings.TrimSpace(b)); err != nil {
			return 0, 0, fmt.Errorf("--delay %q: %w", s, err)
		}
	}
	if lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("--delay %q: want MIN-MAX with 0 <= MIN <= MAX", s)
	}
	return lo, hi, nil
}
