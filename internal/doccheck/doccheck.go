// Package doccheck finds exported identifiers without a doc comment,
// package comments that do not open with code the tests run (CheckCode),
// and Example functions go test only compiles, for want of an output
// comment (Examples), so that its tests keep every package's go doc
// complete and every Example running.
package doccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

// Missing parses the non-test Go files of the package in dir and returns,
// as "file:line:col: what", every exported function, method (of an
// exported type), type, constant and variable without a doc comment, every
// exported field of a struct type and every method of an interface type
// without a doc or line comment. A constant or variable in a documented
// group counts as documented, as go doc shows it with its group.
func Missing(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
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
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
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
	return missing, nil
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
