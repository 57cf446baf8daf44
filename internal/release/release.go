// Package release checks that the repository's modules can be released
// together: every nested module requires the core (and any other module of
// the repository) at the version the release will tag, keeps a replace
// directive to the module's directory for development, and is listed in
// go.work.
//
//	mods, err := release.Modules(".")
//	if err != nil { ... }
//	for _, p := range release.Check(mods, "v0.2.0") {
//		fmt.Println(p)
//	}
//
// A module's replace directives are ignored when it is required by another
// module, so a published adapter resolves the core only through the
// version in its require line; a v0.0.0 or a version that is never tagged
// makes `go get` of the adapter fail. The command
// internal/cmd/releasecheck (make release-check VERSION=vX.Y.Z) runs this
// check before tags are cut.
package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ErrInvalidVersion reports a release version that is not a semantic
// version of the form vMAJOR.MINOR.PATCH (with an optional pre-release).
var ErrInvalidVersion = errors.New("release: invalid version")

// semver is the form of a release tag's version: vMAJOR.MINOR.PATCH with
// an optional pre-release suffix whose numeric identifiers have no leading
// zero (semver 2.0.0, as the go command checks: go mod edit writes
// v1.0.0-01, and every later go command then refuses the go.mod); build
// metadata is not allowed in module versions.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-` + preID + `(\.` + preID + `)*)?$`)

// preID is one pre-release identifier: a number without a leading zero, or
// alphanumerics and hyphens with at least one non-digit.
const preID = `(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)`

// majorSuffix is the /vN suffix a module path needs for versions vN.x.y
// with N >= 2.
var majorSuffix = regexp.MustCompile(`/v([2-9]|[1-9][0-9]+)$`)

// Module is one go.mod of the repository.
type Module struct {
	// Dir is the module's directory relative to the repository root, with
	// forward slashes; "." for the root module.
	Dir string
	// Path is the module path declared in go.mod.
	Path string
	// Require maps each required module path to its version.
	Require map[string]string
	// Replace maps each replaced module path to the replacement's path
	// (a directory relative to Dir for local replacements) and, for a
	// module replacement, "path@version".
	Replace map[string]string
	// InWork reports whether go.work at the repository root lists Dir.
	InWork bool
}

// Published reports whether the module is released under tags: the core
// and the adapters under contrib/. The examples and benchmarks are
// modules only to keep their dependencies out of the core; they are never
// tagged.
func (m Module) Published() bool {
	return m.Dir == "." || strings.HasPrefix(m.Dir, "contrib/")
}

// TagPrefix is the prefix of the module's release tags: "" for the core,
// "contrib/etcd/" for the module in contrib/etcd (the form the go command
// expects for a module in a subdirectory).
func (m Module) TagPrefix() string {
	if m.Dir == "." {
		return ""
	}
	return m.Dir + "/"
}

type goMod struct {
	Module  struct{ Path string }
	Require []struct{ Path, Version string }
	Replace []struct {
		Old struct{ Path string }
		New struct{ Path, Version string }
	}
}

type goWork struct {
	Use []struct{ DiskPath string }
}

