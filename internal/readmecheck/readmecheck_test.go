package readmecheck

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/internal/doccheck"
)

// root is the repository's root, where README.md and the modules are.
const root = "../.."

// stdImports are the packages, outside this repository, that snippets may
// name without importing them in their <!-- go: --> comment.
var stdImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log",
	"time": "time", "netip": "net/netip", "http": "net/http", "slog": "log/slog",
	"os": "os", "sync": "sync", "strings": "strings", "rand": "math/rand/v2",
	"clientv3": "go.etcd.io/etcd/client/v3",
}

// goModule is a module of the repository.
type goModule struct {
	dir      string // relative to root, with slashes ("." for the root)
	path     string
	requires []string // module paths its go.mod requires
}

var requireLine = regexp.MustCompile(`(?m)^\s*(?:require\s+)?([^\s()]+\.[^\s()]+)\s+v\S+`)

// modules returns the repository's modules, the root first.
func modules(t *testing.T) []goModule {
	t.Helper()
	var mods []goModule
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		m := goModule{dir: filepath.ToSlash(rel)}
		for _, l := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
				m.path = strings.TrimSpace(p)
			}
		}
		for _, r := range requireLine.FindAllStringSubmatch(string(b), -1) {
			m.requires = append(m.requires, r[1])
		}
		mods = append(mods, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(mods, func(a, b goModule) int {
		if (a.dir == ".") != (b.dir == ".") {
			if a.dir == "." {
				return -1
			}
			return 1
		}
		return strings.Compare(a.dir, b.dir)
	})
	if len(mods) < 3 || mods[0].dir != "." {
		t.Fatalf("modules found: %v", mods)
	}
	return mods
}

// moduleOfDir returns the module holding the package in dir.
func moduleOfDir(mods []goModule, dir string) goModule {
	best := mods[0]
	for _, m := range mods {
		if m.dir == "." || dir == m.dir || strings.HasPrefix(dir, m.dir+"/") {
			if len(m.dir) > len(best.dir) || best.dir == "." {
				best = m
			}
		}
	}
	return best
}

// TestREADMESnippets: every ```go block of README.md is gofmt-clean and
// builds, with what its <!-- go: --> comment declares, in the module that
// holds or requires every package it uses.
func TestREADMESnippets(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(Snippets(string(md))); n < 10 {
		t.Fatalf("found %d go blocks in README.md; the extraction is broken", n)
	}
	problems, modulesUsed := check(t, string(md))
	for _, p := range problems {
		t.Error(p)
	}
	if !slices.Contains(modulesUsed, ".") || !slices.Contains(modulesUsed, "contrib/etcd") || !slices.Contains(modulesUsed, "contrib/rfc2136") {
		t.Errorf("README snippets were built in modules %v; want the root and the contrib modules' snippets in theirs", modulesUsed)
	}
}

// TestCheckCatches: a snippet that gofmt would change, one that uses a
// name the API does not have, one that uses an undeclared variable, and
// one of a nested module's package that drifted are each reported, at
// their line; correct ones are not.
func TestCheckCatches(t *testing.T) {
	md := "# x\n\n" +
		"<!-- go: var ctx context.Context -->\n```go\n_, _ = backoff.NewBudget(backoff.BudgetConfig{}) // fine\n_ = ctx\n```\n\n" + // line 5
		"```go\nx := 1          // misaligned\ny := 2 // comment\n_, _ = x, y\n```\n\n" + // line 10
		"```go\nerr := backoff.NoSuchThing\n```\n\n" + // line 16
		"```go\n_ = undeclared\n```\n\n" + // line 20
		"```go\n_ = etcd.NoSuchError\n```\n\n" + // line 24
		"```go\n_ = etcd.ErrUnknownOutcome\n```\n" // line 28
	problems, _ := check(t, md)
	got := map[int]string{}
	for _, p := range problems {
		var line int
		if _, err := fmt.Sscanf(p, "README.md:%d:", &line); err != nil {
			t.Fatalf("problem without a line: %q", p)
		}
		got[line] += p
	}
	for line, want := range map[int]string{10: "not gofmt-clean", 16: "NoSuchThing", 20: "undeclared", 24: "in module contrib/etcd"} {
		if !strings.Contains(got[line], want) {
			t.Errorf("line %d: problems %q, want one saying %q", line, got[line], want)
		}
	}
	for _, line := range []int{5, 28} {
		if got[line] != "" {
			t.Errorf("line %d: a correct snippet reported: %s", line, got[line])
		}
	}
}

