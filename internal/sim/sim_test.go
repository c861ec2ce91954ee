package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadScript(t *testing.T, path string) *Script {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc, err := ParseScript(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return sc
}

func runFile(t *testing.T, path string) Result {
	t.Helper()
	return Run(loadScript(t, path), nil, nil)
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			r := runFile(t, path)
			if r.Failed() || testing.Verbose() {
				t.Log("\n" + r.Report(200))
			}
			if r.Failed() {
				t.Fail()
			}
		})
	}
}
