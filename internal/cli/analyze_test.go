package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	analyzeSeedFailover = "../analyze/testdata/seed/failover.log"
	analyzeSeedSysLog   = "../analyze/testdata/seed/sys_log"
)

func runAnalyze(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	// Main reads standard input through cobra; tests give it a pipe.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.WriteString(stdin)
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	code := Main(append([]string{"analyze"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAnalyzeSeedText(t *testing.T) {
	code, out, errOut := runAnalyze(t, "", analyzeSeedFailover, analyzeSeedSysLog, "--tz", "Asia/Shanghai")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour written to a pipe")
	}
	for _, want := range []string{"read-only exposure window      35.0 s", "statements failed read-only    140", "Verdict"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestAnalyzeJSONAndHTML(t *testing.T) {
	html := filepath.Join(t.TempDir(), "report.html")
	code, out, errOut := runAnalyze(t, "", "--json", "--html", html, "--tz", "+08:00", analyzeSeedFailover, analyzeSeedSysLog)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Findings struct {
			Window  float64 `json:"read_only_window_s"`
			Errors  int     `json:"read_only_errors"`
			Outage  float64 `json:"write_outage_s"`
			Verdict string  `json:"verdict"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if rep.Findings.Window != 35 || rep.Findings.Errors != 140 || rep.Findings.Outage != 40 || rep.Findings.Verdict == "" {
		t.Errorf("findings = %+v", rep.Findings)
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte("<svg")) {
		t.Errorf("html report: %v", err)
	}
}

func TestAnalyzeStdinAndColour(t *testing.T) {
	log, err := os.ReadFile(analyzeSeedFailover)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runAnalyze(t, string(log), "-", "--color", "always", "--tz", "Asia/Shanghai")
	if code != ExitOK || !strings.Contains(out, "\x1b[") || !strings.Contains(out, "stdin") {
		t.Errorf("exit %d, stderr %s", code, errOut)
	}
}

func TestAnalyzeExitCodes(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.log")
	binary := filepath.Join(dir, "core")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(binary, []byte("\x7fELF\x00\x00\x00"), 0o644)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no file", nil, ExitUsage, "requires at least 1 arg"},
		{"missing file only", []string{filepath.Join(dir, "missing.log")}, ExitUsage, "no such file"},
		{"bad zone", []string{"--tz", "Mars/Olympus", empty}, ExitUsage, "--tz"},
		{"bad format", []string{"--format", "xml", empty}, ExitUsage, "--format"},
		{"bad colour", []string{"--color", "pink", empty}, ExitUsage, "--color"},
		{"bad since", []string{"--since", "yesterday", empty}, ExitUsage, "--since"},
		{"nothing readable", []string{empty, binary}, ExitFailure, "empty.log: empty file"},
		{"one good file", []string{empty, filepath.Join(dir, "missing.log"), analyzeSeedFailover}, ExitOK, "binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runAnalyze(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, errOut)
			}
			if tt.name != "one good file" && !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.stderr)
			}
			if tt.name == "one good file" && (!strings.Contains(errOut, "missing.log") || !strings.Contains(errOut, "empty.log: empty file")) {
				t.Errorf("stderr %q: want a message for each bad file", errOut)
			}
		})
	}
}

func TestBenchAnalyzeFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"bench", "analyze", "--size-mb", "0"}, &out, &errOut); code != ExitUsage {
		t.Errorf("--size-mb 0: exit %d", code)
	}
	if code := Main([]string{"bench", "analyze", "--format", "xml"}, &out, &errOut); code != ExitUsage {
		t.Errorf("--format xml: exit %d", code)
	}
	dir := t.TempDir()
	out.Reset()
	if code := Main([]string{"bench", "analyze", "--size-mb", "2", "--dir", dir, "--json"}, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var res struct {
		Written int64 `json:"read_only_errors_written"`
		Found   int64 `json:"read_only_errors_found"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Found != res.Written || res.Found == 0 {
		t.Errorf("bench result %s (%v)", out.String(), err)
	}
}