// check checks every ```go block of md: gofmt, and a build in its module.
// It returns the problems, each starting "README.md:LINE:", and the
// modules it built snippets in.
func check(t *testing.T, md string) (problems []string, modulesUsed []string) {
	t.Helper()
	mods := modules(t)
	pkgs, err := doccheck.Packages(root)
	if err != nil {
		t.Fatal(err)
	}
	importPaths := map[string]string{}
	moduleOfImport := map[string]goModule{}
	for n, p := range stdImports {
		importPaths[n] = p
	}
	for _, p := range pkgs {
		if p.Name == "main" {
			continue
		}
		m := moduleOfDir(mods, p.Dir)
		path := m.path
		switch {
		case p.Dir == m.dir:
		case m.dir == ".":
			path += "/" + p.Dir
		default:
			path += "/" + strings.TrimPrefix(p.Dir, m.dir+"/")
		}
		moduleOfImport[path] = m
		if old, dup := importPaths[p.Name]; !dup || len(path) < len(old) {
			importPaths[p.Name] = path
		}
	}

	type built struct {
		snippet Snippet
		src     string
	}
	byModule := map[string][]built{}
	for _, s := range Snippets(md) {
		if f, err := s.Gofmt(); err != nil {
			problems = append(problems, fmt.Sprintf("README.md:%d: gofmt: %v", s.Line, err))
		} else if f != s.Code {
			problems = append(problems, fmt.Sprintf("README.md:%d: the block is not gofmt-clean; gofmt makes it:\n%s", s.Line, f))
		}
		src, imports, err := s.File(fmt.Sprintf("snippet%d", s.Line), importPaths)
		if err != nil {
			problems = append(problems, fmt.Sprintf("README.md:%d: %v", s.Line, err))
			continue
		}
		m, ok := moduleFor(mods, moduleOfImport, imports)
		if !ok {
			problems = append(problems, fmt.Sprintf("README.md:%d: no module holds or requires all of %v", s.Line, imports))
			continue
		}
		byModule[m.dir] = append(byModule[m.dir], built{s, src})
	}

	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := t.TempDir()
	for _, dir := range slices.Sorted(maps.Keys(byModule)) {
		modulesUsed = append(modulesUsed, dir)
		modDir, err := filepath.Abs(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		// The snippets are compiled as packages of the module, in a
		// directory that exists only in the build's overlay: nothing is
		// written into the source tree.
		overlay := map[string]map[string]string{"Replace": {}}
		var pkgArgs []string
		files := map[string]built{}
		for _, b := range byModule[dir] {
			name := fmt.Sprintf("snippet%d", b.snippet.Line)
			file := filepath.Join(tmp, strings.ReplaceAll(dir, "/", "_")+"_"+name+".go")
			if err := os.WriteFile(file, []byte(b.src), 0o644); err != nil {
				t.Fatal(err)
			}
			overlay["Replace"][filepath.Join(modDir, "zz_readme_snippets", name, name+".go")] = file
			pkgArgs = append(pkgArgs, "./zz_readme_snippets/"+name)
			files[file] = b
		}
		o, _ := json.Marshal(overlay)
		oFile := filepath.Join(tmp, strings.ReplaceAll(dir, "/", "_")+"_overlay.json")
		if err := os.WriteFile(oFile, o, 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"build", "-overlay", oFile, "-o", os.DevNull}, pkgArgs...)
		cmd := exec.Command(goCmd, args...)
		cmd.Dir = modDir
		out, err := cmd.CombinedOutput()
		if err == nil {
			continue
		}
		reported := false
		for file, b := range files {
			// The go command names a file by whichever of its absolute
			// and relative paths is shorter ("../TestX/001/f.go" when
			// the module and the temporary directory share a parent), so
			// lines are matched by the file's unique base name.
			base := filepath.Base(file)
			var lines []string
			for _, l := range strings.Split(string(out), "\n") {
				if i := strings.Index(l, base); i >= 0 && !strings.ContainsAny(l[:i], " \t") {
					lines = append(lines, "snippet"+l[i+len(base):])
				}
			}
			if len(lines) > 0 {
				reported = true
				problems = append(problems, fmt.Sprintf("README.md:%d: does not build in module %s:\n%s\nas built (the snippet with its <!-- go: --> declarations, imports and wrapper):\n%s",
					b.snippet.Line, dir, strings.Join(lines, "\n"), numbered(b.src)))
			}
		}
		if !reported {
			problems = append(problems, fmt.Sprintf("README.md:0: go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out))
		}
	}
	return problems, modulesUsed
}

// numbered returns src with line numbers, as the compiler counts them.
func numbered(src string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}

// moduleFor returns the first module (the root first) that holds or
// requires every import: a package of this repository's modules by its
// module, any other non-standard one by a required module path that is a
// prefix of it.
func moduleFor(mods []goModule, repo map[string]goModule, imports []string) (goModule, bool) {
	for _, m := range mods {
		ok := true
		for _, imp := range imports {
			if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // standard library
			}
			if rm, isRepo := repo[imp]; isRepo {
				ok = rm.dir == m.dir || slices.Contains(m.requires, rm.path)
			} else {
				ok = slices.ContainsFunc(m.requires, func(r string) bool { return imp == r || strings.HasPrefix(imp, r+"/") })
			}
			if !ok {
				break
			}
		}
		if ok {
			return m, true
		}
	}
	return goModule{}, false
}

// TestSnippetsFences: go blocks are found however CommonMark fences them
// (indented in a list item, with tildes, longer fences, an info string
// after the language, "Go"), their code without the fence's indentation;
// other languages' blocks are left out, and so is a "```go" line inside
// one of them.
func TestSnippetsFences(t *testing.T) {
	md := "# x\n" +
		"```sh\n$ go test ./...\n```\n" + // 2
		"````markdown\n```go\nnot.Go()\n```\n````\n" + // 5
		"1. Step:\n\n   ```go\n   a := 1\n   if a > 0 {\n   \ta++\n   }\n   ```\n" + // 10
		"~~~go\nb := 2\n~~~\n" + // 18
		"````go\nc := \"```\"\n````\n" + // 21
		"```go title=\"x.go\"\nd := 4\n```\n" + // 24
		"```Go\ne := 5\n```\n" + // 27
		"```golang\nf := 6\n```\n" + // 30
		"```\nnot := go\n```\n" // 33
	var got []string
	for _, s := range Snippets(md) {
		got = append(got, fmt.Sprintf("%d:%s", s.Line, s.Code))
	}
	want := []string{
		"13:a := 1\nif a > 0 {\n\ta++\n}\n",
		"19:b := 2\n",
		"22:c := \"```\"\n",
		"25:d := 4\n",
		"28:e := 5\n",
		"31:f := 6\n",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Snippets =\n%q\nwant\n%q", got, want)
	}
}

// TestPreludeCannotShadowAPackage: a <!-- go: --> comment that declares
// the name of a package the snippet uses, or imports another package under
// that name (so that the snippet compiles against the comment, not the
// API), is refused; one that imports the package itself is not.
func TestPreludeCannotShadowAPackage(t *testing.T) {
	md := "# x\n\n" +
		"<!-- go: var backoff struct{ NoSuchThing int } -->\n```go\n_ = backoff.NoSuchThing\n```\n" + // line 5
		"<!-- go: import shed \"errors\" -->\n```go\n_ = shed.New(\"x\")\n```\n" + // line 9
		"<!-- go: import \"github.com/stormguard/stormguard/backoff\" -->\n```go\n_ = backoff.ErrBudgetExhausted\n```\n" // line 13
	problems, _ := check(t, md)
	if len(problems) != 2 || !strings.Contains(problems[0], "README.md:5:") || !strings.Contains(problems[0], "backoff") ||
		!strings.Contains(problems[1], "README.md:9:") || !strings.Contains(problems[1], "imports \"errors\" as shed") {
		t.Errorf("problems %q, want one at line 5 about the declared backoff and one at line 9 about errors imported as shed", problems)
	}
}
