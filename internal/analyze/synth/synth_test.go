package synth

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteSaysWhatItWrote(t *testing.T) {
	for _, format := range []string{Stderr, CSV, JSON} {
		var b bytes.Buffer
		st, err := Write(&b, Options{Bytes: 1 << 20, Format: format, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		if st.Bytes != int64(b.Len()) || st.Bytes < 1<<20 || st.Lines != int64(bytes.Count(b.Bytes(), []byte("\n"))) && format != Stderr {
			t.Errorf("%s: stats %+v for %d bytes", format, st, b.Len())
		}
		if got := int64(strings.Count(b.String(), "cannot execute INSERT in a read-only transaction")); got != st.ReadOnlyErrors || got < 300 {
			t.Errorf("%s: %d read-only errors written, stats say %d", format, got, st.ReadOnlyErrors)
		}
		if st.ReadyAt.Sub(st.PromoteAt).Seconds() != 35 {
			t.Errorf("%s: promote %s ready %s", format, st.PromoteAt, st.ReadyAt)
		}
	}
	if _, err := Write(&bytes.Buffer{}, Options{Format: "xml"}); err == nil {
		t.Error("unknown format accepted")
	}
}
