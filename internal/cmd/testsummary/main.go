// Command testsummary reads the output of `go test -json` from one or more
// modules, prints what `go test` without -json would have printed (the ok,
// FAIL and "no test files" lines, the output of every failed test, build
// failures, anything printed outside a test), and ends with one line per
// module saying how many tests ran, passed, failed and were skipped, with
// the packages that did not build and those whose test binary failed with
// no failed test (a timeout, naming the tests that never finished; a panic
// before any test ended; a TestMain exiting non-zero), and the skip
// messages of skipped tests, so that a reader can tell whether the
// integration suites ran. It exits with status 1 if anything failed.
//
// make test runs it as:
//
//	$ for m in $MODULES; do (cd $m && go test -json -race ./...); done | go run ./internal/cmd/testsummary -modules "$MODULES"
//
// Packages are attributed to the module (a directory with a go.mod, given
// in -modules) whose module path is their longest prefix.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	modules := flag.String("modules", ".", "space-separated directories of the modules under test, relative to the current directory")
	flag.Parse()
	mods, err := readModules(strings.Fields(*modules))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	s := newSummary(mods, os.Stdout)
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if !s.report() {
		os.Exit(1)
	}
}

// readModules returns each directory's module, with its path from go.mod.
func readModules(dirs []string) ([]module, error) {
	var mods []module
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err != nil {
			return nil, err
		}
		path := ""
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
				path = strings.Trim(strings.TrimSpace(rest), `"`)
				break
			}
		}
		if path == "" {
			return nil, fmt.Errorf("%s/go.mod: no module line", d)
		}
		mods = append(mods, module{dir: filepath.Clean(d), path: path})
	}
	return mods, nil
}
