package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/host"
)

// fakeTransport is an in-memory Transport: whether this host holds the address,
// who else answers for it, and what fails.
type fakeTransport struct {
	held        bool
	answerer    string
	assignErr   error
	unassignErr error
	// goneOnUnassignFailure: the address vanishes although the delete
	// fails (another remover was quicker).
	goneOnUnassignFailure bool
	calls                 []string
}

func (f *fakeTransport) Name() string { return "vip 10.0.0.100/24 on eth0" }
func (f *fakeTransport) Holds(context.Context) (bool, error) {
	f.calls = append(f.calls, "holds")
	return f.held, nil
}
func (f *fakeTransport) Answerer(context.Context) (string, error) {
	f.calls = append(f.calls, "answerer")
	return f.answerer, nil
}
func (f *fakeTransport) Assign(context.Context) error {
	f.calls = append(f.calls, "assign")
	if f.assignErr == nil {
		f.held = true
	}
	return f.assignErr
}
func (f *fakeTransport) Unassign(context.Context) error {
	f.calls = append(f.calls, "unassign")
	if f.unassignErr == nil || f.goneOnUnassignFailure {
		f.held = false
	}
	return f.unassignErr
}

func TestAddRefusesWhileAnotherHostAnswers(t *testing.T) {
	ctx := context.Background()
	f := &fakeTransport{answerer: "52:54:00:12:34:56"}
	added, err := Add(ctx, f)
	if added || !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "52:54:00:12:34:56") || f.held {
		t.Errorf("with another holder: added %v, err %v, held %v", added, err, f.held)
	}
	f.answerer = ""
	if added, err := Add(ctx, f); !added || err != nil || !f.held {
		t.Errorf("free address: added %v, err %v, held %v", added, err, f.held)
	}
	// Already here: nothing asked of the segment, nothing added.
	f.calls, f.answerer = nil, "52:54:00:12:34:56"
	if added, err := Add(ctx, f); added || err != nil || strings.Join(f.calls, ",") != "holds" {
		t.Errorf("held already: added %v, err %v, calls %v", added, err, f.calls)
	}
	failing := &fakeTransport{assignErr: errors.New("operation not permitted")}
	if added, err := Add(ctx, failing); added || err == nil {
		t.Errorf("failing assign: added %v, err %v", added, err)
	}
}

func TestRemoveIsIdempotent(t *testing.T) {
	ctx := context.Background()
	f := &fakeTransport{held: true}
	if removed, err := Remove(ctx, f); !removed || err != nil || f.held {
		t.Errorf("held: removed %v, err %v", removed, err)
	}
	f.calls = nil
	if removed, err := Remove(ctx, f); removed || err != nil || strings.Join(f.calls, ",") != "holds" {
		t.Errorf("absent: removed %v, err %v, calls %v", removed, err, f.calls)
	}
	raced := &fakeTransport{held: true, unassignErr: errors.New("RTNETLINK answers: Cannot assign requested address"), goneOnUnassignFailure: true}
	if removed, err := Remove(ctx, raced); removed || err != nil {
		t.Errorf("gone meanwhile: removed %v, err %v", removed, err)
	}
	stuck := &fakeTransport{held: true, unassignErr: errors.New("operation not permitted")}
	if removed, err := Remove(ctx, stuck); removed || err == nil {
		t.Errorf("still held after a failed delete: removed %v, err %v", removed, err)
	}
}

// scripted is a host whose programs answer from a table keyed by the
// command line.
type scripted map[string]host.Result

func (s scripted) Run(_ context.Context, argv []string) (host.Result, error) {
	line := strings.Join(argv, " ")
	res, ok := s[line]
	if !ok {
		return host.Result{}, fmt.Errorf("unexpected command %q", line)
	}
	return res, nil
}

