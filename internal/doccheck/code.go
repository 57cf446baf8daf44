package doccheck

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/doc"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FirstScreen is how many lines of `go doc` output (after its two header
// lines) a package comment's first code block must start within, so that
// a reader in a terminal meets code without scrolling.
const FirstScreen = 22

// Package is a package found by Packages.
type Package struct {
	// Dir is the package's directory, relative to the root given to
	// Packages, with slashes.
	Dir string
	// Name is the package's name ("main" for a command).
	Name string
	// Doc is the text of its package comment, as go doc shows it.
	Doc string
}

// Packages returns every package under root that a user imports or runs:
// those of every module (every directory with a go.mod, nested modules
// included), except directories named internal or testdata and their
// contents, hidden directories, and directories holding only tests.
func Packages(root string) ([]Package, error) {
	var pkgs []Package
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == "internal" || name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		p, ok, err := readPackage(path)
		if err != nil || !ok {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		p.Dir = filepath.ToSlash(rel)
		pkgs = append(pkgs, p)
		return nil
	})
	return pkgs, err
}

// readPackage reads the name and package comment of the package in dir;
// ok is false if dir holds no non-test Go file.
func readPackage(dir string) (p Package, ok bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return p, false, err
	}
	fset := token.NewFileSet()
	var docs []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return p, false, err
		}
		if isIgnored(f) {
			continue
		}
		ok = true
		p.Name = f.Name.Name
		if f.Doc != nil {
			docs = append(docs, f.Doc.Text())
		}
	}
	p.Doc = strings.Join(docs, "\n")
	return p, ok, nil
}

// isIgnored reports whether f is excluded from every build by a
// //go:build ignore constraint.
func isIgnored(f *ast.File) bool {
	for _, g := range f.Comments {
		if g.Pos() >= f.Package {
			break
		}
		for _, c := range g.List {
			if strings.TrimSpace(c.Text) == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}

// CodeBlocks returns the code blocks (indented blocks) of a package
// comment's text, and the line of `go doc` output, after its two header
// lines, on which the first one starts (-1 if there is none).
func CodeBlocks(doc string) (blocks []string, firstLine int) {
	var p comment.Parser
	d := p.Parse(doc)
	for _, b := range d.Content {
		if c, ok := b.(*comment.Code); ok {
			blocks = append(blocks, c.Text)
		}
	}
	if len(blocks) == 0 {
		return nil, -1
	}
	pr := comment.Printer{TextPrefix: "", TextCodePrefix: "\t"}
	text := string(pr.Text(d))
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "\t") {
			return blocks, i
		}
	}
	return blocks, -1
}

// IsShell reports whether a code block is a shell session: its first
// line starts with "$ ".
func IsShell(block string) bool { return strings.HasPrefix(block, "$ ") }

// IsGo reports whether a code block is Go: declarations, or statements of
// a function body. Other blocks (an error message, a table, a key layout)
// are quoted text.
func IsGo(block string) bool {
	fset := token.NewFileSet()
	if _, err := parser.ParseFile(fset, "", "package p\n"+block, parser.SkipObjectResolution); err == nil {
		return true
	}
	_, err := parser.ParseFile(fset, "", "package p\nfunc _() {\n"+block+"\n}\n", parser.SkipObjectResolution)
	return err == nil
}

