package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/internal/release"
)

// TestSetRewritesRequirements: -set moves every requirement between the
// repository's modules to the version, and leaves other requirements alone;
// without -set, the same repository is refused.
func TestSetRewritesRequirements(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/core\n\ngo 1.25.0\n",
		"go.work": "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n)\n",
		"contrib/a/go.mod": "module example.com/core/contrib/a\n\ngo 1.25.0\n\n" +
			"require (\n\texample.com/core v0.0.0\n\texample.com/other v1.4.0\n)\n\nreplace example.com/core => ../..\n",
	}
	writeFiles(t, root, files)
	if err := run(root, "v0.3.0", false, false); err == nil || !strings.Contains(err.Error(), "1 problem") {
		t.Fatalf("run without -set = %v, want 1 problem", err)
	}
	if err := run(root, "v0.3", true, false); err == nil {
		t.Fatal("run -set with an invalid version rewrote nothing but succeeded")
	}
	if err := run(root, "v0.3.0", true, false); err != nil {
		t.Fatal(err)
	}
	mods, err := release.Modules(root)
	if err != nil {
		t.Fatal(err)
	}
	a := mods[1]
	if a.Require["example.com/core"] != "v0.3.0" || a.Require["example.com/other"] != "v1.4.0" {
		t.Fatalf("requirements after -set: %v", a.Require)
	}
	if err := run(root, "", false, false); err == nil {
		t.Fatal("run without a version succeeded")
	}
}

// TestBuildRefusesUntidyModule: a published module whose test imports a
// module that only go.work supplies builds with GOWORK=off (go build skips
// tests), yet a user's go test of it, or go mod tidy, fails; -build must
// refuse it.
func TestBuildRefusesUntidyModule(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	root := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/core\n\ngo 1.25.0\n",
		"core.go": "package core\n\nconst X = 1\n",
		"go.work": "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n\t./contrib/b\n)\n",
		"contrib/a/go.mod": "module example.com/core/contrib/a\n\ngo 1.25.0\n\n" +
			"require example.com/core v0.3.0\n\nreplace example.com/core => ../..\n",
		"contrib/a/a.go":      "package a\n\nimport \"example.com/core\"\n\nconst Y = core.X\n",
		"contrib/a/a_test.go": "package a\n\nimport (\n\t\"testing\"\n\n\t\"example.com/core/contrib/b\"\n)\n\nfunc TestZ(t *testing.T) { _ = b.Z }\n",
		"contrib/b/go.mod": "module example.com/core/contrib/b\n\ngo 1.25.0\n\n" +
			"require example.com/core v0.3.0\n\nreplace example.com/core => ../..\n",
		"contrib/b/b.go": "package b\n\nimport \"example.com/core\"\n\nconst Z = core.X\n",
	}
	writeFiles(t, root, files)
	if err := run(root, "v0.3.0", false, false); err != nil {
		t.Fatalf("run without -build = %v; the requirements agree", err)
	}
	err := run(root, "v0.3.0", false, true)
	if err == nil || !strings.Contains(err.Error(), "contrib/a") || !strings.Contains(err.Error(), "tidy") {
		t.Fatalf("run -build = %v, want contrib/a refused as untidy", err)
	}
	// Once contrib/a requires contrib/b (with its replace), it is tidy.
	mod := files["contrib/a/go.mod"] + "\nrequire example.com/core/contrib/b v0.3.0\n\nreplace example.com/core/contrib/b => ../b\n"
	if err := os.WriteFile(filepath.Join(root, "contrib", "a", "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(root, "v0.3.0", false, true); err != nil {
		t.Fatalf("run -build of tidy modules = %v", err)
	}
}

