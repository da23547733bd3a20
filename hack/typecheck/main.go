// Command typecheck type-checks Go packages as they would be built for
// another platform, cgo included, on a machine that cannot compile that
// build: it is how the macOS driver (host/driver/vz, darwin && cgo) is
// verified from Linux, where no macOS SDK or cross C compiler exists.
//
//	go run ./hack/typecheck [-platforms darwin/arm64,darwin/amd64] [-C dir] [-tags t] [-v] [packages]
//
// The packages (default ./host/... ./cmd/vmbox) and all their dependencies
// are listed by `go list -deps` for each platform with CGO_ENABLED=1, then
// parsed and type-checked with go/types from source, dependencies first.
// Cgo files are included: with FakeImportC, references to package C
// type-check loosely (they have no types), so Go code calling a cgo
// package's Go API is checked in full while the cgo internals cannot be.
//
// Errors are reported only for packages of the main module (the one in
// -C): dependencies are checked without function bodies, for their API,
// and what FakeImportC cannot type in their cgo internals is not our
// concern. The errors go to stdout as file:line:col: message; the exit
// status is 1 when there are any, 2 when the check could not run.
//
// What this does not catch: anything only the compiler, cgo or the linker
// sees (C declarations and their argument types, //export, missing symbols),
// and mistakes hidden behind a C-typed value.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// defaultPatterns are the host packages (and the CLI that links them),
// which is everything the macOS build compiles.
var defaultPatterns = []string{"./host/...", "./cmd/vmbox"}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("typecheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	platforms := fs.String("platforms", "darwin/arm64,darwin/amd64", "comma-separated GOOS/GOARCH pairs to check, each with cgo enabled")
	dir := fs.String("C", ".", "directory of the module to check")
	tags := fs.String("tags", "", "comma-separated extra build tags")
	verbose := fs.Bool("v", false, "list the packages checked and the (ignored) errors in dependencies")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: typecheck [flags] [packages]  (default packages: "+strings.Join(defaultPatterns, " ")+")")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = defaultPatterns
	}
	cwd, _ := os.Getwd()
	failed := false
	for _, p := range strings.Split(*platforms, ",") {
		goos, goarch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || goos == "" || goarch == "" {
			fmt.Fprintf(stderr, "typecheck: platform %q: want GOOS/GOARCH\n", p)
			return 2
		}
		res, err := check(ctx, options{
			Dir: *dir, GOOS: goos, GOARCH: goarch, Tags: *tags, Patterns: patterns,
		})
		if err != nil {
			fmt.Fprintf(stderr, "typecheck %s/%s: %v\n", goos, goarch, err)
			return 2
		}
		for _, d := range res.Errors {
			fmt.Fprintln(stdout, d.format(cwd))
		}
		if *verbose {
			for _, p := range res.Checked {
				fmt.Fprintf(stderr, "checked %s (%d files)\n", p.ImportPath, len(p.Files))
			}
			for _, d := range res.DepErrors {
				fmt.Fprintf(stderr, "ignored (dependency): %s\n", d.format(cwd))
			}
		}
		status := "ok"
		if len(res.Errors) > 0 {
			status = fmt.Sprintf("%d errors", len(res.Errors))
			failed = true
		}
		fmt.Fprintf(stderr, "typecheck %s/%s cgo: %d packages of this module, %d dependencies: %s\n",
			goos, goarch, len(res.Checked), res.Deps, status)
	}
	if failed {
		return 1
	}
	return 0
}

// options say what to check.
type options struct {
	Dir      string // where go list runs: the main module
	GOOS     string
	GOARCH   string
	Tags     string
	Patterns []string
	// Env is added to go list's environment (after the platform's).
	Env []string
}

// result is what check found.
type result struct {
	Errors    []diag    // in packages of the main module, sorted
	DepErrors []diag    // in dependencies: not failures
	Checked   []checked // packages of the main module, sorted by path
	Deps      int       // dependencies type-checked
}

// checked is one package of the main module that was type-checked.
type checked struct {
	ImportPath string
	Files      []string // absolute paths of the Go and cgo files checked
}

// diag is one error at a position.
type diag struct {
	Pos token.Position
	Msg string
}

func (d diag) format(cwd string) string {
	name := d.Pos.Filename
	if cwd != "" {
		if rel, err := filepath.Rel(cwd, name); err == nil && !strings.HasPrefix(rel, "..") {
			name = rel
		}
	}
	switch {
	case name == "":
		return d.Msg
	case d.Pos.Line == 0:
		return name + ": " + d.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", name, d.Pos.Line, d.Pos.Column, d.Msg)
}

// listed is what check reads of go list's output.
type listed struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	ImportMap  map[string]string
	Module     *struct {
		Path      string
		Main      bool
		GoVersion string
	}
	Error *struct {
		Pos string
		Err string
	}
}

func (p *listed) ours() bool { return p.Module != nil && p.Module.Main }

