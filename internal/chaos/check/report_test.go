package check

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/chaos/history"
)

func TestJSONShape(t *testing.T) {
	h := campaign()
	for _, r := range []Result{Check(h, Options{}), {}} {
		var b bytes.Buffer
		if err := WriteJSON(&b, h, r); err != nil {
			t.Fatal(err)
		}
		var rep map[string]json.RawMessage
		if err := json.Unmarshal(b.Bytes(), &rep); err != nil {
			t.Fatalf("not one JSON object: %v", err)
		}
		for _, key := range []string{"violations", "lost_writes", "warnings"} {
			if got := string(rep[key]); got != "[]" {
				t.Errorf("%s = %s, want []", key, got)
			}
		}
		if string(rep["passed"]) != "true" {
			t.Errorf("passed = %s", rep["passed"])
		}
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, h, Check(h, Options{})); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Faults map[string]struct {
			Injected        int       `json:"injected"`
			Recovered       int       `json:"recovered"`
			RecoverySeconds []float64 `json:"recovery_seconds"`
			RecoveryS       struct {
				Median float64 `json:"median"`
			} `json:"recovery_s"`
		} `json:"faults"`
	}
	if err := json.Unmarshal(b.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if f := rep.Faults["node-crash"]; f.Injected != 1 || f.Recovered != 1 || len(f.RecoverySeconds) != 1 || f.RecoveryS.Median != 2 {
		t.Errorf("faults = %+v", rep.Faults)
	}
}

// splitBrain is the campaign with one late acknowledgement by the old primary.
func splitBrain() history.History {
	h := campaign()
	h.Writes = append(h.Writes, ack(21, 15.5, "node1", 1, fork+0x40))
	return h
}

func TestHTML(t *testing.T) {
	h := splitBrain()
	h.Faults = append(h.Faults, history.Fault{Step: 2, Type: "db-hung", Target: "node2 <pg>", Injected: at(24), Healed: at(26), Recovered: at(27)})
	var b bytes.Buffer
	if err := WriteHTML(&b, h, Check(h, Options{})); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<svg", "#1 node-crash node1", "#2 db-hung node2 &lt;pg&gt;", "split-brain", "node2 tl 2", "not acknowledged", `stroke="#d93025"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<pg>") || strings.Contains(page, "ZgotmplZ") {
		t.Error("unescaped or rejected text in the page")
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page is not self-contained")
	}
}

func TestText(t *testing.T) {
	h := splitBrain()
	var b bytes.Buffer
	if err := PrintText(&b, h, Check(h, Options{})); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"FAIL, 1 violation(s)", "node-crash", "split-brain", "seed 7 step 1 (node-crash)", "writes (4): 14, 15, 16, 21", "reproduce: vigil chaos --seed 7"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteReports(t *testing.T) {
	dir := t.TempDir()
	h := campaign()
	if err := WriteReports(dir, h, Check(h, Options{})); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{JSONFile, HTMLFile} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || len(b) == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}
