package dcs

import (
	"errors"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/pgparam"
)

// TestSettingsCatalogAndRestartKeys: against a real etcd, the settings
// key is written only at the revision read (with its history record),
// the parameter catalog round-trips, and a restart plan is replaced only
// at the revision read and removed with nil.
func TestSettingsCatalogAndRestartKeys(t *testing.T) {
	_, urls := startCluster(t, 1)
	ctx := ctxT(t)
	s := openStore(t, urls, 5*time.Second)
	at := time.Now()
	first := Settings{Parameters: map[string]string{"work_mem": "8MB"}, ChangedAt: at}
	rev, err := s.ReplaceSettings(ctx, first, 0, map[string]string{"kind": "config"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Snapshot(ctx)
	if err != nil || v.SettingsRevision != rev || v.Settings.Parameters["work_mem"] != "8MB" {
		t.Fatalf("snapshot: revision %d (wrote %d), settings %+v, err %v", v.SettingsRevision, rev, v.Settings, err)
	}
	if _, err := s.ReplaceSettings(ctx, Settings{ChangedAt: at.Add(time.Second)}, 0, nil); !errors.Is(err, ErrSettingsChanged) {
		t.Fatalf("write at a stale revision: %v, want ErrSettingsChanged", err)
	}
	if recs, err := s.History(ctx); err != nil || len(recs) != 1 {
		t.Fatalf("history: %d records, err %v; want the one edit's", len(recs), err)
	}

	if _, ok, err := s.Catalog(ctx); ok || err != nil {
		t.Fatalf("catalog before any was published: ok %t, err %v", ok, err)
	}
	cat := Catalog{Node: "node1", Version: "15.8", Parameters: []pgparam.Spec{{Name: "wal_level", Vartype: "enum", EnumVals: []string{"replica", "logical"}, Context: "postmaster"}}}
	if err := s.PublishCatalog(ctx, cat); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Catalog(ctx)
	if err != nil || !ok || got.Node != "node1" || len(got.Parameters) != 1 || got.Parameters[0].EnumVals[1] != "logical" {
		t.Fatalf("catalog %+v, ok %t, err %v", got, ok, err)
	}

	plan := RestartPlan{ID: "restart-1", Order: []string{"node2", "node1"}, Created: at}
	if err := s.ReplaceRestart(ctx, &plan, 0, at, nil); err != nil {
		t.Fatal(err)
	}
	v, err = s.Snapshot(ctx)
	if err != nil || v.Restart == nil || v.Restart.ID != "restart-1" || v.RestartRevision == 0 {
		t.Fatalf("snapshot restart %+v at %d, err %v", v.Restart, v.RestartRevision, err)
	}
	if err := s.ReplaceRestart(ctx, nil, v.RestartRevision-1, at, nil); !errors.Is(err, ErrRequestChanged) {
		t.Fatalf("remove at a stale revision: %v", err)
	}
	if err := s.ReplaceRestart(ctx, nil, v.RestartRevision, at, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Snapshot(ctx); err != nil || v.Restart != nil {
		t.Fatalf("after removal: %+v, %v", v.Restart, err)
	}
}
