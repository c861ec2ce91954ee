package control

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/decision"
	"github.com/vigil-ha/vigil/internal/timeline"
)

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// fakeStore is an in-memory DCS for the request rules; the real store is
// exercised by the e2e tests that run `vigil ctl` and the API.
type fakeStore struct {
	view   dcs.View
	stored *dcs.Request
	err    error
	// configs and records are what SetConfig stored, in order.
	configs []dcs.ClusterConfig
	records []any
}

func (f *fakeStore) Snapshot(context.Context) (dcs.View, error) { return f.view, f.err }
func (f *fakeStore) ReplaceRequest(_ context.Context, r dcs.Request, rev int64) error {
	if rev != f.view.RequestRevision {
		return dcs.ErrRequestChanged
	}
	f.stored = &r
	return nil
}
func (f *fakeStore) SetConfig(_ context.Context, c dcs.ClusterConfig, record any) error {
	if f.err != nil {
		return f.err
	}
	f.configs = append(f.configs, c)
	f.records = append(f.records, record)
	return nil
}

// alice is the operator the tests' requests are made for.
var alice = dcs.Actor{By: "cert:CN=alice,OU=operator", From: "192.0.2.7:40112"}

func member(name string, role decision.Role, writable bool, upstream string) dcs.Member {
	return dcs.Member{Member: decision.Member{Name: name, Role: role, Reachable: true, Writable: writable, Upstream: upstream, Timeline: 1, Priority: 100}}
}

// healthy: node1 leads and writes; node2 and node3 stream from it.
func healthy() dcs.View {
	return dcs.View{Leader: "node1", Members: map[string]dcs.Member{
		"node1": member("node1", decision.RolePrimary, true, ""),
		"node2": member("node2", decision.RoleStandby, false, "node1"),
		"node3": member("node3", decision.RoleStandby, false, "node1"),
	}}
}