func TestRemoteReadsExitCodesAndTheAddressList(t *testing.T) {
	ctx := context.Background()
	const (
		show = "sudo -n /sbin/ip -o -4 addr show dev eth0"
		add  = "sudo -n /sbin/ip addr add 10.0.0.100/24 dev eth0 label eth0:2"
		del  = "sudo -n /sbin/ip addr del 10.0.0.100/24 dev eth0"
		dad  = "sudo -n /usr/sbin/arping -D -c 2 -w 3 -I eth0 10.0.0.100"
		ann  = "sudo -n /usr/sbin/arping -U 10.0.0.100 -I eth0 -c 3 -w 4"
		free = "2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\n"
		held = free + "2: eth0    inet 10.0.0.100/24 scope global secondary eth0:2\n"
	)
	r := Remote{Address: netip.MustParsePrefix("10.0.0.100/24"), Interface: "eth0", Label: "eth0:2", IP: "/sbin/ip", Arping: "/usr/sbin/arping", Prefix: []string{"sudo", "-n"}}
	for _, tt := range []struct {
		got  []string
		want string
	}{{r.ShowArgv(), show}, {r.AddArgv(), add}, {r.DelArgv(), del}, {r.DuplicateCheckArgv(), dad}, {r.AnnounceArgv(3), ann}} {
		if got := strings.Join(tt.got, " "); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	if got := strings.Join(Remote{Address: r.Address, Interface: "eth0"}.DelArgv(), " "); got != "ip addr del 10.0.0.100/24 dev eth0" {
		t.Errorf("default program: %s", got)
	}

	r.Host = scripted{show: {Output: []byte(free)}, dad: {Output: []byte("Unicast reply from 10.0.0.100 [52:54:00:12:34:56]\n"), ExitCode: 1}}
	if added, err := Add(ctx, r); added || !errors.Is(err, ErrDuplicate) {
		t.Errorf("arping -D exit 1: added %v, err %v; want ErrDuplicate", added, err)
	}
	r.Host = scripted{show: {Output: []byte(free)}, dad: {ExitCode: 2, Output: []byte("arping: unknown iface eth0\n")}}
	if added, err := Add(ctx, r); added || err == nil || errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("arping -D exit 2: added %v, err %v; want a failed check", added, err)
	}
	r.Host = scripted{show: {Output: []byte(free)}, dad: {}, add: {}}
	if added, err := Add(ctx, r); !added || err != nil {
		t.Errorf("free address: added %v, err %v", added, err)
	}
	r.Host = scripted{show: {Output: []byte(held)}, del: {}}
	if removed, err := Remove(ctx, r); !removed || err != nil {
		t.Errorf("held: removed %v, err %v", removed, err)
	}
	// Absent: no delete runs, whatever ip would have said.
	r.Host = scripted{show: {Output: []byte(free)}}
	if removed, err := Remove(ctx, r); removed || err != nil {
		t.Errorf("absent: removed %v, err %v", removed, err)
	}
	r.Host = scripted{show: {ExitCode: 1, Output: []byte("Device \"eth0\" does not exist.\n")}}
	if removed, err := Remove(ctx, r); removed || err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("no interface: removed %v, err %v", removed, err)
	}
	r.Host = scripted{ann: {}}
	if err := r.Announce(ctx, 3); err != nil {
		t.Errorf("announce: %v", err)
	}
}

func TestHasAddress(t *testing.T) {
	out := `2: eth0    inet 10.0.0.12/24 brd 10.0.0.255 scope global eth0\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.0.100/24 scope global secondary eth0:2\       valid_lft forever preferred_lft forever
`
	if !HasAddress(out, netip.MustParseAddr("10.0.0.100")) {
		t.Error("the VIP on eth0:2 was not found")
	}
	if HasAddress(out, netip.MustParseAddr("10.0.0.10")) {
		t.Error("10.0.0.10 found in output that has 10.0.0.100 and 10.0.0.12")
	}
	if HasAddress("", netip.MustParseAddr("10.0.0.100")) {
		t.Error("found in empty output")
	}
}
