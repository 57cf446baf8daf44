package lease_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportedFieldsDocumented: every exported field of an exported struct
// type of the package has a doc comment of its own, since go doc shows a
// field's comment only where it is written.
func TestExportedFieldsDocumented(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	fields := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || !ts.Name.IsExported() {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fl := range st.Fields.List {
				for _, name := range fl.Names {
					if !name.IsExported() {
						continue
					}
					fields++
					if fl.Doc == nil && fl.Comment == nil {
						t.Errorf("%v: %s.%s has no doc comment", fset.Position(name.Pos()), ts.Name.Name, name.Name)
					}
				}
			}
			return true
		})
	}
	if fields < 50 {
		t.Fatalf("only %d exported fields found: is the test reading the package?", fields)
	}
}
