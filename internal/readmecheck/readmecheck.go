// Package readmecheck extracts the Go code blocks of a Markdown file (the
// repository's README) and turns each into a compilable file, so that a
// test can keep every snippet gofmt-clean and building against the module
// it belongs to.
//
// A snippet is a fragment: statements, as in the body of a function that
// returns an error, or whole declarations. What it uses without declaring
// it is declared in an HTML comment right before the block, invisible on
// the rendered page:
//
//	<!-- go: var ctx context.Context; var client interface{ Attach(context.Context, string) (Volume, error) }; type Volume struct{} -->
//
// The comment holds Go declarations, import declarations included. The
// packages a snippet names (backoff., context., clientv3., ...) are
// imported for it; the module it is built in is the one that holds, or
// requires, every package of this repository it uses.
//
//	$ go test ./internal/readmecheck
package readmecheck

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strings"
)

// Snippet is one Go block of a Markdown file (see Snippets).
type Snippet struct {
	// Line is the line of the block's first code line (1-based).
	Line int
	// Code is the block's text.
	Code string
	// Prelude is the Go text of the "<!-- go: ... -->" comment right
	// before the block, if any.
	Prelude string
}

// preludeComment matches the declarations comment before a block.
var preludeComment = regexp.MustCompile(`(?s)^<!--\s*go:(.*?)-->\s*$`)