// CheckCode checks the package comment of the package p found under root:
// its first code block must be code to copy — Go, or a shell session (see
// IsShell) — starting within the first FirstScreen lines of go doc's
// output; and each Go code block (see IsGo) must appear, line for line, in
// a test file of the package: in the body of an Example function that has
// an output comment (so that go test runs it), or in a Test function or
// its body, so that the code in the comment is compiled and run with the
// package's tests and cannot drift from the API. It returns a description
// of each problem.
func CheckCode(root string, p Package) ([]string, error) {
	var problems []string
	if strings.TrimSpace(p.Doc) == "" {
		return []string{p.Dir + ": no package comment"}, nil
	}
	blocks, first := CodeBlocks(p.Doc)
	switch {
	case len(blocks) == 0:
		return []string{p.Dir + ": the package comment has no code block (an indented block of code to copy, near the top)"}, nil
	case !IsGo(blocks[0]) && !IsShell(blocks[0]):
		problems = append(problems, fmt.Sprintf("%s: the package comment's first code block is neither Go nor a shell session (\"$ \" first):\n%s", p.Dir, blocks[0]))
	case first > FirstScreen:
		problems = append(problems, fmt.Sprintf("%s: the package comment's first code block starts on line %d of go doc, after the first screen (%d lines)", p.Dir, first+3, FirstScreen+2))
	}
	var funcs []testFunc
	for _, b := range blocks {
		if !IsGo(b) {
			continue
		}
		if funcs == nil {
			var err error
			if funcs, err = testFuncs(filepath.Join(root, filepath.FromSlash(p.Dir))); err != nil {
				return nil, err
			}
		}
		if !slices.ContainsFunc(funcs, func(f testFunc) bool { return f.runs && f.contains(b) }) {
			problems = append(problems, fmt.Sprintf("%s: this code block of the package comment is not, line for line, in a Test function or an Example with an output comment in the package's tests:\n%s", p.Dir, b))
		}
	}
	return problems, nil
}

// testFunc is a Test or Example function of a test file.
type testFunc struct {
	name string
	runs bool     // a Test, or an Example with an output comment
	decl []string // the whole declaration's lines
	body []string // the body's lines, less one tab of indentation
}

// contains reports whether block's lines appear, consecutively, in f's
// declaration or in its body.
func (f testFunc) contains(block string) bool {
	want := lines(block)
	return len(want) > 0 && (containsRun(f.decl, want) || containsRun(f.body, want))
}

func lines(s string) []string {
	var out []string
	for l := range strings.Lines(strings.TrimRight(s, "\n")) {
		out = append(out, strings.TrimRight(l, " \t\r\n"))
	}
	return out
}

func containsRun(haystack, needle []string) bool {
	for i := 0; i+len(needle) <= len(haystack); i++ {
		if slices.Equal(haystack[i:i+len(needle)], needle) {
			return true
		}
	}
	return false
}

// testFuncs returns the Test and Example functions of the test files in
// dir that go test builds.
func testFuncs(dir string) ([]testFunc, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var funcs []testFunc
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		// A file that go test does not build (//go:build ignore, another
		// GOOS) compiles and runs nothing.
		if ok, err := build.Default.MatchFile(dir, e.Name()); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, e.Name(), src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		runs := runningExamples(f)
		// Lines that start inside a string literal or a comment are
		// text, not code a test compiles: they match no line of a block.
		text := make([]bool, len(src)+1)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					markText(text, fset.Position(n.Pos()).Offset, fset.Position(n.End()).Offset)
				}
			case *ast.Comment:
				markText(text, fset.Position(n.Pos()).Offset, fset.Position(n.End()).Offset)
			}
			return true
		})
		for _, g := range f.Comments {
			for _, c := range g.List {
				markText(text, fset.Position(c.Pos()).Offset, fset.Position(c.End()).Offset)
			}
		}
		codeLines := func(from, to int) []string {
			var out []string
			for off := from; off < to; {
				end := bytes.IndexByte(src[off:to], '\n')
				if end < 0 {
					end = to - off
				}
				l := string(src[off : off+end])
				if text[off] {
					l = "\x00text"
				}
				out = append(out, strings.TrimRight(l, " \t\r"))
				off += end + 1
			}
			return out
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			isTest, isExample := isTestFunc(fd), strings.HasPrefix(name, "Example")
			if !isTest && !isExample {
				continue
			}
			tf := testFunc{name: name, runs: isTest || runs[name]}
			tf.decl = codeLines(fset.Position(fd.Pos()).Offset, fset.Position(fd.End()).Offset)
			bodyStart := fset.Position(fd.Body.Lbrace).Offset + 1
			if i := bytes.IndexByte(src[bodyStart:], '\n'); i >= 0 {
				bodyStart += i + 1
			}
			for _, l := range codeLines(bodyStart, fset.Position(fd.Body.Rbrace).Offset) {
				tf.body = append(tf.body, strings.TrimPrefix(l, "\t"))
			}
			funcs = append(funcs, tf)
		}
	}
	return funcs, nil
}

