package chaos

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/chaos/history"
	"github.com/vigil-ha/vigil/internal/database"
)

func TestPlanIsDeterministicPerSeed(t *testing.T) {
	types := Catalogue()
	a, err := NewPlan(42, time.Hour, types, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPlan(42, time.Hour, types, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans from seed 42 differ")
	}
	c, err := NewPlan(43, time.Hour, types, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Steps, c.Steps) {
		t.Error("seeds 42 and 43 gave the same schedule")
	}
}

func TestPlanHoldsEveryTypeFirstAndFitsTheDuration(t *testing.T) {
	types := Catalogue()
	for seed := int64(0); seed < 50; seed++ {
		d := MinDuration(types, 3*time.Second) + time.Duration(seed)*time.Minute
		p, err := NewPlan(seed, d, types, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var first []string
		for _, s := range p.Steps[:len(types)] {
			first = append(first, s.Type)
		}
		slices.Sort(first)
		want := slices.Sorted(slices.Values(types))
		if !slices.Equal(first, want) {
			t.Fatalf("seed %d: the first %d steps are %v, want one of each type", seed, len(types), first)
		}
		if p.Budget() > d {
			t.Errorf("seed %d: budget %s exceeds duration %s", seed, p.Budget(), d)
		}
		for i, s := range p.Steps {
			if s.N != i+1 {
				t.Fatalf("seed %d: step %d numbered %d", seed, i+1, s.N)
			}
			f, _ := lookup(s.Type)
			if !slices.Contains(f.roles, s.Role) {
				t.Errorf("seed %d: %s drew role %s", seed, s.Type, s.Role)
			}
			switch s.Type {
			case PacketLoss:
				if s.Param < 20 || s.Param > 40 {
					t.Errorf("packet loss %d%%", s.Param)
				}
			case Latency:
				if s.Param < 50 || s.Param > 200 {
					t.Errorf("latency %d ms", s.Param)
				}
			case Flapping:
				if len(s.Flaps) != 2*flapCycles {
					t.Errorf("flapping has %d phases", len(s.Flaps))
				}
			}
		}
	}
}

func TestPlanAddsStepsWhenTimeAllows(t *testing.T) {
	p, err := NewPlan(7, time.Hour, []string{DBCrash, AgentCrash}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) < 50 {
		t.Errorf("an hour of two cheap faults drew only %d steps", len(p.Steps))
	}
}

func TestPlanRefusesTooShortADuration(t *testing.T) {
	types := []string{NodeCrash, DBHung, Latency}
	need := MinDuration(types, 3*time.Second)
	if _, err := NewPlan(1, need, types, 3*time.Second); err != nil {
		t.Fatalf("exactly the minimum: %v", err)
	}
	_, err := NewPlan(1, need-time.Second, types, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "too short for one fault of each of the 3 requested types") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseFaults(t *testing.T) {
	all, err := ParseFaults("")
	if err != nil || !slices.Equal(all, Catalogue()) {
		t.Fatalf("empty: %v %v", all, err)
	}
	if got, _ := ParseFaults("all"); !slices.Equal(got, Catalogue()) {
		t.Errorf("all = %v", got)
	}
	got, err := ParseFaults(" db-hung, partition ")
	if err != nil || !slices.Equal(got, []string{DBHung, Partition}) {
		t.Errorf("got %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"db-hung,nope":       `unknown fault "nope"`,
		"db-hung,,partition": "empty fault name",
		"db-hung,db-hung":    "listed twice",
	} {
		if _, err := ParseFaults(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFaults(%q) = %v, want an error with %q", in, err, want)
		}
	}
	if got, err := ParseFaults("disk-full,db-crash"); err != nil || !slices.Equal(got, []string{DiskFull, DBCrash}) {
		t.Errorf("disk-full,db-crash: %v, %v", got, err)
	}
}

func TestValidateRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	used := filepath.Join(dir, "used")
	os.MkdirAll(used, 0o755)
	os.WriteFile(filepath.Join(used, history.RunFile), []byte("{}"), 0o644)
	ok := Options{Duration: time.Hour, Out: filepath.Join(dir, "new")}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"sync":           {func(o *Options) { o.SyncMode = "sometimes" }, "--sync-mode"},
		"dcs":            {func(o *Options) { o.DCS = "zookeeper" }, "--dcs"},
		"no out":         {func(o *Options) { o.Out = "" }, "--out is required"},
		"used out":       {func(o *Options) { o.Out = used }, "already holds a campaign"},
		"short":          {func(o *Options) { o.Duration = time.Minute }, "too short"},
		"unknown":        {func(o *Options) { o.Faults = []string{"meteor"} }, "unknown fault"},
		"diskfull short": {func(o *Options) { o.Faults = []string{DiskFull}; o.Duration = 10 * time.Second }, "too short"},
	} {
		o := ok
		tc.edit(&o)
		_, err := validate(o)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want an InputError with %q", name, err, tc.want)
		}
	}
	if _, err := validate(ok); err != nil {
		t.Errorf("valid options: %v", err)
	}
	for _, edit := range []func(*Options){
		func(o *Options) { o.DCS = "external"; o.Faults = []string{EtcdMemberKill, EtcdDown, NodeCrash} },
		func(o *Options) { o.DCS = "embedded"; o.Faults = []string{DiskFull, DBCrash} },
	} {
		o := ok
		edit(&o)
		if _, err := validate(o); err != nil {
			t.Errorf("valid options %+v: %v", o, err)
		}
	}
	if _, err := os.Stat(ok.Out); err == nil {
		t.Error("validation created the campaign directory")
	}
}

func TestDropRules(t *testing.T) {
	got := dropRules([]string{"10.0.0.2", "10.0.0.3"}, []int{2379, 2380})
	for _, want := range []string{
		"ip saddr { 10.0.0.2, 10.0.0.3 } tcp dport { 2379, 2380 } drop",
		"ip saddr { 10.0.0.2, 10.0.0.3 } tcp sport { 2379, 2380 } drop",
		"ip daddr { 10.0.0.2, 10.0.0.3 } tcp dport { 2379, 2380 } drop",
		"ip daddr { 10.0.0.2, 10.0.0.3 } tcp sport { 2379, 2380 } drop",
		"table inet " + NFTTable,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q:\n%s", want, got)
		}
	}
	if all := dropRules([]string{"10.0.0.9"}, nil); !strings.Contains(all, "ip saddr { 10.0.0.9 } drop") || !strings.Contains(all, "ip daddr { 10.0.0.9 } drop") {
		t.Errorf("rules without ports:\n%s", all)
	}
}

func TestForksFromTimelineHistory(t *testing.T) {
	switches, err := database.ParseTimelineHistory("1\t0/3000160\tno recovery target specified\n\n2\t0/5000A28\tno recovery target specified\n")
	if err != nil {
		t.Fatal(err)
	}
	got := forks(switches, 3)
	want := []history.Fork{{Timeline: 2, Parent: 1, LSN: "0/3000160"}, {Timeline: 3, Parent: 2, LSN: "0/5000A28"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

func TestPlanHasSpareStepsForFasterRecoveries(t *testing.T) {
	types := Catalogue()
	a, err := NewPlan(7, 30*time.Minute, types, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewPlan(7, 30*time.Minute, types, 3*time.Second)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed drew two schedules")
	}
	// Even if every step took only its hold, the schedule would outlast
	// the duration.
	var least time.Duration
	for _, s := range append(a.Steps, a.Spare...) {
		least += s.Hold
	}
	if least < a.Duration {
		t.Errorf("steps and spares hold faults for %s in all, less than the %s campaign", least, a.Duration)
	}
	if n := a.Spare[0].N; n != len(a.Steps)+1 {
		t.Errorf("the first spare step is numbered %d, want %d", n, len(a.Steps)+1)
	}
}