// list runs go list -deps for o and returns the packages, dependencies
// before the packages that import them.
func list(ctx context.Context, o options) ([]*listed, error) {
	args := []string{"list", "-e", "-deps",
		"-json=ImportPath,Name,Dir,GoFiles,CgoFiles,Imports,ImportMap,Module,Error"}
	if o.Tags != "" {
		args = append(args, "-tags", o.Tags)
	}
	args = append(args, "--")
	args = append(args, o.Patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "GOOS="+o.GOOS, "GOARCH="+o.GOARCH, "CGO_ENABLED=1")
	cmd.Env = append(cmd.Env, o.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []*listed
	dec := json.NewDecoder(&stdout)
	for {
		p := new(listed)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// node is one package being type-checked.
type node struct {
	pkg   *listed
	done  chan struct{} // closed when types is set (nil if it could not be checked)
	types *types.Package
	errs  []diag
	files []string
}

// check lists and type-checks o's packages.
func check(ctx context.Context, o options) (*result, error) {
	pkgs, err := list(ctx, o)
	if err != nil {
		return nil, err
	}
	nodes := make(map[string]*node, len(pkgs))
	for _, p := range pkgs {
		nodes[p.ImportPath] = &node{pkg: p, done: make(chan struct{})}
	}
	fset := token.NewFileSet()
	sizes := types.SizesFor("gc", o.GOARCH)
	if sizes == nil {
		return nil, fmt.Errorf("unknown GOARCH %q", o.GOARCH)
	}
	// Each package waits for its imports; a semaphore bounds the work.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(n.done)
			for _, imp := range n.pkg.Imports {
				if dep := nodes[imp]; dep != nil {
					<-dep.done
				}
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			n.check(fset, sizes, nodes)
		}()
	}
	wg.Wait()

	res := &result{}
	for _, p := range pkgs {
		n := nodes[p.ImportPath]
		if !p.ours() {
			if p.ImportPath != "unsafe" {
				res.Deps++
			}
			res.DepErrors = append(res.DepErrors, n.errs...)
			continue
		}
		res.Errors = append(res.Errors, n.errs...)
		res.Checked = append(res.Checked, checked{ImportPath: p.ImportPath, Files: n.files})
	}
	if len(res.Checked) == 0 {
		return nil, fmt.Errorf("no package of the main module in %s matches %s", o.Dir, strings.Join(o.Patterns, " "))
	}
	sortDiags(res.Errors)
	sort.Slice(res.Checked, func(i, j int) bool { return res.Checked[i].ImportPath < res.Checked[j].ImportPath })
	return res, nil
}

func sortDiags(ds []diag) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Pos, ds[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// check parses and type-checks n once its imports are done.
func (n *node) check(fset *token.FileSet, sizes types.Sizes, nodes map[string]*node) {
	p := n.pkg
	if p.ImportPath == "unsafe" {
		n.types = types.Unsafe
		return
	}
	if p.Error != nil {
		n.errs = append(n.errs, diag{Pos: parsePos(p.Error.Pos), Msg: p.Error.Err})
	}
	names := append(append([]string(nil), p.GoFiles...), p.CgoFiles...)
	if len(names) == 0 {
		return
	}
	var files []*ast.File
	for _, name := range names {
		path := filepath.Join(p.Dir, name)
		n.files = append(n.files, path)
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			var list scanner.ErrorList
			if errors.As(err, &list) {
				for _, e := range list {
					n.errs = append(n.errs, diag{Pos: e.Pos, Msg: e.Msg})
				}
			} else {
				n.errs = append(n.errs, diag{Pos: token.Position{Filename: path}, Msg: err.Error()})
			}
		}
		if f != nil {
			files = append(files, f)
		}
	}
	conf := types.Config{
		Importer: importer(func(path string) (*types.Package, error) {
			if path == "unsafe" {
				return types.Unsafe, nil
			}
			if m, ok := p.ImportMap[path]; ok {
				path = m
			}
			dep := nodes[path]
			if dep == nil {
				return nil, fmt.Errorf("package %s is not in go list's output", path)
			}
			<-dep.done
			if dep.types == nil {
				return nil, fmt.Errorf("package %s could not be type-checked", path)
			}
			return dep.types, nil
		}),
		FakeImportC: true,
		// A dependency is checked for its API only: faster, and its cgo
		// function bodies are where FakeImportC would invent errors.
		IgnoreFuncBodies: !p.ours(),
		Sizes:            sizes,
		Error: func(err error) {
			var te types.Error
			if errors.As(err, &te) {
				n.errs = append(n.errs, diag{Pos: te.Fset.Position(te.Pos), Msg: te.Msg})
				return
			}
			n.errs = append(n.errs, diag{Msg: err.Error()})
		},
	}
	if p.Module != nil && p.Module.GoVersion != "" {
		conf.GoVersion = "go" + p.Module.GoVersion
	}
	// Errors arrive through conf.Error; the package is usable regardless.
	n.types, _ = conf.Check(p.ImportPath, fset, files, nil)
}

// importer adapts a function to types.Importer.
type importer func(path string) (*types.Package, error)

func (f importer) Import(path string) (*types.Package, error) { return f(path) }

// parsePos parses go list's "file:line:col" error positions.
func parsePos(s string) token.Position {
	var pos token.Position
	rest := s
	for i := 0; i < 2; i++ {
		j := strings.LastIndexByte(rest, ':')
		if j < 0 {
			break
		}
		var v int
		if _, err := fmt.Sscanf(rest[j+1:], "%d", &v); err != nil {
			break
		}
		pos.Column, pos.Line = pos.Line, v
		rest = rest[:j]
	}
	pos.Filename = rest
	return pos
}
