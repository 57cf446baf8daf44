package doccheck

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// root is the repository's root: the modules under it are checked.
const root = "../.."

// TestEveryPackageDocumented: go doc -all of every package (not the
// commands, whose go doc is their package comment) shows a comment for
// every exported name, field and interface method.
func TestEveryPackageDocumented(t *testing.T) {
	for _, p := range packages(t) {
		if p.Name == "main" {
			continue
		}
		missing, err := Missing(filepath.Join(root, p.Dir))
		if err != nil {
			t.Fatalf("%s: %v", p.Dir, err)
		}
		if len(missing) > 0 {
			t.Errorf("%s: undocumented:\n%s", p.Dir, strings.Join(missing, "\n"))
		}
	}
}

// TestEveryPackageCommentStartsWithCode: go doc of every package (of
// every module; new ones are found) shows code to copy on its first
// screen, and that code is compiled and run by the package's tests.
func TestEveryPackageCommentStartsWithCode(t *testing.T) {
	for _, p := range packages(t) {
		problems, err := CheckCode(root, p)
		if err != nil {
			t.Fatalf("%s: %v", p.Dir, err)
		}
		for _, pr := range problems {
			t.Error(pr)
		}
	}
}

// packages returns the packages under root, and checks that the search
// finds those every module is known to have, so that a broken search
// cannot pass the tests above by finding nothing.
func packages(t *testing.T) []Package {
	t.Helper()
	pkgs, err := Packages(root)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, p := range pkgs {
		found[p.Dir] = true
	}
	for _, want := range []string{
		"backoff", "shed", "fence", "fence/fencetest", "lease", "dnsplan", "dnsplan/dnsplantest",
		"remirror", "remirror/sim", "contrib/etcd", "contrib/rfc2136", "examples/retrystorm",
	} {
		if !found[want] {
			t.Errorf("Packages(%q) did not find %s; found %v", root, want, slices.Sorted(maps.Keys(found)))
		}
	}
	for dir := range found {
		if strings.Contains("/"+dir+"/", "/internal/") {
			t.Errorf("Packages found internal package %s", dir)
		}
	}
	return pkgs
}

