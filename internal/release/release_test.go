package release

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRepositoryReleasable: the repository's own modules agree on one
// version, are releasable at it, and the core and every adapter get a tag.
func TestRepositoryReleasable(t *testing.T) {
	mods, err := Modules(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Version(mods)
	if err != nil {
		t.Fatal(err)
	}
	if v == "" {
		t.Fatal("no module of the repository requires another; the nested modules must require the core")
	}
	for _, e := range Check(mods, v) {
		t.Error(e)
	}
	tags := Tags(mods, v)
	for _, want := range []string{v, "contrib/etcd/" + v, "contrib/rfc2136/" + v, "contrib/grpc/" + v, "contrib/otel/" + v} {
		if !slices.Contains(tags, want) {
			t.Errorf("tags %v lack %s", tags, want)
		}
	}
	for _, tag := range tags {
		if strings.HasPrefix(tag, "examples/") || strings.HasPrefix(tag, "bench/") {
			t.Errorf("tag %s: the examples and benchmarks are never published", tag)
		}
	}
}

// writeRepo writes files (path -> content) under a new directory.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, files)
	return root
}

const core = "module example.com/core\n\ngo 1.25.0\n"

// TestCheckFindsEachProblem: each kind of problem is reported, naming the
// module, and a repository without problems gives none.
func TestCheckFindsEachProblem(t *testing.T) {
	good := map[string]string{
		"go.mod":            core,
		"go.work":           "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n)\n",
		"contrib/a/go.mod":  "module example.com/core/contrib/a\n\ngo 1.25.0\n\nrequire example.com/core v1.2.3\n\nreplace example.com/core => ../..\n",
		"testdata/x/go.mod": "module ignored\n",
	}
	mods, err := Modules(writeRepo(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 || mods[0].Dir != "." || mods[1].Dir != "contrib/a" {
		t.Fatalf("modules %+v, want . and contrib/a (testdata skipped)", mods)
	}
	if errs := Check(mods, "v1.2.3"); len(errs) != 0 {
		t.Fatalf("good repository: %v", errs)
	}
	if v, err := Version(mods); v != "v1.2.3" || err != nil {
		t.Fatalf("Version = %q, %v; want v1.2.3", v, err)
	}
	if got, want := Tags(mods, "v1.2.3"), []string{"v1.2.3", "contrib/a/v1.2.3"}; !slices.Equal(got, want) {
		t.Fatalf("Tags = %v, want %v", got, want)
	}

	bad := map[string]string{
		"go.mod":           core,
		"go.work":          "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n\t./contrib/b\n)\n",
		"contrib/a/go.mod": "module example.com/core/contrib/a\n\ngo 1.25.0\n\nrequire example.com/core v0.0.0\n\nreplace example.com/core => ../..\n",
		"contrib/b/go.mod": "module example.com/core/contrib/b\n\ngo 1.25.0\n\nrequire example.com/core v1.2.3\n",
		"contrib/c/go.mod": "module example.com/core/contrib/c\n\ngo 1.25.0\n\nrequire example.com/core v1.2.3\n\nreplace example.com/core => ../../..\n",
	}
	mods, err = Modules(writeRepo(t, bad))
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, e := range Check(mods, "v1.2.3") {
		text = append(text, e.Error())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{
		"contrib/a requires example.com/core v0.0.0, want v1.2.3",
		"contrib/b requires example.com/core but has no replace directive to ../..",
		"contrib/c replaces example.com/core with ../../.., want ../..",
		"contrib/c (example.com/core/contrib/c) is not listed in go.work",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q; got:\n%s", want, all)
		}
	}
	if len(text) != 4 {
		t.Errorf("%d problems, want 4:\n%s", len(text), all)
	}
	if _, err := Version(mods); err == nil || !strings.Contains(err.Error(), "2 different versions") {
		t.Errorf("Version = %v, want a disagreement between 2 versions", err)
	}
}

// TestCheckRefusesBadVersions: only vMAJOR.MINOR.PATCH[-pre] is a release.
func TestCheckRefusesBadVersions(t *testing.T) {
	for _, v := range []string{"", "1.2.3", "v1.2", "v01.2.3", "v1.2.3+build", "v1.2.3-", "v1.2.3 ", "latest"} {
		errs := Check(nil, v)
		if len(errs) != 1 || !errors.Is(errs[0], ErrInvalidVersion) {
			t.Errorf("Check(%q) = %v, want ErrInvalidVersion", v, errs)
		}
	}
	for _, v := range []string{"v0.1.0", "v1.20.3", "v2.0.0-rc.1"} {
		if errs := Check(nil, v); len(errs) != 0 {
			t.Errorf("Check(%q) = %v, want none", v, errs)
		}
	}
}

// TestModulesReportsBrokenGoMod: an unreadable go.mod is an error naming
// the file, not a module silently left out.
func TestModulesReportsBrokenGoMod(t *testing.T) {
	root := writeRepo(t, map[string]string{"go.mod": core, "x/go.mod": "this is not a go.mod\n"})
	if _, err := Modules(root); err == nil || !strings.Contains(err.Error(), filepath.Join("x", "go.mod")) {
		t.Fatalf("Modules = %v, want an error naming x/go.mod", err)
	}
}

// TestCheckRefusesVersionsGoRefuses: a pre-release whose numeric
// identifier has a leading zero is not a semantic version, and the go
// command refuses it (go mod edit -require writes it, then every later go
// command fails to parse the go.mod); a major version of 2 or more needs a
// /vN suffix on every module path, which this repository does not have.
func TestCheckRefusesVersionsGoRefuses(t *testing.T) {
	for _, v := range []string{"v1.0.0-01", "v1.0.0-rc.01", "v1.0.0-rc..1"} {
		errs := Check(nil, v)
		if len(errs) != 1 || !errors.Is(errs[0], ErrInvalidVersion) {
			t.Errorf("Check(%q) = %v, want ErrInvalidVersion", v, errs)
		}
	}
	for _, v := range []string{"v1.0.0-0", "v1.0.0-rc.10", "v1.0.0-0a.1", "v1.0.0-x-y"} {
		if errs := Check(nil, v); len(errs) != 0 {
			t.Errorf("Check(%q) = %v, want none", v, errs)
		}
	}
	mods := []Module{
		{Dir: ".", Path: "example.com/core", InWork: true},
		{Dir: "contrib/a", Path: "example.com/core/contrib/a", InWork: true,
			Require: map[string]string{"example.com/core": "v2.0.0"}, Replace: map[string]string{"example.com/core": "../.."}},
	}
	errs := Check(mods, "v2.0.0")
	if len(errs) == 0 {
		t.Fatal("Check(v2.0.0) of modules without a /v2 suffix = none, want a refusal: go get example.com/core@v2.0.0 fails")
	}
	for _, e := range errs {
		if !errors.Is(e, ErrInvalidVersion) || !strings.Contains(e.Error(), "/v2") {
			t.Errorf("Check(v2.0.0) = %v, want ErrInvalidVersion naming the /v2 suffix", e)
		}
	}
	mods[0].Path, mods[1].Path = "example.com/core/v2", "example.com/core/contrib/a/v2"
	mods[1].Require = map[string]string{"example.com/core/v2": "v2.0.0"}
	mods[1].Replace = map[string]string{"example.com/core/v2": "../.."}
	if errs := Check(mods, "v2.0.0"); len(errs) != 0 {
		t.Errorf("Check(v2.0.0) of /v2 modules = %v, want none", errs)
	}
}

// TestCheckRefusesPublishedRequiringUnpublished: a published module that
// requires one that is never tagged (examples/, bench/) cannot be fetched.
func TestCheckRefusesPublishedRequiringUnpublished(t *testing.T) {
	mods := []Module{
		{Dir: ".", Path: "example.com/core", InWork: true},
		{Dir: "contrib/a", Path: "example.com/core/contrib/a", InWork: true,
			Require: map[string]string{"example.com/core/examples": "v1.0.0"}, Replace: map[string]string{"example.com/core/examples": "../../examples"}},
		{Dir: "examples", Path: "example.com/core/examples", InWork: true},
	}
	errs := Check(mods, "v1.0.0")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "contrib/a requires example.com/core/examples, which is never tagged") {
		t.Fatalf("Check = %v, want contrib/a refused for requiring the untagged examples", errs)
	}
}

// TestModulesPathWithSpaces: a checkout whose path holds spaces and
// non-ASCII letters is read like any other.
func TestModulesPathWithSpaces(t *testing.T) {
	root := filepath.Join(t.TempDir(), "my repo ü")
	files := map[string]string{
		"go.mod":            core,
		"go.work":           "go 1.25.0\n\nuse (\n\t.\n\t./contrib/ab\n)\n",
		"contrib/ab/go.mod": "module example.com/core/contrib/ab\n\ngo 1.25.0\n\nrequire example.com/core v1.2.3\n\nreplace example.com/core => ../..\n",
	}
	writeFiles(t, root, files)
	mods, err := Modules(root)
	if err != nil {
		t.Fatal(err)
	}
	if errs := Check(mods, "v1.2.3"); len(errs) != 0 {
		t.Fatalf("Check = %v, want none", errs)
	}
	if got, want := Tags(mods, "v1.2.3"), []string{"v1.2.3", "contrib/ab/v1.2.3"}; !slices.Equal(got, want) {
		t.Fatalf("Tags = %v, want %v", got, want)
	}
}

// TestCheckRefusesPathNotDir: the go command finds a nested module's tag
// by the module path's part below the core's (example.com/core/contrib/ab
// at contrib/ab/v1.2.3, in directory contrib/ab); a published module whose
// directory differs (a renamed directory, one holding a space, which no
// tag may) would be tagged where go get never looks.
func TestCheckRefusesPathNotDir(t *testing.T) {
	for _, dir := range []string{"contrib/a b", "contrib/other"} {
		mods := []Module{
			{Dir: ".", Path: "example.com/core", InWork: true},
			{Dir: dir, Path: "example.com/core/contrib/ab", InWork: true,
				Require: map[string]string{"example.com/core": "v1.2.3"}, Replace: map[string]string{"example.com/core": "../.."}},
		}
		errs := Check(mods, "v1.2.3")
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "example.com/core/contrib/ab is in "+dir+", want example.com/core/"+dir) {
			t.Errorf("Check with %s = %v, want the module path and directory refused", dir, errs)
		}
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
