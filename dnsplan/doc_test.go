package dnsplan_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestEverythingExportedIsDocumented: every exported function, method,
// type, constant and variable of the package, every exported field of an
// exported struct and every method of an exported interface has a doc
// comment (or, for a field or a constant in a documented group, a line
// comment), as `go doc -all` shows them.
func TestEverythingExportedIsDocumented(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var missing []string
	miss := func(pos token.Pos, what string) {
		missing = append(missing, fset.Position(pos).String()+": "+what)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || d.Doc != nil {
					continue
				}
				if d.Recv != nil && !exportedRecv(d.Recv.List[0].Type) {
					continue
				}
				miss(d.Pos(), "func "+d.Name.Name)
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if s.Doc == nil && d.Doc == nil {
							miss(s.Pos(), "type "+s.Name.Name)
						}
						switch ty := s.Type.(type) {
						case *ast.StructType:
							for _, fl := range ty.Fields.List {
								if fl.Doc == nil && fl.Comment == nil && anyExported(fl.Names) {
									miss(fl.Pos(), "field "+s.Name.Name+"."+fl.Names[0].Name)
								}
							}
						case *ast.InterfaceType:
							for _, m := range ty.Methods.List {
								if m.Doc == nil && m.Comment == nil && anyExported(m.Names) {
									miss(m.Pos(), "method "+s.Name.Name+"."+m.Names[0].Name)
								}
							}
						}
					case *ast.ValueSpec:
						if anyExported(s.Names) && s.Doc == nil && s.Comment == nil && d.Doc == nil {
							miss(s.Pos(), "value "+s.Names[0].Name)
						}
					}
				}
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("undocumented:\n%s", strings.Join(missing, "\n"))
	}
}

func anyExported(names []*ast.Ident) bool {
	for _, n := range names {
		if n.IsExported() {
			return true
		}
	}
	return false
}

func exportedRecv(x ast.Expr) bool {
	if s, ok := x.(*ast.StarExpr); ok {
		x = s.X
	}
	if ix, ok := x.(*ast.IndexExpr); ok {
		x = ix.X
	}
	id, ok := x.(*ast.Ident)
	return ok && id.IsExported()
}
