package fence

import (
	"context"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
)

func TestCommand(t *testing.T) {
	old := dcs.Member{Member: decision.Member{Name: "node1"}, Host: "198.18.0.11", Port: 5432}
	ev, err := Command{Argv: []string{"echo", "stopping", "{name}", "at", "{host}:{port}"}}.Fence(context.Background(), old)
	if err != nil || !strings.Contains(ev, "stopping node1 at 198.18.0.11:5432") {
		t.Errorf("evidence %q err %v", ev, err)
	}
	_, err = Command{Argv: []string{"sh", "-c", "echo no power switch; exit 3"}}.Fence(context.Background(), old)
	if err == nil || !strings.Contains(err.Error(), "no power switch") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing command: %v", err)
	}
	if _, err := (Command{}).Fence(context.Background(), old); err == nil {
		t.Error("empty command succeeded")
	}
}