// TestMissingFindsEachKind: the checker reports each kind of undocumented
// exported identifier, and nothing documented or unexported.
func TestMissingFindsEachKind(t *testing.T) {
	dir := t.TempDir()
	src := `package p

func Undocumented() {}

// Documented is.
func Documented() {}

func unexported() {}

type T struct {
	// A is.
	A int
	B int
	c int
}

func (T) Method() {}

type t struct{ X int }

func (t) Method() {}

// I is.
type I interface {
	M()
}

const C = 1

// Group is documented.
const (
	G1 = 1
	G2 = 2
)

var V int
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p_test.go"), []byte("package p\n\nfunc Skipped() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing, err := Missing(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range missing {
		got = append(got, m[strings.LastIndex(m, ": ")+2:])
	}
	want := []string{"func Undocumented", "type T", "field T.B", "func Method", "method I.M", "value C", "value V"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// writeFiles writes files (path: content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPackagesFindsNewPackages: a package added anywhere, in the root
// module or a nested one, is found; internal and testdata are not, nor a
// directory of tests only.
func TestPackagesFindsNewPackages(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"go.mod":                     "module example.com/r\n",
		"a/a.go":                     "package a\n",
		"shed/shedhttp/h.go":         "package shedhttp\n",
		"contrib/otel/go.mod":        "module example.com/r/contrib/otel\n",
		"contrib/otel/otel.go":       "package otel\n",
		"cmd/tool/main.go":           "package main\n",
		"internal/x/x.go":            "package x\n",
		"a/internal/y/y.go":          "package y\n",
		"a/testdata/z/z.go":          "package z\n",
		"onlytests/o_test.go":        "package onlytests\n",
		"ignored/gen.go":             "//go:build ignore\n\npackage main\n",
		".hidden/h.go":               "package h\n",
		"contrib/otel/internal/i.go": "package i\n",
	})
	pkgs, err := Packages(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Dir+" "+p.Name)
	}
	want := []string{"a a", "cmd/tool main", "contrib/otel otel", "shed/shedhttp shedhttp"}
	if !slices.Equal(got, want) {
		t.Errorf("Packages = %q, want %q", got, want)
	}
}

// TestCheckCodeCatches: a package comment without code, with code too far
// down, or with Go code that no running Example or Test holds, is
// reported; one whose code an Example with output holds, or whose only
// block is a shell command, is not.
func TestCheckCodeCatches(t *testing.T) {
	const example = `package p_test

import "fmt"

// The doc's code, and more.
func Example() {
	setUp()
	x := p.New()
	fmt.Println(x)
	// Output: 1
}

func ExampleNoOutput() {
	y := p.Old()
	fmt.Println(y)
}

func TestIt(t *testing.T) {
	z := p.Tested()
	_ = z
}

func ExampleLower() {
	w := p.Lower()
	fmt.Println(w)
	// output: 2
}

func Testable() {
	k := p.Helper()
	_ = k
}

func TestFixture(t *testing.T) {
	src := ` + "`" + `
	q := p.InAString()
	` + "`" + `
	/*
	r := p.InAComment()
	*/
	_ = src
}
`
	long := strings.Repeat("Words words words words words words words words words words words.\n", 25)
	for _, tc := range []struct {
		name, doc string
		problem   string // a substring of the one problem, "" if none
	}{
		{"no comment", "", "no package comment"},
		{"no code", "// Package p does things.\n", "has no code block"},
		{"in an example", "// Package p does things.\n//\n//\tx := p.New()\n//\tfmt.Println(x)\n", ""},
		{"in a test", "// Package p does things.\n//\n//\tz := p.Tested()\n", ""},
		{"shell", "// Package p does things.\n//\n//\t$ go run ./p\n", ""},
		{"example without output", "// Package p does things.\n//\n//\ty := p.Old()\n", "not, line for line"},
		{"lower-case output", "// Package p does things.\n//\n//\tw := p.Lower()\n", ""},
		{"only in a string", "// Package p does things.\n//\n//\tq := p.InAString()\n", "not, line for line"},
		{"only in a comment", "// Package p does things.\n//\n//\tr := p.InAComment()\n", "not, line for line"},
		{"only in a helper named Test...", "// Package p does things.\n//\n//\tk := p.Helper()\n", "not, line for line"},
		{"only in an ignored file", "// Package p does things.\n//\n//\tv := p.Ignored()\n", "not, line for line"},
		{"only in another GOOS's file", "// Package p does things.\n//\n//\tu := p.OnPlan9()\n", "not, line for line"},
		{"drifted", "// Package p does things.\n//\n//\tx := p.New(1)\n", "not, line for line"},
		{"not consecutive", "// Package p does things.\n//\n//\tsetUp()\n//\tfmt.Println(x)\n", "not, line for line"},
		{"quoted text first", "// Package p does things.\n//\n//\tp: refused (3 waiting, limit 3)\n", "neither Go nor a shell"},
		{"quoted text after code", "// Package p does things.\n//\n//\tx := p.New()\n//\n// It says:\n//\n//\tp: refused (3 waiting, limit 3)\n", ""},
		{"below the first screen", "// Package p does things.\n//\n// " + strings.ReplaceAll(long, "\n", "\n// ") + "\n//\tx := p.New()\n", "after the first screen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				"p/p.go":            tc.doc + "package p\n",
				"p/p_test.go":       example,
				"p/off_test.go":     "//go:build ignore\n\npackage p\n\nfunc TestOff(t *testing.T) {\n\tv := p.Ignored()\n}\n",
				"p/x_plan9_test.go": "package p\n\nfunc TestPlan9(t *testing.T) {\n\tu := p.OnPlan9()\n}\n",
			})
			pkgs, err := Packages(dir)
			if err != nil || len(pkgs) != 1 {
				t.Fatalf("Packages = %v, %v", pkgs, err)
			}
			problems, err := CheckCode(dir, pkgs[0])
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.problem == "" && len(problems) > 0:
				t.Errorf("problems %q, want none", problems)
			case tc.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0], tc.problem)):
				t.Errorf("problems %q, want one saying %q", problems, tc.problem)
			}
		})
	}
}

// TestEveryExampleRuns: every Example function of every module has an
// output comment, so that go test runs it rather than only compiling it.
// (An Example that needs a server skips through proctest.Shared locally
// and runs under CI=true.)
func TestEveryExampleRuns(t *testing.T) {
	examples, err := Examples(root)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, ex := range examples {
		files[ex.File] = true
		if !ex.Runs {
			t.Errorf("%s: %s has no output comment (// Output: ...): go test compiles it but never runs it", ex.File, ex.Name)
		}
	}
	// A broken search cannot pass by finding nothing.
	for _, want := range []string{"contrib/etcd/example_test.go", "contrib/rfc2136/example_test.go", "remirror/sim/example_test.go", "backoff/example_test.go"} {
		if !files[want] {
			t.Errorf("Examples(%q) found no Example in %s", root, want)
		}
	}
}

// TestExamplesFindsOneWithoutOutput: an Example without an output
// comment, in a nested module's package or an internal one, is found as
// not running; one with output (any case), or an empty output, runs;
// testdata is left out, and a method named Example is not one.
func TestExamplesFindsOneWithoutOutput(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a/a_test.go":              "package a_test\n\nimport \"fmt\"\n\nfunc Example() {\n\tfmt.Println(1)\n\t// Output: 1\n}\n\nfunc ExampleLower() {\n\tfmt.Println(1)\n\t// output: 1\n}\n\nfunc ExampleEmpty() {\n\t// Output:\n}\n\ntype T struct{}\n\nfunc (T) ExampleMethod() {}\n",
		"contrib/x/go.mod":         "module example.com/x\n",
		"contrib/x/x_test.go":      "package x_test\n\n// ExampleNew has a comment that is not an output.\nfunc ExampleNew() {\n\t// Output is printed by the server.\n\tprintln(1)\n}\n",
		"internal/y/y_test.go":     "package y\n\nfunc Example_y() {\n\tprintln(1)\n}\n",
		"a/testdata/z/z_test.go":   "package z\n\nfunc Example() {}\n",
		"contrib/x/middle_test.go": "package x_test\n\nfunc ExampleMiddle() {\n\t// Output: 1\n\tprintln(1)\n\t// and a comment after it\n}\n",
	})
	examples, err := Examples(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ex := range examples {
		got = append(got, fmt.Sprintf("%s %s %v", ex.File, ex.Name, ex.Runs))
	}
	slices.Sort(got)
	want := []string{
		"a/a_test.go Example true",
		"a/a_test.go ExampleEmpty true",
		"a/a_test.go ExampleLower true",
		"contrib/x/middle_test.go ExampleMiddle false",
		"contrib/x/x_test.go ExampleNew false",
		"internal/y/y_test.go Example_y false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Examples =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestServerExamplesListed: every Example of the contrib modules that
// uses the etcd or BIND started by proctest.Shared is in Shared's list, so
// that it is left out, not failing, where the server is missing.
func TestServerExamplesListed(t *testing.T) {
	for _, dir := range []string{"contrib/etcd", "contrib/rfc2136"} {
		problems, err := UnlistedServerExamples(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Error(p)
		}
	}
}

// TestUnlistedServerExamples: an Example that uses the shared server,
// directly or through a helper of a helper, and is not listed is found;
// a listed one, or one that does not use the server, is not.
func TestUnlistedServerExamples(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"main_test.go": `package p_test

var endpoints []string

var srv = proctest.NewShared([]string{"Example"}, func(t testing.TB) {
	s := start(t)
	endpoints = []string{s.Endpoint()}
})

func reset() { use(endpoints) }

func prepare() { reset() }
`,
		"example_test.go": `package p_test

func Example() {
	use(endpoints)
	// Output:
}

func ExampleDirect() {
	use(endpoints)
	// Output:
}

func ExampleIndirect() {
	prepare()
	// Output:
}

func ExampleNoServer() {
	use(nil)
	// Output:
}
`,
	})
	got, err := UnlistedServerExamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		for _, n := range []string{"ExampleDirect", "ExampleIndirect", "ExampleNoServer", "Example "} {
			if strings.Contains(p, " "+n) {
				names = append(names, strings.TrimSpace(n))
			}
		}
	}
	if want := []string{"ExampleDirect", "ExampleIndirect"}; !slices.Equal(names, want) {
		t.Errorf("UnlistedServerExamples = %q, want problems for %q", got, want)
	}
}