// Modules finds every go.mod below root (skipping testdata, hidden and
// vendor directories) and reads it with `go mod edit -json`, and go.work
// with `go work edit -json`. The modules are sorted by directory, the
// root module first.
func Modules(root string) ([]Module, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root {
			name := d.Name()
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
		}
		if !d.IsDir() && d.Name() == "go.mod" {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("release: finding go.mod files under %s: %w", root, err)
	}
	slices.Sort(dirs) // "." sorts before any letter
	work := map[string]bool{}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err == nil {
		var w goWork
		if err := goJSON(root, &w, "work", "edit", "-json", "go.work"); err != nil {
			return nil, err
		}
		for _, u := range w.Use {
			work[filepath.ToSlash(filepath.Clean(u.DiskPath))] = true
		}
	}
	mods := make([]Module, 0, len(dirs))
	for _, dir := range dirs {
		var g goMod
		if err := goJSON(root, &g, "mod", "edit", "-json", filepath.Join(dir, "go.mod")); err != nil {
			return nil, err
		}
		m := Module{Dir: dir, Path: g.Module.Path, Require: map[string]string{}, Replace: map[string]string{}, InWork: work[dir]}
		for _, r := range g.Require {
			m.Require[r.Path] = r.Version
		}
		for _, r := range g.Replace {
			to := r.New.Path
			if r.New.Version != "" {
				to += "@" + r.New.Version
			}
			m.Replace[r.Old.Path] = to
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// goJSON runs the go command in dir and decodes its JSON output into v.
func goJSON(dir string, v any, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("release: go %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("release: go %s in %s: %w", strings.Join(args, " "), dir, err)
	}
	return nil
}

// Version returns the one version at which the repository's modules
// require each other, or an error naming every disagreement. A repository
// whose modules never require each other has no version ("", nil).
func Version(mods []Module) (string, error) {
	paths := map[string]string{} // module path -> dir
	for _, m := range mods {
		paths[m.Path] = m.Dir
	}
	seen := map[string][]string{} // version -> "dir requires path"
	for _, m := range mods {
		for p, v := range m.Require {
			if _, ok := paths[p]; ok {
				seen[v] = append(seen[v], fmt.Sprintf("%s requires %s %s", m.Dir, p, v))
			}
		}
	}
	switch len(seen) {
	case 0:
		return "", nil
	case 1:
		for v := range seen {
			return v, nil
		}
	}
	var lines []string
	for _, uses := range seen {
		lines = append(lines, uses...)
	}
	slices.Sort(lines)
	return "", fmt.Errorf("release: the modules require each other at %d different versions:\n\t%s", len(seen), strings.Join(lines, "\n\t"))
}

// Check returns every reason the modules cannot be released at version
// (nil when they can):
//   - version is not a semantic version (ErrInvalidVersion);
//   - version's major is 2 or more and a module's path lacks the /vN
//     suffix the go command then requires, or has a suffix for another
//     major (ErrInvalidVersion);
//   - a published module requires a module of the repository that is never
//     tagged (examples/, bench/);
//   - a published nested module's path is not the core's path followed by
//     its directory (the go command would not find it under its tag);
//   - a module requires another module of the repository at a different
//     version;
//   - a module that requires another module of the repository has no
//     replace directive pointing at that module's directory (development
//     would then build against the published version, not the tree);
//   - a module is not listed in go.work.
func Check(mods []Module, version string) []error {
	var errs []error
	if !semver.MatchString(version) {
		errs = append(errs, fmt.Errorf("%w: %q is not of the form vMAJOR.MINOR.PATCH[-pre]", ErrInvalidVersion, version))
	}
	dirOf := map[string]string{}
	published := map[string]bool{}
	for _, m := range mods {
		dirOf[m.Path] = m.Dir
		published[m.Path] = m.Published()
	}
	if semver.MatchString(version) {
		major := strings.SplitN(version[1:], ".", 2)[0]
		for _, m := range mods {
			got := ""
			if s := majorSuffix.FindStringSubmatch(m.Path); s != nil {
				got = s[1]
			}
			want := major
			if major == "0" || major == "1" {
				want = ""
			}
			if got != want {
				if want == "" {
					errs = append(errs, fmt.Errorf("%w: %s (%s) ends in /v%s, which only versions v%s.x.y may tag, not %s", ErrInvalidVersion, m.Dir, m.Path, got, got, version))
				} else {
					errs = append(errs, fmt.Errorf("%w: %s at %s needs the module path %s/v%s (the go command requires the /v%s suffix from major 2), not %s", ErrInvalidVersion, m.Dir, version, strings.TrimSuffix(m.Path, "/v"+got), major, major, m.Path))
				}
			}
		}
	}
	corePath := ""
	for _, m := range mods {
		if m.Dir == "." {
			corePath = majorSuffix.ReplaceAllString(m.Path, "")
		}
	}
	for _, m := range mods {
		if corePath != "" && m.Published() && m.Dir != "." {
			if want := corePath + "/" + m.Dir; majorSuffix.ReplaceAllString(m.Path, "") != want {
				errs = append(errs, fmt.Errorf("%s is in %s, want %s: the go command looks for its tag %s in the directory its path names", m.Path, m.Dir, want, m.TagPrefix()+version))
			}
		}
		if !m.InWork {
			errs = append(errs, fmt.Errorf("%s (%s) is not listed in go.work", m.Dir, m.Path))
		}
		for _, p := range sortedKeys(m.Require) {
			dep, ok := dirOf[p]
			if !ok {
				continue
			}
			if m.Published() && !published[p] {
				errs = append(errs, fmt.Errorf("%s requires %s, which is never tagged (only the core and contrib/ are published), so go get of %s could not resolve it", m.Dir, p, m.Path))
			}
			if v := m.Require[p]; v != version {
				errs = append(errs, fmt.Errorf("%s requires %s %s, want %s (the version being released)", m.Dir, p, v, version))
			}
			want, err := filepath.Rel(m.Dir, dep)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.Dir, err))
				continue
			}
			got, ok := m.Replace[p]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s requires %s but has no replace directive to %s", m.Dir, p, filepath.ToSlash(want)))
			case filepath.Clean(got) != filepath.Clean(want):
				errs = append(errs, fmt.Errorf("%s replaces %s with %s, want %s", m.Dir, p, got, filepath.ToSlash(want)))
			}
		}
	}
	return errs
}

// Tags returns the tags a release at version cuts: one per published
// module, e.g. "v0.1.0" and "contrib/etcd/v0.1.0".
func Tags(mods []Module, version string) []string {
	var tags []string
	for _, m := range mods {
		if m.Published() {
			tags = append(tags, m.TagPrefix()+version)
		}
	}
	return tags
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