// markText marks the lines of src[from:to], a string literal or a
// comment, after its first as text: the first holds the code before it.
func markText(text []bool, from, to int) {
	for i := from + 1; i < to; i++ {
		text[i] = true
	}
}

// runningExamples returns the names of the Example functions of a test
// file that go test runs: those with an output comment, by go/doc's rule
// (the last comment of the body, "Output:" or "Unordered output:", any
// case).
func runningExamples(f *ast.File) map[string]bool {
	runs := map[string]bool{}
	for _, ex := range doc.Examples(f) {
		if ex.Output != "" || ex.EmptyOutput {
			runs["Example"+exampleSuffix(ex)] = true
		}
	}
	return runs
}

func exampleSuffix(ex *doc.Example) string {
	if ex.Name == "" {
		if ex.Suffix == "" {
			return ""
		}
		return "_" + ex.Suffix
	}
	if ex.Suffix == "" {
		return ex.Name
	}
	return ex.Name + "_" + ex.Suffix
}

// Example is an Example function found by Examples.
type Example struct {
	// File is the test file's path, relative to the root given to
	// Examples, with slashes.
	File string
	// Name is the function's name.
	Name string
	// Runs reports whether go test runs it: it has an output comment.
	// Without one it is only compiled.
	Runs bool
}

// Examples returns every Example function of every test file under root,
// in every module and package, internal ones included (directories named
// testdata or vendor, and hidden ones, are left out).
func Examples(root string) ([]Example, error) {
	var out []Example
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		runs := runningExamples(f)
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Example") {
				out = append(out, Example{File: filepath.ToSlash(rel), Name: fd.Name.Name, Runs: runs[fd.Name.Name]})
			}
		}
		return nil
	})
	return out, err
}

// UnlistedServerExamples returns the Example functions, in the test files
// of the package in dir, that use the server of a proctest.NewShared
// without being named in its list: such an Example is not left out when
// the server is missing, and fails (or panics) where it should skip. An
// Example uses the server if it names a variable the NewShared start
// function assigns, or calls a function of the test files that does,
// however indirectly.
func UnlistedServerExamples(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	listed := map[string]bool{}
	serverVars := map[string]bool{}
	funcs := map[string]*ast.FuncDecl{}
	var examples []*ast.FuncDecl
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "NewShared" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.CompositeLit); ok {
				for _, el := range lit.Elts {
					if s, ok := el.(*ast.BasicLit); ok && s.Kind == token.STRING {
						listed[strings.Trim(s.Value, "`\"")] = true
					}
				}
			}
			ast.Inspect(call.Args[1], func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok && as.Tok == token.ASSIGN {
					for _, l := range as.Lhs {
						if id, ok := l.(*ast.Ident); ok && id.Name != "_" {
							serverVars[id.Name] = true
						}
					}
				}
				return true
			})
			return true
		})
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Body == nil {
				continue
			}
			if strings.HasPrefix(fd.Name.Name, "Example") {
				examples = append(examples, fd)
			} else {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	if len(serverVars) == 0 {
		return nil, nil
	}
	// uses reports whether body names a server variable or a function
	// known to use one.
	using := map[string]bool{}
	uses := func(body ast.Node) bool {
		found := false
		ast.Inspect(body, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && (serverVars[id.Name] || using[id.Name]) {
				found = true
			}
			return !found
		})
		return found
	}
	for changed := true; changed; {
		changed = false
		for name, fd := range funcs {
			if !using[name] && uses(fd.Body) {
				using[name], changed = true, true
			}
		}
	}
	var out []string
	for _, ex := range examples {
		if !listed[ex.Name.Name] && uses(ex.Body) {
			out = append(out, fmt.Sprintf("%s: %s uses the proctest.NewShared server but is not in its list of Examples", fset.Position(ex.Pos()), ex.Name.Name))
		}
	}
	return out, nil
}

// isTestFunc reports whether go test runs fd as a test: named Test, or
// TestX with X not a lower-case letter, with one parameter (Testable, a
// helper, is not a test).
func isTestFunc(fd *ast.FuncDecl) bool {
	rest, ok := strings.CutPrefix(fd.Name.Name, "Test")
	if !ok || fd.Type.Params.NumFields() != 1 {
		return false
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return rest == "" || !unicode.IsLower(r)
}