func TestRequests(t *testing.T) {
	tests := []struct {
		name    string
		view    func() dcs.View
		call    func(Controller) (dcs.Request, error)
		refused string // substring of the refusal; "" means accepted
	}{
		{"switchover to a streaming standby", healthy,
			func(c Controller) (dcs.Request, error) {
				return c.Switchover(context.Background(), "node2", time.Time{})
			}, ""},
		{"switchover to the best standby", healthy,
			func(c Controller) (dcs.Request, error) { return c.Switchover(context.Background(), "", time.Time{}) }, ""},
		{"switchover to the primary itself", healthy,
			func(c Controller) (dcs.Request, error) {
				return c.Switchover(context.Background(), "node1", time.Time{})
			}, "node1 is already the primary"},
		{"switchover to a stranger", healthy,
			func(c Controller) (dcs.Request, error) {
				return c.Switchover(context.Background(), "node9", time.Time{})
			}, "node9 is not a live member (members: node1, node2, node3)"},
		{"switchover to a standby of another upstream", func() dcs.View {
			v := healthy()
			v.Members["node3"] = member("node3", decision.RoleStandby, false, "node2")
			return v
		}, func(c Controller) (dcs.Request, error) {
			return c.Switchover(context.Background(), "node3", time.Time{})
		}, "node3 does not stream from the primary node1"},
		{"switchover without a writable primary", func() dcs.View {
			v := healthy()
			v.Members["node1"] = member("node1", decision.RolePrimary, false, "")
			return v
		}, func(c Controller) (dcs.Request, error) {
			return c.Switchover(context.Background(), "node2", time.Time{})
		}, "no healthy writable primary"},
		{"switchover in the past", healthy,
			func(c Controller) (dcs.Request, error) {
				return c.Switchover(context.Background(), "node2", t0.Add(-time.Hour))
			}, "is in the past"},
		{"switchover while another request is pending", func() dcs.View {
			v := healthy()
			v.Request, v.RequestRevision = &dcs.Request{Kind: "failover", To: "node3", Created: t0.Add(-time.Second)}, 7
			return v
		}, func(c Controller) (dcs.Request, error) {
			return c.Switchover(context.Background(), "node2", time.Time{})
		}, "a failover to node3 requested at"},
		{"an expired request does not block", func() dcs.View {
			v := healthy()
			v.Request, v.RequestRevision = &dcs.Request{Kind: "failover", To: "node3", Created: t0.Add(-2 * decision.RequestTimeout)}, 7
			return v
		}, func(c Controller) (dcs.Request, error) {
			return c.Switchover(context.Background(), "node2", time.Time{})
		}, ""},
		{"failover with a healthy primary", healthy,
			func(c Controller) (dcs.Request, error) { return c.Failover(context.Background(), "node2") }, "use a switchover"},
		{"failover without a leader", func() dcs.View {
			v := healthy()
			v.Leader = ""
			delete(v.Members, "node1")
			return v
		}, func(c Controller) (dcs.Request, error) { return c.Failover(context.Background(), "node3") }, ""},
		{"failover to a stopped node", func() dcs.View {
			v := healthy()
			v.Leader = ""
			v.Members["node3"] = member("node3", decision.RoleStopped, false, "")
			return v
		}, func(c Controller) (dcs.Request, error) { return c.Failover(context.Background(), "node3") }, "node3 is not a running standby (role stopped)"},
		{"failover to an isolated standby", func() dcs.View {
			v := healthy()
			v.Leader = ""
			m := v.Members["node3"]
			m.Isolated = true
			v.Members["node3"] = m
			return v
		}, func(c Controller) (dcs.Request, error) { return c.Failover(context.Background(), "node3") }, "cannot reach any trusted IP"},
		{"failover without a target", healthy,
			func(c Controller) (dcs.Request, error) { return c.Failover(context.Background(), "") }, "name the node to promote"},
		{"rejoin of a stopped former primary", func() dcs.View {
			v := healthy()
			v.Members["node2"] = member("node2", decision.RoleStopped, false, "")
			return v
		}, func(c Controller) (dcs.Request, error) { return c.Rejoin(context.Background(), "node2") }, ""},
		{"rejoin of a healthy standby", healthy,
			func(c Controller) (dcs.Request, error) { return c.Rejoin(context.Background(), "node2") }, "node2 already streams from the leader node1"},
		{"rejoin of the leader", healthy,
			func(c Controller) (dcs.Request, error) { return c.Rejoin(context.Background(), "node1") }, "node1 is the leader"},
		{"rejoin of a node without an agent", healthy,
			func(c Controller) (dcs.Request, error) { return c.Rejoin(context.Background(), "node7") }, "node7 has no live agent"},
		{"rejoin without a writable primary", func() dcs.View {
			v := healthy()
			v.Members["node1"] = member("node1", decision.RolePrimary, false, "")
			v.Members["node2"] = member("node2", decision.RoleStopped, false, "")
			return v
		}, func(c Controller) (dcs.Request, error) { return c.Rejoin(context.Background(), "node2") }, "no writable primary to rejoin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{view: tt.view()}
			c := Controller{Store: store, Now: func() time.Time { return t0 }}.As(alice)
			r, err := tt.call(c)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if store.stored == nil || *store.stored != r || !r.Created.Equal(t0) {
					t.Errorf("stored %+v, returned %+v", store.stored, r)
				}
				if r.Actor != alice {
					t.Errorf("request names %+v as its author, want %+v", r.Actor, alice)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
				t.Errorf("err = %v, want a refusal containing %q", err, tt.refused)
			}
			if store.stored != nil {
				t.Errorf("a refused request was stored: %+v", store.stored)
			}
		})
	}
}

func TestConcurrentRequestIsRefused(t *testing.T) {
	store := &fakeStore{view: healthy()}
	c := Controller{Store: store, Now: func() time.Time { return t0 }}
	// Another operator's request lands between our read and our write.
	store.view.RequestRevision = 0
	racing := &racingStore{fakeStore: store}
	c.Store = racing
	_, err := c.Switchover(context.Background(), "node2", time.Time{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "another request was stored at the same time") {
		t.Errorf("err = %v", err)
	}
}

// racingStore bumps the request revision after the snapshot.
type racingStore struct{ *fakeStore }

func (r *racingStore) Snapshot(ctx context.Context) (dcs.View, error) {
	v, err := r.fakeStore.Snapshot(ctx)
	r.fakeStore.view.RequestRevision = 42
	return v, err
}

func TestDCSErrorsAreNotRefusals(t *testing.T) {
	store := &fakeStore{err: errors.New("etcdserver: request timed out")}
	c := Controller{Store: store}
	_, err := c.Failover(context.Background(), "node2")
	if err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("err = %v: a DCS failure must not look like a refusal (409)", err)
	}
}

