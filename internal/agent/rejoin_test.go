package agent

import (
	"testing"
	"time"
)

func TestRejoinRetryAfterBacksOffToAMinute(t *testing.T) {
	want := []time.Duration{0, 5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute, time.Minute}
	for failures, w := range want {
		if got := rejoinRetryAfter(failures); got != w {
			t.Errorf("rejoinRetryAfter(%d) = %s, want %s", failures, got, w)
		}
	}
	if got := rejoinRetryAfter(1000); got != time.Minute {
		t.Errorf("rejoinRetryAfter(1000) = %s, want a minute", got)
	}
}