// Snippets returns the Go blocks of a Markdown text: its fenced code
// blocks (``` or ~~~, three or more, indented or not, as in a list item)
// whose info string's first word is go or golang, in any case. A block's
// code is its lines less the fence's indentation. Every other fenced
// block is skipped whole, a "```go" line inside it included.
func Snippets(md string) []Snippet {
	var out []Snippet
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		indent, fence, info, ok := openingFence(lines[i])
		if !ok {
			continue
		}
		open := i
		var code []string
		for i++; i < len(lines) && !closesFence(lines[i], fence); i++ {
			code = append(code, dedent(lines[i], indent))
		}
		if lang, _, _ := strings.Cut(info, " "); !strings.EqualFold(lang, "go") && !strings.EqualFold(lang, "golang") {
			continue
		}
		s := Snippet{Line: open + 2, Code: strings.Join(code, "\n") + "\n"}
		// The comment may span lines; it ends on the line before the fence.
		if open > 0 && strings.HasSuffix(strings.TrimSpace(lines[open-1]), "-->") {
			for j := open - 1; j >= 0; j-- {
				if strings.HasPrefix(strings.TrimSpace(lines[j]), "<!--") {
					if m := preludeComment.FindStringSubmatch(strings.TrimSpace(strings.Join(lines[j:open], "\n"))); m != nil {
						s.Prelude = strings.TrimSpace(m[1])
					}
					break
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// openingFence reports whether line opens a fenced code block, and
// returns its indentation (in spaces), its fence (``` or ~~~, or longer)
// and its info string.
func openingFence(line string) (indent int, fence, info string, ok bool) {
	rest := strings.TrimLeft(line, " ")
	indent = len(line) - len(rest)
	if rest == "" || (rest[0] != '`' && rest[0] != '~') {
		return 0, "", "", false
	}
	n := len(rest) - len(strings.TrimLeft(rest, rest[:1]))
	if n < 3 {
		return 0, "", "", false
	}
	fence, info = rest[:n], strings.TrimSpace(rest[n:])
	if fence[0] == '`' && strings.Contains(info, "`") {
		return 0, "", "", false // inline code, not a fence
	}
	return indent, fence, info, true
}

// closesFence reports whether line closes a block opened by fence: the
// same character, at least as many, and nothing after them.
func closesFence(line, fence string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == ""
}

// dedent removes up to n leading spaces from line.
func dedent(line string, n int) string {
	for n > 0 && strings.HasPrefix(line, " ") {
		line, n = line[1:], n-1
	}
	return line
}

// Gofmt returns the snippet as gofmt formats it.
func (s Snippet) Gofmt() (string, error) {
	b, err := format.Source([]byte(s.Code))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// File returns a Go source file of package name holding the snippet: its
// prelude's declarations, imports for the packages it names (from
// importPaths, package name to import path, when the snippet or its
// prelude does not declare the name itself), and the snippet, as
// declarations if it parses as such, otherwise as the body of a function
// returning an error, after which every variable it declares is used.
// It also returns the import paths it used.
func (s Snippet) File(name string, importPaths map[string]string) (src string, imports []string, err error) {
	fset := token.NewFileSet()
	pre, err := parser.ParseFile(fset, "prelude", "package p\n"+s.Prelude, 0)
	if err != nil {
		return "", nil, fmt.Errorf("the <!-- go: --> comment before the block: %v", err)
	}
	var body bytes.Buffer
	if f, err := parser.ParseFile(fset, "", "package p\n"+s.Code, 0); err == nil && len(f.Decls) > 0 {
		body.WriteString(s.Code)
	} else {
		f, err := parser.ParseFile(fset, "snippet", "package p\nfunc _() error {\n"+s.Code+"\n}\n", 0)
		if err != nil {
			return "", nil, err
		}
		body.WriteString("func _() error {\n" + s.Code)
		for _, v := range declared(f.Decls[0].(*ast.FuncDecl).Body.List) {
			fmt.Fprintf(&body, "\t_ = %s\n", v)
		}
		body.WriteString("\treturn nil\n}\n")
	}

	// The names the code uses as packages: X in X.Sel, not declared by
	// the prelude.
	declaredNames := map[string]bool{}
	for _, d := range pre.Decls {
		for _, n := range declNames(d) {
			declaredNames[n] = true
		}
	}
	for _, sp := range pre.Imports {
		declaredNames[importName(sp)] = true
	}
	// A declaration named as a package the snippet may use would let the
	// snippet compile against the comment rather than the package: a
	// name the API removed would still build.
	for _, sp := range pre.Imports {
		n, p := importName(sp), strings.Trim(sp.Path.Value, `"`)
		if path, ok := importPaths[n]; ok && path != p {
			return "", nil, fmt.Errorf("the <!-- go: --> comment before the block imports %q as %s, the name of package %q: the snippet would use the other package", p, n, path)
		}
	}
	for _, d := range pre.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			continue
		}
		for _, n := range declNames(d) {
			if path, ok := importPaths[n]; ok {
				return "", nil, fmt.Errorf("the <!-- go: --> comment before the block declares %s, the name of package %q: the snippet would use the declaration, not the package", n, path)
			}
		}
	}
	whole, err := parser.ParseFile(fset, "whole", "package p\n"+stripImports(s.Prelude)+"\n"+body.String(), 0)
	if err != nil {
		return "", nil, err
	}
	used := map[string]bool{}
	ast.Inspect(whole, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil && !declaredNames[id.Name] {
				used[id.Name] = true
			}
		}
		return true
	})
	var out bytes.Buffer
	fmt.Fprintf(&out, "package %s\n\n", name)
	for _, imp := range pre.Imports {
		fmt.Fprintf(&out, "import %s\n", nodeText(imp))
		imports = append(imports, strings.Trim(imp.Path.Value, `"`))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range used {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		path, ok := importPaths[n]
		if !ok {
			continue // a local name, or a package unknown: the compiler says which
		}
		if p := path[strings.LastIndex(path, "/")+1:]; p == n {
			fmt.Fprintf(&out, "import %q\n", path)
		} else {
			fmt.Fprintf(&out, "import %s %q\n", n, path)
		}
		imports = append(imports, path)
	}
	out.WriteString("\n" + stripImports(s.Prelude) + "\n\n" + body.String())
	return out.String(), imports, nil
}

// declared returns the names a statement list declares at its top level
// (with := or var), except the blank identifier.
func declared(stmts []ast.Stmt) []string {
	var names []string
	add := func(id *ast.Ident) {
		if id.Name != "_" && !slices.Contains(names, id.Name) {
			names = append(names, id.Name)
		}
	}
	for _, st := range stmts {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, l := range st.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.DeclStmt:
			if g, ok := st.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, sp := range g.Specs {
					for _, id := range sp.(*ast.ValueSpec).Names {
						add(id)
					}
				}
			}
		}
	}
	return names
}

func importName(sp *ast.ImportSpec) string {
	if sp.Name != nil {
		return sp.Name.Name
	}
	p := strings.Trim(sp.Path.Value, `"`)
	return p[strings.LastIndex(p, "/")+1:]
}

var importDecl = regexp.MustCompile(`(?s)import\s*(\([^)]*\)|(\w+\s+)?"[^"]*")\s*;?`)

// stripImports removes the import declarations of a prelude.
func stripImports(prelude string) string { return importDecl.ReplaceAllString(prelude, "") }

func nodeText(imp *ast.ImportSpec) string {
	if imp.Name != nil {
		return imp.Name.Name + " " + imp.Path.Value
	}
	return imp.Path.Value
}

// declNames returns the names a top-level declaration declares.
func declNames(d ast.Decl) []string {
	var names []string
	switch d := d.(type) {
	case *ast.GenDecl:
		for _, sp := range d.Specs {
			switch sp := sp.(type) {
			case *ast.ValueSpec:
				for _, n := range sp.Names {
					names = append(names, n.Name)
				}
			case *ast.TypeSpec:
				names = append(names, sp.Name.Name)
			}
		}
	case *ast.FuncDecl:
		if d.Recv == nil {
			names = append(names, d.Name.Name)
		}
	}
	return names
}
