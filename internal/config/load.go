package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration file at path and completes it with the
// defaults. Anything wrong with the file's syntax or shape (broken YAML, a
// value of the wrong type, an unknown key, a literal password) is returned
// as Problems naming the file and line; a file that cannot be read is an
// ordinary error. Load does not judge the values: call Validate for that.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return parseNode(data, path)
}

// Parse is Load for a configuration already in memory.
func Parse(data []byte) (*Config, error) { return parseNode(data, "") }

func parseNode(data []byte, file string) (*Config, error) {
	c := Defaults()
	src, err := decode(data, file, &c, nodeFile())
	if err != nil {
		return nil, err
	}
	c.src = src
	c.Database.applyFlavorDefaults(c.src)
	c.applyDerivedDefaults()
	return &c, nil
}

// fileKind is what differs between the two kinds of configuration file as
// far as reading one goes: everything else is the one loader, decode.
type fileKind struct {
	// example is where every key is explained; keys lists the first
	// top-level ones; one is what a file holds.
	example, keys, one string
	// renamed maps the dotted path of a key's old name to its new last
	// element, in the same mapping. The old name is read for one release,
	// with a warning, so that no operator's file breaks silently.
	renamed map[string]string
}

func nodeFile() fileKind {
	return fileKind{example: "examples/vigil.yaml", keys: "cluster:, node:, database:, ...", one: "one node's configuration"}
}

// source is what a configuration remembers of the file it came from, so
// that problems found after decoding still name the file and the line to
// change.
type source struct {
	file string
	// lines maps a key's dotted path to its line; a key written with its
	// old name is recorded under the new one.
	lines map[string]int
	// deprecated holds a warning for each old name the file uses.
	deprecated Problems
}

// at builds a problem that points at field's line, if the file set it.
func (s source) at(field, format string, args ...any) Problem {
	return Problem{File: s.file, Line: s.lines[field], Field: field, Message: fmt.Sprintf(format, args...)}
}

// set reports whether the file gave field a value (as opposed to the value
// coming from the defaults).
func (s source) set(field string) bool {
	_, ok := s.lines[field]
	return ok
}

// decode is the loader of both kinds of file. It checks data against the
// type dst points to before decoding (broken YAML, wrong types, unknown
// keys with a suggestion, literal passwords: each a Problem with its line),
// reads old names of renamed keys as the new ones, and decodes onto dst,
// which holds the kind's defaults: every key the file leaves out keeps its
// default, and an explicit zero (priority: 0) stays as the file wrote it.
func decode(data []byte, file string, dst any, kind fileKind) (source, error) {
	root, err := parseDocument(data, kind)
	if err != nil {
		return source{}, inFile(err, file)
	}
	// The walk reports what yaml.v3 would report too, but with the key's
	// full path, a suggestion for misspelt keys and messages that never
	// quote a value that could be a password.
	t := reflect.TypeOf(dst).Elem()
	w := schemaWalker{lines: map[string]int{}, root: t, kind: kind}
	w.walk(root, t, "")
	if len(w.problems) > 0 {
		return source{}, inFile(w.problems, file)
	}
	if w.renamed {
		// The walk wrote the new names into the tree and has refused every
		// unknown key: decode the tree itself, whose nodes keep the file's
		// line numbers (re-encoding it would renumber them).
		err = root.Decode(dst)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err = dec.Decode(dst)
	}
	if err != nil {
		return source{}, inFile(yamlProblems(data, err), file)
	}
	src := source{file: file, lines: w.lines, deprecated: w.deprecated}
	for i := range src.deprecated {
		src.deprecated[i].File = file
	}
	return src, nil
}

// inFile names file in every problem of err.
func inFile(err error, file string) error {
	var ps Problems
	if !errors.As(err, &ps) {
		return err
	}
	for i := range ps {
		ps[i].File = file
	}
	return ps
}

// parseDocument returns the root mapping of the file's single document.
func parseDocument(data []byte, kind fileKind) (*yaml.Node, error) {
	emptyFile := "the file is empty: see " + kind.example + " for every key"
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Problems{{Message: emptyFile}}
		}
		return nil, yamlProblems(data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlProblems(data, err)
	default:
		return nil, Problems{{Line: extra.Line, Message: "a second YAML document (after ---): keep " + kind.one + " per file"}}
	}
	if len(doc.Content) == 0 {
		return nil, Problems{{Message: emptyFile}}
	}
	root := doc.Content[0]
	if root.ShortTag() == "!!null" {
		return nil, Problems{{Message: emptyFile}}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Problems{{Line: root.Line, Message: "the file must be a mapping of keys (" + kind.keys + "), see " + kind.example}}
	}
	return root, nil
}

