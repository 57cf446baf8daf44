// Command releasecheck checks, before release tags are cut, that every
// module of the repository requires the others at the version being
// released, keeps its development replace directives, and is listed in
// go.work; it then prints the tags to cut.
//
//	go run ./internal/cmd/releasecheck -version v0.2.0
//	go run ./internal/cmd/releasecheck -version v0.2.0 -set  # rewrite the requirements first
//	go run ./internal/cmd/releasecheck -version v0.2.0 -tags # only the tags, one a line
//
// It exits with status 1, printing no tag, when the modules are not
// releasable, so a tag loop over its output can check the status first:
//
//	tags=$(go run ./internal/cmd/releasecheck -version v0.2.0 -tags) && for t in $tags; do git tag "$t"; done
//
// With -build it also builds every published module with GOWORK=off, so
// each resolves its dependencies from its own go.mod as a user's build
// would (apart from the replace directives, which a user's build ignores
// and the tags make unnecessary), and checks with go mod tidy -diff,
// GOWORK=off, that its go.mod and go.sum already list everything its
// packages and their tests import (go build compiles no tests, so a test
// importing a module that only go.work supplies would otherwise pass).
// Last it serves the published modules, as the tags will hold them, from a
// temporary file:// module proxy, and in a new module outside the
// repository (GOWORK=off, an empty module cache, no replace directive)
// runs go get of each at the version and go build of its packages: what a
// user's go get will do once the tags are pushed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/stormguard/stormguard/internal/release"
)

func main() {
	version := flag.String("version", "", "the version being released, vMAJOR.MINOR.PATCH[-pre] (required)")
	root := flag.String("root", ".", "the repository root")
	set := flag.Bool("set", false, "first rewrite every requirement between the repository's modules to -version (go mod edit -require)")
	build := flag.Bool("build", false, "also build every published module with GOWORK=off")
	tagsOnly := flag.Bool("tags", false, "print only the tags to cut, one a line")
	flag.Parse()
	out = os.Stdout
	if *tagsOnly {
		quiet = true
	}
	if err := run(*root, *version, *set, *build); err != nil {
		fmt.Fprintln(os.Stderr, "releasecheck:", err)
		os.Exit(1)
	}
}

// out receives the tags; quiet prints them alone, one a line, for a tag
// loop.
var (
	out   io.Writer = os.Stdout
	quiet bool
)

func run(root, version string, set, build bool) error {
	if version == "" {
		return fmt.Errorf("-version is required (e.g. -version v0.2.0)")
	}
	mods, err := release.Modules(root)
	if err != nil {
		return err
	}
	if set {
		// A version the go command refuses (v1.0.0-01, or v2.0.0 for
		// paths without /v2) would be written into some go.mod files
		// before go mod edit failed on one: refuse it before writing.
		for _, e := range release.Check(mods, version) {
			if errors.Is(e, release.ErrInvalidVersion) {
				return e
			}
		}
		paths := map[string]bool{}
		for _, m := range mods {
			paths[m.Path] = true
		}
		for _, m := range mods {
			for p := range m.Require {
				if !paths[p] {
					continue
				}
				if err := goCmd(filepath.Join(root, m.Dir), nil, "mod", "edit", "-require", p+"@"+version); err != nil {
					return err
				}
			}
		}
		if mods, err = release.Modules(root); err != nil {
			return err
		}
	}
	if errs := release.Check(mods, version); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		return fmt.Errorf("%d problem(s); nothing to tag", len(errs))
	}
	if build {
		for _, m := range mods {
			if !m.Published() {
				continue
			}
			fmt.Fprintf(os.Stderr, "building %s with GOWORK=off\n", m.Dir)
			if err := goCmd(filepath.Join(root, m.Dir), []string{"GOWORK=off"}, "build", "./..."); err != nil {
				return err
			}
			if err := goCmd(filepath.Join(root, m.Dir), []string{"GOWORK=off"}, "mod", "tidy", "-diff"); err != nil {
				return fmt.Errorf("%s is not tidy with GOWORK=off (its go.mod or go.sum lacks what its packages or tests import; run go mod tidy there with GOWORK=off): %w", m.Dir, err)
			}
		}
		if err := fetch(root, mods, version); err != nil {
			return err
		}
	}
	tags := release.Tags(mods, version)
	slices.Sort(tags)
	if quiet {
		for _, t := range tags {
			fmt.Fprintln(out, t)
		}
		return nil
	}
	fmt.Fprintf(out, "all %d modules require each other at %s; tags to cut:\n", len(mods), version)
	for _, t := range tags {
		fmt.Fprintln(out, " ", t)
	}
	return nil
}

func goCmd(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v in %s: %w", args, dir, err)
	}
	return nil
}
