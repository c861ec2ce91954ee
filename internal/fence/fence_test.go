package fence

import (
	"context"
	"errors"
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

type fakeFencer struct {
	evidence string
	err      error
	called   *int
}

func (f fakeFencer) Fence(context.Context, dcs.Member) (string, error) {
	*f.called++
	return f.evidence, f.err
}

func TestAllStopsAtTheFirstFailure(t *testing.T) {
	var calls [3]int
	all := All{
		fakeFencer{evidence: "power cut", called: &calls[0]},
		fakeFencer{evidence: "ssh: host unreachable", err: errors.New("dial: no route"), called: &calls[1]},
		fakeFencer{evidence: "never", called: &calls[2]},
	}
	ev, err := all.Fence(context.Background(), dcs.Member{})
	if err == nil || ev != "power cut; ssh: host unreachable" || calls != [3]int{1, 1, 0} {
		t.Errorf("evidence %q, err %v, calls %v", ev, err, calls)
	}
	calls = [3]int{}
	ev, err = All{all[0], all[2]}.Fence(context.Background(), dcs.Member{})
	if err != nil || ev != "power cut; never" {
		t.Errorf("evidence %q, err %v", ev, err)
	}
}