func TestPauseAndResumeRecordWhoAsked(t *testing.T) {
	for _, tt := range []struct {
		name   string
		actor  dcs.Actor
		paused bool
		kind   string
		by     dcs.Actor
	}{
		{"pause by an operator", alice, true, PauseRecordKind, alice},
		{"resume by an operator", alice, false, ResumeRecordKind, alice},
		{"pause by a caller that names nobody", dcs.Actor{}, true, PauseRecordKind, dcs.Actor{By: dcs.Unknown, From: dcs.Unknown}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{}
			c := Controller{Store: store, Now: func() time.Time { return t0 }, Cluster: "main"}.As(tt.actor)
			if err := c.SetPaused(context.Background(), tt.paused); err != nil {
				t.Fatal(err)
			}
			if len(store.configs) != 1 || len(store.records) != 1 {
				t.Fatalf("stored %d configs and %d records, want one each", len(store.configs), len(store.records))
			}
			want := dcs.ClusterConfig{Paused: tt.paused, ChangedBy: tt.actor, ChangedAt: t0}
			if got := store.configs[0]; got != want {
				t.Errorf("config = %+v, want %+v", got, want)
			}
			rec, ok := store.records[0].(timeline.Record)
			if !ok {
				t.Fatalf("history record is a %T, want a timeline.Record", store.records[0])
			}
			if rec.Kind != tt.kind || rec.Cluster != "main" || !rec.OK || !rec.Start.Equal(t0) || len(rec.Steps) != 0 {
				t.Errorf("record = %+v, want kind %s of cluster main at %s", rec, tt.kind, t0)
			}
			if rec.RequestedBy != tt.by.By || rec.RequestedFrom != tt.by.From {
				t.Errorf("record requested by %q from %q, want %q from %q", rec.RequestedBy, rec.RequestedFrom, tt.by.By, tt.by.From)
			}
		})
	}
}

func TestPauseFailureIsReported(t *testing.T) {
	store := &fakeStore{err: errors.New("etcdserver: request timed out")}
	if err := (Controller{Store: store}).SetPaused(context.Background(), true); err == nil || !strings.Contains(err.Error(), "request timed out") {
		t.Errorf("err = %v, want the DCS's error", err)
	}
}

func TestOperatorActor(t *testing.T) {
	for _, tt := range []struct {
		name                          string
		subject, etcdUser, user, host string
		want                          dcs.Actor
	}{
		{"client certificate", "CN=alice,OU=operator", "", "root", "db1", dcs.Actor{By: "cert:CN=alice,OU=operator", From: "root@db1"}},
		{"certificate and etcd user: the certificate counts", "CN=alice", "vigil", "root", "db1", dcs.Actor{By: "cert:CN=alice", From: "root@db1"}},
		{"etcd user", "", "ops", "bob", "admin1", dcs.Actor{By: "etcd-user:ops", From: "bob@admin1"}},
		{"OS user", "", "", "bob", "admin1", dcs.Actor{By: "os:bob@admin1", From: "bob@admin1"}},
		{"nothing known", "", "", "", "", dcs.Actor{By: "os:unknown@unknown", From: "unknown@unknown"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := OperatorActor(tt.subject, tt.etcdUser, tt.user, tt.host); got != tt.want {
				t.Errorf("OperatorActor = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestRequestsFromBeforeTheAudit: a request stored by an older version
// names nobody; it still decodes, and the action taken on it is
// attributed to "unknown". A new request keeps its author through JSON.
func TestRequestsFromBeforeTheAudit(t *testing.T) {
	var old dcs.Request
	if err := json.Unmarshal([]byte(`{"kind":"switchover","from":"node1","to":"node2","created":"2026-11-25T03:00:00Z"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Actor != (dcs.Actor{}) {
		t.Errorf("old request decodes with author %+v", old.Actor)
	}
	if got := old.Actor.OrUnknown(); got != (dcs.Actor{By: "unknown", From: "unknown"}) {
		t.Errorf("old request attributed to %+v", got)
	}
	var cfg dcs.ClusterConfig
	if err := json.Unmarshal([]byte(`{"paused":true}`), &cfg); err != nil || !cfg.Paused || cfg.ChangedBy != (dcs.Actor{}) {
		t.Errorf("old config decodes as %+v, %v", cfg, err)
	}

	data, err := json.Marshal(dcs.Request{Kind: "failover", To: "node3", Created: t0, Actor: alice})
	if err != nil {
		t.Fatal(err)
	}
	var back dcs.Request
	if err := json.Unmarshal(data, &back); err != nil || back.Actor != alice {
		t.Errorf("request round trip: %s gives %+v, %v", data, back.Actor, err)
	}
	data, err = json.Marshal(dcs.Request{Kind: "failover", To: "node3", Created: t0})
	if err != nil || strings.Contains(string(data), "actor") {
		t.Errorf("a request without an author is written as %s (%v), want no actor field", data, err)
	}
}
