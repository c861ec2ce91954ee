package control

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/pgparam"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// settingsStore is an in-memory settings key with its revision.
type settingsStore struct {
	view       dcs.View
	catalog    dcs.Catalog
	hasCatalog bool
	// concurrent, when set, is written by "another operator" between
	// this edit's read and its write.
	concurrent *dcs.Settings
	writes     []dcs.Settings
	records    []any
}

func (f *settingsStore) Snapshot(context.Context) (dcs.View, error) { return f.view, nil }
func (f *settingsStore) Catalog(context.Context) (dcs.Catalog, bool, error) {
	return f.catalog, f.hasCatalog, nil
}
func (f *settingsStore) ReplaceSettings(_ context.Context, s dcs.Settings, rev int64, record any) (int64, error) {
	if f.concurrent != nil {
		f.view.Settings, f.view.SettingsRevision = *f.concurrent, f.view.SettingsRevision+1
		f.concurrent = nil
	}
	if rev != f.view.SettingsRevision {
		return 0, dcs.ErrSettingsChanged
	}
	f.writes = append(f.writes, s)
	f.records = append(f.records, record)
	f.view.Settings, f.view.SettingsRevision = s, f.view.SettingsRevision+1
	return f.view.SettingsRevision, nil
}

func catalog() dcs.Catalog {
	return dcs.Catalog{Node: "node1", Version: "15.8", Parameters: []pgparam.Spec{
		{Name: "work_mem", Vartype: "integer", Unit: "kB", Min: "64", Max: "2147483647", Context: "user"},
		{Name: "shared_buffers", Vartype: "integer", Unit: "8kB", Min: "16", Max: "1073741823", Context: "postmaster"},
		{Name: "log_connections", Vartype: "bool", Context: "superuser-backend"},
	}}
}

func sets(assignments ...string) func(*Document) error {
	return func(d *Document) error {
		for _, a := range assignments {
			if err := d.Set(a, labTiming()); err != nil {
				return err
			}
		}
		return nil
	}
}

// labTiming is the timing a node's file gives the cluster.
func labTiming() dcs.SharedTiming {
	c := config.Defaults()
	c.Timing.LeaseTTL, c.Timing.LoopInterval, c.Timing.DCSTimeout = 3*time.Second, 300*time.Millisecond, 500*time.Millisecond
	return SharedOf(&c)
}

func TestEditSettingsRefusesBadInputWithTheRule(t *testing.T) {
	for _, tc := range []struct {
		name       string
		edit       func(*Document) error
		hasCatalog bool
		rule       string
	}{
		{"unknown parameter", sets("postgresql.parameters.wrok_mem=8MB"), true, "wrok_mem is not a parameter of this server (did you mean work_mem?)"},
		{"wrong type", sets("postgresql.parameters.log_connections=maybe"), true, "log_connections is a boolean"},
		{"out of range", sets("postgresql.parameters.work_mem=1kB"), true, "outside its range"},
		{"no catalog to check against", sets("postgresql.parameters.work_mem=8MB"), false, "no parameter catalog"},
		{"lease arithmetic", sets("timing.lease_ttl=1s"), true, "timing.lease_ttl"},
		{"fractional lease", sets("timing.lease_ttl=2500ms"), true, "whole number of seconds"},
		{"duration of the wrong type", sets("timing.loop_interval=fast"), true, "not of the right type"},
		{"unknown key", sets("timing.lease=3s"), true, "not a cluster-wide setting"},
		{"unknown sync mode", sets("failover.synchronous_mode=maybe"), true, "use off, on or strict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &settingsStore{catalog: catalog(), hasCatalog: tc.hasCatalog}
			st.view.Settings = dcs.Settings{Parameters: map[string]string{"work_mem": "4MB"}}
			st.view.SettingsRevision = 7
			_, err := Controller{Actor: alice}.EditSettings(context.Background(), st, labTiming(), tc.edit)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.rule) {
				t.Fatalf("err = %v, want a refusal naming %q", err, tc.rule)
			}
			if len(st.writes) != 0 {
				t.Fatalf("a refused edit wrote %+v", st.writes)
			}
		})
	}
}

