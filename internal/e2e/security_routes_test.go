package e2e

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// apiRoute is one pattern registered on the API's mux.
type apiRoute struct {
	Method string // "" matches every method
	Path   string
	At     string // file:line of the registration
}

// Mutating: anything but a read. A pattern without a method takes POST too.
func (r apiRoute) Mutating() bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// RequestMethod is the method that reaches the route.
func (r apiRoute) RequestMethod() string {
	if r.Method == "" {
		return http.MethodPost
	}
	return r.Method
}

// RequestPath fills the path's wildcards with a node name.
func (r apiRoute) RequestPath() string {
	return wildcard.ReplaceAllString(r.Path, "node1")
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

func (r apiRoute) String() string { return strings.TrimSpace(r.Method + " " + r.Path) }

// apiRoutes reads every pattern the API registers, from the source of
// package api: each call of Handle or HandleFunc with a pattern built of
// string constants (local, or another package's), literals, and the
// variable of a range over a literal list. A pattern it cannot evaluate
// fails the test, so a route added in a new way is never silently left out
// of the attacks.
func apiRoutes(t *testing.T) []apiRoute {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "api"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &constEval{fset: token.NewFileSet(), pkgs: map[string]*parsedPkg{}, srcDir: dir}
	pkg, err := ev.parseDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[apiRoute]bool{}
	var routes []apiRoute
	for _, f := range pkg.files {
		var stack []ast.Node
		ast.Inspect(f, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			stack = append(stack, n)
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || len(call.Args) != 2 {
				return true
			}
			at := ev.fset.Position(call.Pos())
			where := fmt.Sprintf("%s:%d", filepath.Base(at.Filename), at.Line)
			patterns, err := ev.eval(pkg, f, stack, call.Args[0])
			if err != nil {
				t.Fatalf("route registered at %s: cannot evaluate its pattern (%v): teach apiRoutes this form, so that the attacker test covers it", where, err)
			}
			for _, p := range patterns {
				r := apiRoute{Path: p, At: where}
				if m, path, ok := strings.Cut(p, " "); ok {
					r.Method, r.Path = m, strings.TrimSpace(path)
				}
				if !strings.HasPrefix(r.Path, "/") {
					t.Fatalf("route registered at %s: pattern %q has a host or no path", where, p)
				}
				key := apiRoute{Method: r.Method, Path: r.Path}
				if !seen[key] {
					seen[key] = true
					routes = append(routes, r)
				}
			}
			return true
		})
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].String() < routes[j].String() })
	return routes
}

type parsedPkg struct {
	dir   string
	files []*ast.File
}

// constEval evaluates string expressions of Go source.
type constEval struct {
	fset   *token.FileSet
	pkgs   map[string]*parsedPkg
	srcDir string
}

func (e *constEval) parseDir(dir string) (*parsedPkg, error) {
	if p, ok := e.pkgs[dir]; ok {
		return p, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	p := &parsedPkg{dir: dir}
	for _, de := range entries {
		name := de.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(e.fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		p.files = append(p.files, f)
	}
	e.pkgs[dir] = p
	return p, nil
}

// eval returns the values expr can take: several for the variable of a
// range over a literal list.
func (e *constEval) eval(pkg *parsedPkg, file *ast.File, stack []ast.Node, expr ast.Expr) ([]string, error) {
	switch x := expr.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return nil, fmt.Errorf("literal %s is no string", x.Value)
		}
		v, err := strconv.Unquote(x.Value)
		return []string{v}, err
	case *ast.ParenExpr:
		return e.eval(pkg, file, stack, x.X)
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return nil, fmt.Errorf("operator %s", x.Op)
		}
		left, err := e.eval(pkg, file, stack, x.X)
		if err != nil {
			return nil, err
		}
		right, err := e.eval(pkg, file, stack, x.Y)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, l := range left {
			for _, r := range right {
				out = append(out, l+r)
			}
		}
		return out, nil
	case *ast.Ident:
		for i := len(stack) - 1; i >= 0; i-- {
			rs, ok := stack[i].(*ast.RangeStmt)
			if !ok {
				continue
			}
			if v, ok := rs.Value.(*ast.Ident); ok && v.Name == x.Name {
				list, ok := rs.X.(*ast.CompositeLit)
				if !ok {
					return nil, fmt.Errorf("%s ranges over something other than a literal list", x.Name)
				}
				var out []string
				for _, elt := range list.Elts {
					vs, err := e.eval(pkg, file, stack, elt)
					if err != nil {
						return nil, err
					}
					out = append(out, vs...)
				}
				return out, nil
			}
		}
		return e.constant(pkg, x.Name)
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		if !ok {
			return nil, fmt.Errorf("selector %T", x.X)
		}
		path, err := importPath(file, id.Name)
		if err != nil {
			return nil, err
		}
		dir, err := e.packageDir(path)
		if err != nil {
			return nil, err
		}
		other, err := e.parseDir(dir)
		if err != nil {
			return nil, err
		}
		return e.constant(other, x.Sel.Name)
	}
	return nil, fmt.Errorf("expression %T", expr)
}

// packageDir finds an imported package: this module's by its path under
// the module root, the standard library's under GOROOT.
func (e *constEval) packageDir(path string) (string, error) {
	root := filepath.Join(e.srcDir, "..", "..")
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(mod), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			if rest, ok := strings.CutPrefix(path, strings.TrimSpace(m)+"/"); ok {
				return filepath.Join(root, filepath.FromSlash(rest)), nil
			}
			break
		}
	}
	bp, err := build.Default.Import(path, e.srcDir, build.FindOnly)
	if err != nil || !bp.Goroot {
		return "", fmt.Errorf("find package %s (neither this module's nor the standard library's): %v", path, err)
	}
	return bp.Dir, nil
}

// constant evaluates a package-level constant of pkg.
func (e *constEval) constant(pkg *parsedPkg, name string) ([]string, error) {
	for _, f := range pkg.files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name == name && i < len(vs.Values) {
						return e.eval(pkg, f, nil, vs.Values[i])
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("no string constant %s in %s", name, pkg.dir)
}

func importPath(f *ast.File, name string) (string, error) {
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return "", err
		}
		local := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local == name {
			return path, nil
		}
	}
	return "", fmt.Errorf("no import named %s", name)
}

// TestAPIRoutesAreReadFromTheMux: the list the attacker test works through
// is what the API's source registers, including the routes everyone knows
// must be there, and every mutating one among them.
func TestAPIRoutesAreReadFromTheMux(t *testing.T) {
	routes := apiRoutes(t)
	var mutating []string
	all := map[string]bool{}
	for _, r := range routes {
		all[r.String()] = true
		if r.Mutating() {
			mutating = append(mutating, r.String())
		}
	}
	for _, want := range []string{"POST /switchover", "POST /failover", "POST /pause", "POST /resume", "POST /failsafe", "GET /cluster", "GET /metrics", "GET /primary", "OPTIONS /primary"} {
		if !all[want] {
			t.Errorf("%s missing from the routes read from package api: %v", want, routes)
		}
	}
	t.Logf("mutating routes: %v", mutating)
}
