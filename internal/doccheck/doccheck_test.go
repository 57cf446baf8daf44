package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packages are the library's packages, relative to the repository root:
// everything a user imports.
var packages = []string{
	"backoff", "shed", "fence", "fence/fencetest", "lease", "dnsplan",
	"remirror", "remirror/sim", "contrib/etcd", "contrib/rfc2136",
}

// TestEveryPackageDocumented: go doc -all of every package shows a comment
// for every exported name, field and interface method.
func TestEveryPackageDocumented(t *testing.T) {
	for _, p := range packages {
		missing, err := Missing(filepath.Join("..", "..", p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(missing) > 0 {
			t.Errorf("%s: undocumented:\n%s", p, strings.Join(missing, "\n"))
		}
	}
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