func TestEditSettingsWritesAndRecords(t *testing.T) {
	st := &settingsStore{catalog: catalog(), hasCatalog: true}
	st.view.Settings = dcs.Settings{Parameters: map[string]string{"work_mem": "4MB", "log_connections": "on"}}
	st.view.SettingsRevision = 7
	c := Controller{Actor: alice, Cluster: "main", Now: func() time.Time { return t0 }}
	got, err := c.EditSettings(context.Background(), st, labTiming(), func(d *Document) error {
		delete(d.PostgreSQL.Parameters, "log_connections")
		return sets("postgresql.parameters.work_mem=8MB", "postgresql.parameters.Shared_Buffers=256MB")(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"postgresql.parameters.log_connections", "postgresql.parameters.shared_buffers", "postgresql.parameters.work_mem"}
	if !slices.Equal(got.Changed, want) || !slices.Equal(got.NeedRestart, []string{"postgresql.parameters.shared_buffers"}) {
		t.Fatalf("changed %v, restart %v", got.Changed, got.NeedRestart)
	}
	w := st.writes[0]
	if w.Parameters["work_mem"] != "8MB" || !slices.Equal(w.Removed, []string{"log_connections"}) || w.Timing.IsSet() {
		t.Fatalf("stored %+v: want work_mem 8MB, log_connections to reset, no timing (a parameter edit leaves timing to the files)", w)
	}
	if w.ChangedBy != alice || !w.ChangedAt.Equal(t0) || got.Revision != 8 {
		t.Fatalf("stored by %v at %v, revision %d", w.ChangedBy, w.ChangedAt, got.Revision)
	}
	rec := st.records[0].(timeline.Record)
	if rec.Kind != SettingsRecordKind || rec.RequestedBy != alice.By || !strings.Contains(rec.Reason, "pending restart: postgresql.parameters.shared_buffers") {
		t.Fatalf("record %+v", rec)
	}

	// Setting a removed parameter again takes it off the reset list.
	if _, err := c.EditSettings(context.Background(), st, labTiming(), sets("postgresql.parameters.log_connections=off")); err != nil {
		t.Fatal(err)
	}
	if w := st.writes[1]; len(w.Removed) != 0 || w.Parameters["log_connections"] != "off" {
		t.Fatalf("stored %+v", w)
	}
}

func TestEditSettingsTimingStartsFromTheFile(t *testing.T) {
	st := &settingsStore{catalog: catalog(), hasCatalog: true}
	got, err := Controller{Actor: alice}.EditSettings(context.Background(), st, labTiming(), sets("timing.lease_ttl=4s"))
	if err != nil {
		t.Fatal(err)
	}
	want := labTiming()
	want.LeaseTTL = 4 * time.Second
	if got.Settings.Timing != want {
		t.Fatalf("timing %+v, want the file's with lease_ttl 4s %+v", got.Settings.Timing, want)
	}
}

func TestEditSettingsConcurrentEditIsRefused(t *testing.T) {
	st := &settingsStore{catalog: catalog(), hasCatalog: true, concurrent: &dcs.Settings{Parameters: map[string]string{"work_mem": "16MB"}}}
	_, err := Controller{Actor: alice}.EditSettings(context.Background(), st, labTiming(), sets("postgresql.parameters.work_mem=8MB"))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "changed the settings meanwhile") {
		t.Fatalf("err = %v", err)
	}
	if st.view.Settings.Parameters["work_mem"] != "16MB" {
		t.Fatalf("the other operator's edit was overwritten: %+v", st.view.Settings)
	}
}

func TestEditSettingsUnchangedWritesNothing(t *testing.T) {
	st := &settingsStore{catalog: catalog(), hasCatalog: true}
	st.view.Settings = dcs.Settings{Parameters: map[string]string{"work_mem": "8MB"}}
	got, err := Controller{}.EditSettings(context.Background(), st, labTiming(), sets("postgresql.parameters.work_mem=8MB"))
	if err != nil || len(got.Changed) != 0 || len(st.writes) != 0 {
		t.Fatalf("got %+v, err %v, writes %d", got, err, len(st.writes))
	}
}

func TestDocumentRoundTripAndStrictParse(t *testing.T) {
	s := dcs.Settings{Parameters: map[string]string{"work_mem": "8MB"}, Timing: labTiming()}
	data, err := DocumentOf(s).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	if back := d.settings(dcs.SharedTiming{}); back.Timing != s.Timing || back.Parameters["work_mem"] != "8MB" {
		t.Fatalf("round trip of\n%s gave %+v", data, back)
	}
	for _, bad := range []string{"timing:\n  lease_tt: 3s\n", "timing:\n  lease_ttl: soon\n", "postgresql:\n  parameters: [a]\n"} {
		if _, err := ParseDocument([]byte(bad)); !errors.Is(err, ErrRefused) {
			t.Errorf("ParseDocument(%q) = %v, want refused", bad, err)
		}
	}
}