// TestTagsOnly: -tags prints the tags alone, one a line (what the README's
// tag loop reads), and nothing at all when the modules are refused.
func TestTagsOnly(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":           "module example.com/core\n\ngo 1.25.0\n",
		"go.work":          "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n\t./examples\n)\n",
		"contrib/a/go.mod": "module example.com/core/contrib/a\n\ngo 1.25.0\n\nrequire example.com/core v0.3.0-rc.1\n\nreplace example.com/core => ../..\n",
		"examples/go.mod":  "module example.com/core/examples\n\ngo 1.25.0\n\nrequire example.com/core v0.3.0-rc.1\n\nreplace example.com/core => ../\n",
	}
	writeFiles(t, root, files)
	var buf strings.Builder
	out, quiet = &buf, true
	defer func() { out, quiet = os.Stdout, false }()
	if err := run(root, "v0.3.0-rc.1", false, false); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "contrib/a/v0.3.0-rc.1\nv0.3.0-rc.1\n"; got != want {
		t.Fatalf("-tags printed %q, want %q", got, want)
	}
	buf.Reset()
	if err := run(root, "v0.3.0", false, false); err == nil {
		t.Fatal("run at a version the modules do not require succeeded")
	}
	if buf.Len() != 0 {
		t.Fatalf("a refused release printed tags %q", buf.String())
	}
}

// TestBuildFetchesAsAUser: -build serves the published modules from a
// temporary proxy and fetches them from outside the repository. A
// published module that builds in the repository only through a replace
// of a third-party module (a local fork) passes every other check, since
// GOWORK=off still honours the module's own replace; a user's go get
// ignores that replace and fails.
func TestBuildFetchesAsAUser(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	parent := t.TempDir()
	root := filepath.Join(parent, "repo")
	files := map[string]string{
		"repo/go.mod":  "module example.com/core\n\ngo 1.25.0\n",
		"repo/core.go": "package core\n\nconst X = 1\n",
		"repo/go.work": "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n)\n",
		"repo/contrib/a/go.mod": "module example.com/core/contrib/a\n\ngo 1.25.0\n\n" +
			"require example.com/core v0.3.0\n\nreplace example.com/core => ../..\n",
		"repo/contrib/a/a.go": "package a\n\nimport \"example.com/core\"\n\nconst Y = core.X\n",
		"fork/go.mod":         "module example.com/fork\n\ngo 1.25.0\n",
		"fork/fork.go":        "package fork\n\nconst Z = 2\n",
	}
	writeFiles(t, parent, files)
	if err := run(root, "v0.3.0", false, true); err != nil {
		t.Fatalf("run -build of fetchable modules = %v", err)
	}
	mod := files["repo/contrib/a/go.mod"] + "\nrequire example.com/fork v1.0.0\n\nreplace example.com/fork => ../../../fork\n"
	src := "package a\n\nimport (\n\t\"example.com/core\"\n\t\"example.com/fork\"\n)\n\nconst Y = core.X + fork.Z\n"
	for p, s := range map[string]string{"contrib/a/go.mod": mod, "contrib/a/a.go": src} {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(p)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(root, "v0.3.0", false, false); err != nil {
		t.Fatalf("run without -build = %v; the requirements agree", err)
	}
	err := run(root, "v0.3.0", false, true)
	if err == nil || !strings.Contains(err.Error(), "example.com/core/contrib/a@v0.3.0 cannot be fetched once tagged") {
		t.Fatalf("run -build = %v, want contrib/a refused as not fetchable", err)
	}
}

// TestSetRefusesMajorWithoutSuffix: -set at v2.0.0 of modules whose paths
// lack /v2 rewrites nothing (go mod edit would fail part way, leaving
// some go.mod files rewritten and others not).
func TestSetRefusesMajorWithoutSuffix(t *testing.T) {
	root := t.TempDir()
	mod := "module example.com/core/contrib/a\n\ngo 1.25.0\n\nrequire example.com/core v1.0.0\n\nreplace example.com/core => ../..\n"
	files := map[string]string{
		"go.mod":           "module example.com/core\n\ngo 1.25.0\n",
		"go.work":          "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n)\n",
		"contrib/a/go.mod": mod,
	}
	writeFiles(t, root, files)
	err := run(root, "v2.0.0", true, false)
	if !errors.Is(err, release.ErrInvalidVersion) {
		t.Fatalf("run -set v2.0.0 = %v, want ErrInvalidVersion", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "contrib", "a", "go.mod")); string(got) != mod {
		t.Fatalf("go.mod rewritten by a refused -set:\n%s", got)
	}
}

// writeFiles writes files (slash-separated path -> content) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, s := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
