package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-ha/vigil/internal/config"
	"github.com/vigil-ha/vigil/internal/dcs"
	"github.com/vigil-ha/vigil/internal/pgparam"
	"github.com/vigil-ha/vigil/internal/timeline"
)

// SettingsRecordKind is the history record kind of an edit of the
// cluster-wide settings.
const SettingsRecordKind = "config"

// SettingsStore is the part of the DCS an edit of the cluster-wide
// settings needs.
type SettingsStore interface {
	Snapshot(ctx context.Context) (dcs.View, error)
	Catalog(ctx context.Context) (dcs.Catalog, bool, error)
	ReplaceSettings(ctx context.Context, s dcs.Settings, revision int64, record any) (int64, error)
}

// Document is the YAML form of the cluster-wide settings that operators
// read and edit: the node file's key names, so that a setting moves from
// the file to the DCS under the same name.
type Document struct {
	PostgreSQL DocumentPostgreSQL `yaml:"postgresql"`
	// Timing and Failover are absent until set: each node's file decides.
	Timing   *DocumentTiming   `yaml:"timing,omitempty"`
	Failover *DocumentFailover `yaml:"failover,omitempty"`
}

// DocumentPostgreSQL holds the server parameters every member applies.
type DocumentPostgreSQL struct {
	Parameters map[string]string `yaml:"parameters"`
}

// DocumentTiming is the shared part of a node file's timing section.
type DocumentTiming struct {
	LeaseTTL     time.Duration `yaml:"lease_ttl"`
	LoopInterval time.Duration `yaml:"loop_interval"`
	DCSTimeout   time.Duration `yaml:"dcs_timeout"`
}

// DocumentFailover is the shared part of a node file's failover section.
type DocumentFailover struct {
	MaximumLagOnFailover uint64 `yaml:"maximum_lag_on_failover"`
	SynchronousMode      string `yaml:"synchronous_mode"`
	PrimaryCrash         string `yaml:"primary_crash"`
}

// DocumentOf is the editable form of s.
func DocumentOf(s dcs.Settings) Document {
	d := Document{PostgreSQL: DocumentPostgreSQL{Parameters: maps.Clone(s.Parameters)}}
	if d.PostgreSQL.Parameters == nil {
		d.PostgreSQL.Parameters = map[string]string{}
	}
	if t := s.Timing; t.IsSet() {
		d.Timing = &DocumentTiming{LeaseTTL: t.LeaseTTL, LoopInterval: t.LoopInterval, DCSTimeout: t.DCSTimeout}
		d.Failover = &DocumentFailover{MaximumLagOnFailover: t.MaximumLagOnFailover, SynchronousMode: t.SynchronousMode, PrimaryCrash: t.PrimaryCrash}
	}
	return d
}

// Marshal renders d as YAML.
func (d Document) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("render settings: %w", err)
	}
	return b.Bytes(), enc.Close()
}

// ParseDocument reads the YAML of an edit: an unknown key or a value of
// the wrong type is refused with its line.
func ParseDocument(data []byte) (Document, error) {
	var d Document
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil && !errors.Is(err, io.EOF) {
		return Document{}, refuse("settings: %v", err)
	}
	return d, nil
}

// Set applies one --set KEY=VALUE to d: postgresql.parameters.NAME, or a
// timing or failover key of the node file's shared part. Setting timing or
// failover when the DCS holds none starts from base, the timing the
// cluster runs with (a node's file).
func (d *Document) Set(assignment string, base dcs.SharedTiming) error {
	key, value, ok := strings.Cut(assignment, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return refuse("--set %q: use KEY=VALUE, e.g. postgresql.parameters.work_mem=8MB or timing.lease_ttl=10s", assignment)
	}
	if name, ok := strings.CutPrefix(key, "postgresql.parameters."); ok && name != "" {
		if d.PostgreSQL.Parameters == nil {
			d.PostgreSQL.Parameters = map[string]string{}
		}
		d.PostgreSQL.Parameters[name] = value
		return nil
	}
	if d.Timing == nil || d.Failover == nil {
		seeded := DocumentOf(dcs.Settings{Timing: base})
		d.Timing, d.Failover = seeded.Timing, seeded.Failover
	}
	var err error
	switch key {
	case "timing.lease_ttl":
		d.Timing.LeaseTTL, err = time.ParseDuration(value)
	case "timing.loop_interval":
		d.Timing.LoopInterval, err = time.ParseDuration(value)
	case "timing.dcs_timeout":
		d.Timing.DCSTimeout, err = time.ParseDuration(value)
	case "failover.maximum_lag_on_failover":
		d.Failover.MaximumLagOnFailover, err = strconv.ParseUint(value, 10, 64)
	case "failover.synchronous_mode":
		d.Failover.SynchronousMode = value
	case "failover.primary_crash":
		d.Failover.PrimaryCrash = value
	default:
		return refuse("--set %s: not a cluster-wide setting: use postgresql.parameters.NAME, timing.lease_ttl, timing.loop_interval, timing.dcs_timeout, failover.maximum_lag_on_failover, failover.synchronous_mode or failover.primary_crash", key)
	}
	if err != nil {
		return refuse("--set %s: %q is not of the right type: %v", key, value, err)
	}
	return nil
}