// yamlProblems turns a yaml.v3 error ("yaml: line 3: ..." or a TypeError
// with one "line N: ..." per value) into Problems.
func yamlProblems(data []byte, err error) Problems {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		ps := make(Problems, 0, len(te.Errors))
		for _, e := range te.Errors {
			ps = append(ps, yamlProblem(data, e))
		}
		return ps
	}
	return Problems{yamlProblem(data, strings.TrimPrefix(err.Error(), "yaml: "))}
}

func yamlProblem(data []byte, msg string) Problem {
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); found && err == nil {
			line, msg = n, text
		}
	}
	// yaml.v3 says only "found character that cannot start any token"
	// about the most common slip of all.
	if lines := bytes.Split(data, []byte("\n")); line > 0 && line <= len(lines) {
		indent := lines[line-1][:len(lines[line-1])-len(bytes.TrimLeft(lines[line-1], " \t"))]
		if bytes.ContainsRune(indent, '\t') {
			msg += " (a tab in the indentation: YAML indents with spaces)"
		}
	}
	return Problem{Line: line, Message: "invalid YAML: " + msg}
}

// schemaWalker checks the YAML tree against the configuration's type
// before decoding.
type schemaWalker struct {
	problems Problems
	// lines records the line of every key the file sets (to a non-null
	// value), by dotted path.
	lines map[string]int
	root  reflect.Type
	kind  fileKind
	// deprecated warns of each old name read; renamed says the tree now
	// holds new names in their place.
	deprecated Problems
	renamed    bool
}

func (w *schemaWalker) report(line int, field, format string, args ...any) {
	w.problems = append(w.problems, Problem{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (w *schemaWalker) walk(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch {
	case isDuration(t):
		w.duration(n, path)
	case t.Kind() == reflect.Struct:
		w.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.report(n.Line, path, `must be a list: write [value, ...] or one "- value" per line`)
			return
		}
		for i, item := range n.Content {
			field := fmt.Sprintf("%s[%d]", path, i)
			w.lines[field] = item.Line
			w.walk(item, t.Elem(), field)
		}
	case t.Kind() == reflect.Map:
		w.stringMap(n, t, path)
	case t.Kind() == reflect.String:
		// The value is not quoted back: it could be a password put in the
		// wrong key.
		if n.Kind != yaml.ScalarNode {
			w.report(n.Line, path, "must be a single value, not a list or a mapping")
		}
	case t.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			w.report(n.Line, path, "must be true or false")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64,
		t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		w.integer(n, t, path)
	default:
		panic(fmt.Sprintf("config: no YAML check for %s at %s", t, path))
	}
}

func (w *schemaWalker) duration(n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int", "!!float":
			w.report(n.Line, path, "%s has no unit: write e.g. %ss or %sms", n.Value, n.Value, n.Value)
			return
		case "!!str":
			if _, err := time.ParseDuration(n.Value); err == nil {
				return
			}
			w.report(n.Line, path, "%q is not a duration: write a number with a unit, e.g. 10s, 500ms or 2m", n.Value)
			return
		}
	}
	w.report(n.Line, path, "must be a duration with a unit, e.g. 10s, 500ms or 2m")
}

func (w *schemaWalker) integer(n *yaml.Node, t reflect.Type, path string) {
	// yaml.v3 would truncate 1.5 to 1 without a word, hence the tag check.
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		w.report(n.Line, path, "must be a whole number")
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		if t.Kind() >= reflect.Uint && strings.HasPrefix(n.Value, "-") {
			w.report(n.Line, path, "must not be negative")
			return
		}
		w.report(n.Line, path, "%s is out of range", n.Value)
	}
}

func (w *schemaWalker) stringMap(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.report(n.Line, path, "must be a mapping of name: value pairs")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		field := path + "." + key.Value
		if first, dup := seen[key.Value]; dup {
			w.report(key.Line, field, "set twice (first on line %d)", first)
			continue
		}
		seen[key.Value] = key.Line
		w.lines[field] = key.Line
		w.walk(value, t.Elem(), field)
	}
}