// settings is d as stored; a document that sets only one of timing and
// failover takes the other from base.
func (d Document) settings(base dcs.SharedTiming) dcs.Settings {
	s := dcs.Settings{}
	for name, value := range d.PostgreSQL.Parameters {
		if s.Parameters == nil {
			s.Parameters = map[string]string{}
		}
		// The server's names are case-insensitive: one spelling each.
		s.Parameters[strings.ToLower(name)] = value
	}
	if d.Timing == nil && d.Failover == nil {
		return s
	}
	s.Timing = base
	if t := d.Timing; t != nil {
		s.Timing.LeaseTTL, s.Timing.LoopInterval, s.Timing.DCSTimeout = t.LeaseTTL, t.LoopInterval, t.DCSTimeout
	}
	if f := d.Failover; f != nil {
		s.Timing.MaximumLagOnFailover, s.Timing.SynchronousMode, s.Timing.PrimaryCrash = f.MaximumLagOnFailover, f.SynchronousMode, f.PrimaryCrash
	}
	return s
}

// SharedOf is the shared part of a node's configuration.
func SharedOf(c *config.Config) dcs.SharedTiming {
	return dcs.SharedTiming{
		LeaseTTL: c.Timing.LeaseTTL, LoopInterval: c.Timing.LoopInterval, DCSTimeout: c.Timing.DCSTimeout,
		MaximumLagOnFailover: c.Failover.MaximumLagOnFailover, SynchronousMode: c.Failover.SynchronousMode, PrimaryCrash: c.Failover.PrimaryCrash,
	}
}

// ApplyShared makes t, when set, c's shared settings: once in the DCS,
// they win over the node's file.
func ApplyShared(c *config.Config, t dcs.SharedTiming) {
	if !t.IsSet() {
		return
	}
	c.Timing.LeaseTTL, c.Timing.LoopInterval, c.Timing.DCSTimeout = t.LeaseTTL, t.LoopInterval, t.DCSTimeout
	c.Failover.MaximumLagOnFailover, c.Failover.SynchronousMode, c.Failover.PrimaryCrash = t.MaximumLagOnFailover, t.SynchronousMode, t.PrimaryCrash
}

// CheckSettings checks s before it is written: every parameter against
// the catalog (name, type, range; nothing Vigil sets itself), the timing
// and failover policy with the node file's rules (the lease arithmetic).
// It returns every reason, each naming its rule, or nil.
func CheckSettings(s dcs.Settings, cat dcs.Catalog, haveCatalog bool) error {
	var reasons []string
	if len(s.Parameters) > 0 && !haveCatalog {
		reasons = append(reasons, "postgresql.parameters: no parameter catalog in the DCS yet (a leader's agent publishes its pg_settings there): parameters cannot be checked, so none are accepted")
	}
	if haveCatalog {
		specs := pgparam.Catalog{}
		for _, p := range cat.Parameters {
			specs[p.Name] = p
		}
		for _, name := range slices.Sorted(maps.Keys(s.Parameters)) {
			if err := specs.Check(name, s.Parameters[name]); err != nil {
				if best := config.Closest(name, maps.Keys(specs)); errors.Is(err, pgparam.ErrUnknown) && best != "" {
					err = fmt.Errorf("%w (did you mean %s?)", err, best)
				}
				reasons = append(reasons, fmt.Sprintf("postgresql.parameters.%s: %v (checked against %s's pg_settings, server %s)", name, err, cat.Node, cat.Version))
			}
		}
	}
	if s.Timing.IsSet() {
		c := config.Defaults()
		ApplyShared(&c, s.Timing)
		for _, p := range c.SharedProblems() {
			reasons = append(reasons, p.String())
		}
	}
	if len(reasons) > 0 {
		return refuse("settings not written, nothing changed:\n  %s", strings.Join(reasons, "\n  "))
	}
	return nil
}