func (w *schemaWalker) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.report(n.Line, path, "must be a mapping of keys, see %s", w.kind.example)
		return
	}
	fields := yamlFields(t)
	type written struct {
		line int
		name string
	}
	seen := map[string]written{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			w.report(key.Line, path, "a key must be a plain name")
			continue
		}
		name := key.Value
		if _, known := fields[name]; !known {
			if to, ok := w.kind.renamed[join(path, name)]; ok {
				name = to
			}
		}
		field := join(path, name)
		if first, dup := seen[name]; dup {
			as := ""
			if first.name != key.Value {
				as = ", as " + first.name
			}
			w.report(key.Line, join(path, key.Value), "set twice (first on line %d%s)", first.line, as)
			continue
		}
		seen[name] = written{key.Line, key.Value}
		if name != key.Value {
			w.deprecated = append(w.deprecated, Problem{Line: key.Line, Field: join(path, key.Value),
				Message: fmt.Sprintf("old name of %s: rename it; the old name is read in this release only", field)})
			key.Value, w.renamed = name, true
		}
		ft, known := fields[name]
		switch {
		case known:
			if value.ShortTag() != "!!null" {
				w.lines[field] = key.Line
			}
			w.walk(value, ft, field)
		case isPasswordKey(key.Value):
			w.report(key.Line, field, "passwords are not written in the configuration file: use password_file (a file only the agent's account can read, mode 0600) or password_env (an environment variable)")
		default:
			w.report(key.Line, field, "unknown key%s", w.suggest(name, path, fields))
		}
	}
}

func isPasswordKey(key string) bool {
	switch strings.ToLower(key) {
	case "password", "passwd", "pwd", "pass":
		return true
	}
	return false
}

// suggest returns " (did you mean ...?)" for an unknown key: a known key of
// the same mapping spelt almost the same, or a key of the same name that
// belongs elsewhere; "" when nothing is close.
func (w *schemaWalker) suggest(key, path string, fields map[string]reflect.Type) string {
	if best := Closest(key, maps.Keys(fields)); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	// The Pgpool command's file once said timing.readiness where a node's
	// says timing.readiness_timeout.
	if _, ok := fields[key+"_timeout"]; ok {
		return fmt.Sprintf(" (did you mean %q?)", key+"_timeout")
	}
	var elsewhere []string
	for _, p := range schemaPaths(w.root, "") {
		last := p[strings.LastIndex(p, ".")+1:]
		if normalizeKey(last) == normalizeKey(key) && p != join(path, key) {
			elsewhere = append(elsewhere, p)
		}
	}
	if len(elsewhere) > 0 {
		sort.Strings(elsewhere)
		return fmt.Sprintf(" here (did you mean %s?)", strings.Join(elsewhere, " or "))
	}
	return ""
}

// Closest returns the name spelt almost as key ("" when none is close):
// the suggestion for an unknown key or parameter name.
func Closest(key string, names iter.Seq[string]) string {
	// Short keys are close to many others ("host" is two edits from
	// "port"), so they get one edit of slack, longer ones two.
	maxDistance := 1
	if len(normalizeKey(key)) > 5 {
		maxDistance = 2
	}
	best, bestDistance := "", maxDistance+1
	for name := range names {
		d := editDistance(normalizeKey(key), normalizeKey(name))
		if d < bestDistance || (d == bestDistance && name < best) {
			best, bestDistance = name, d
		}
	}
	return best
}

// normalizeKey makes "loopInterval", "loop-interval" and "LOOP_INTERVAL"
// compare equal to "loop_interval".
func normalizeKey(k string) string {
	return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(k))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlFields maps the YAML keys of struct type t to their Go types,
// flattening ",inline" fields the way yaml.v3 does.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// schemaPaths lists the dotted path of every key in struct type t.
func schemaPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for name, ft := range yamlFields(t) {
		p := join(prefix, name)
		paths = append(paths, p)
		if ft.Kind() == reflect.Struct {
			paths = append(paths, schemaPaths(ft, p)...)
		}
	}
	return paths
}

func isDuration(t reflect.Type) bool { return t == reflect.TypeFor[time.Duration]() }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