// Edited is the outcome of a settings edit.
type Edited struct {
	Settings dcs.Settings
	Revision int64
	// Changed lists each parameter or timing key whose value changed;
	// NeedRestart those of Changed that take effect only at a restart.
	Changed     []string
	NeedRestart []string
}

// EditSettings reads the cluster-wide settings, lets edit change their
// document, checks the result (CheckSettings) and writes it only if nobody
// wrote the key meanwhile. base is the shared timing the cluster runs with
// while the DCS holds none (a node's file). A refused edit changes nothing.
func (c Controller) EditSettings(ctx context.Context, store SettingsStore, base dcs.SharedTiming, edit func(*Document) error) (Edited, error) {
	v, err := store.Snapshot(ctx)
	if err != nil {
		return Edited{}, fmt.Errorf("edit settings: %w", err)
	}
	doc := DocumentOf(v.Settings)
	if err := edit(&doc); err != nil {
		return Edited{}, fmt.Errorf("edit settings: %w", err)
	}
	next := doc.settings(base)
	cat, haveCatalog, err := store.Catalog(ctx)
	if err != nil {
		return Edited{}, fmt.Errorf("edit settings: %w", err)
	}
	if err := CheckSettings(next, cat, haveCatalog); err != nil {
		return Edited{}, fmt.Errorf("edit settings: %w", err)
	}
	out := Edited{Changed: changedKeys(v.Settings, next)}
	if len(out.Changed) == 0 {
		return Edited{Settings: v.Settings, Revision: v.SettingsRevision}, nil
	}
	next.Removed = removedParameters(v.Settings, next)
	for _, name := range out.Changed {
		if spec, ok := findSpec(cat, strings.TrimPrefix(name, "postgresql.parameters.")); ok && spec.NeedsRestart() {
			out.NeedRestart = append(out.NeedRestart, name)
		}
	}
	next.ChangedBy, next.ChangedAt = c.Actor, c.now()
	rev, err := store.ReplaceSettings(ctx, next, v.SettingsRevision, c.settingsRecord(next, out))
	if errors.Is(err, dcs.ErrSettingsChanged) {
		return Edited{}, fmt.Errorf("edit settings: %w", refuse("another operator changed the settings meanwhile; nothing written: look at show-config and retry"))
	}
	if err != nil {
		return Edited{}, fmt.Errorf("edit settings: %w", err)
	}
	out.Settings, out.Revision = next, rev
	return out, nil
}

func findSpec(cat dcs.Catalog, name string) (pgparam.Spec, bool) {
	for _, p := range cat.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return pgparam.Spec{}, false
}

// changedKeys names every setting whose value differs between old and next.
func changedKeys(old, next dcs.Settings) []string {
	var keys []string
	for name, v := range next.Parameters {
		if ov, ok := old.Parameters[name]; !ok || ov != v {
			keys = append(keys, "postgresql.parameters."+name)
		}
	}
	for name := range old.Parameters {
		if _, ok := next.Parameters[name]; !ok {
			keys = append(keys, "postgresql.parameters."+name)
		}
	}
	if old.Timing != next.Timing {
		keys = append(keys, "timing")
	}
	sort.Strings(keys)
	return keys
}

// removedParameters is the parameters the agents must reset: those
// removed now and those removed before and not set again.
func removedParameters(old, next dcs.Settings) []string {
	removed := map[string]bool{}
	for _, name := range old.Removed {
		removed[name] = true
	}
	for name := range old.Parameters {
		removed[name] = true
	}
	for name := range next.Parameters {
		delete(removed, name)
	}
	return slices.Sorted(maps.Keys(removed))
}

func (c Controller) settingsRecord(s dcs.Settings, e Edited) timeline.Record {
	by := s.ChangedBy.OrUnknown()
	reason := "cluster-wide settings changed: " + strings.Join(e.Changed, ", ")
	if len(e.NeedRestart) > 0 {
		reason += "; pending restart: " + strings.Join(e.NeedRestart, ", ")
	}
	return timeline.Record{
		ID:   fmt.Sprintf("%s-%s", SettingsRecordKind, s.ChangedAt.UTC().Format("20060102T150405.000Z")),
		Kind: SettingsRecordKind, Cluster: c.Cluster, Reason: reason,
		Start: s.ChangedAt, End: s.ChangedAt, OK: true,
		RequestedBy: by.By, RequestedFrom: by.From,
	}
}
