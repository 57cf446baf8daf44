package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output and build-fail
	FailedBuild string
}

// module is a module under test: its directory and its path.
type module struct {
	dir, path string
}

// counts are the tests (and subtests, and Examples) of a module by outcome.
type counts struct {
	packages, passed, failed, skipped int
	buildFailed                       []string
	// died are the packages that failed with no test failing (a
	// timeout, a panic outside a test, an exit from TestMain), each
	// with the tests that never finished.
	died []string
	// skips maps "package: message" to how many tests skipped with it,
	// in the order first seen (skipOrder).
	skips     map[string]int
	skipOrder []string
}

// line is one output line of a test, kept until the test ends.
type line struct {
	test, text string
}

// summary consumes events and writes go test's usual output to out.
type summary struct {
	mods []module
	out  io.Writer
	by   map[string]*counts // by module dir
	held map[string][]line  // output of running tests, by package
	// running are the tests started and not ended, by package;
	// testFailed the packages where a test failed.
	running    map[string][]string
	testFailed map[string]bool
	testEnded  map[string]bool // packages where a test ended
	other      counts          // packages of no module given
	fail       bool
}

func newSummary(mods []module, out io.Writer) *summary {
	return &summary{mods: mods, out: out, by: map[string]*counts{}, held: map[string][]line{},
		running: map[string][]string{}, testFailed: map[string]bool{}, testEnded: map[string]bool{}}
}

// moduleOf returns the counts of the module pkg belongs to.
func (s *summary) moduleOf(pkg string) *counts {
	best := -1
	for i, m := range s.mods {
		if (pkg == m.path || strings.HasPrefix(pkg, m.path+"/")) && (best < 0 || len(m.path) > len(s.mods[best].path)) {
			best = i
		}
	}
	if best < 0 {
		return &s.other
	}
	c := s.by[s.mods[best].dir]
	if c == nil {
		c = &counts{skips: map[string]int{}}
		s.by[s.mods[best].dir] = c
	}
	return c
}

// read consumes the stream. Lines that are not JSON events (a go command
// error, an echo from make) are printed as they are.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		b := sc.Bytes()
		var e event
		if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &e) != nil || e.Action == "" {
			fmt.Fprintln(s.out, string(b))
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	switch e.Action {
	case "build-output":
		// The compiler's (or vet's) messages for a package that does not
		// build: always shown, as go test shows them.
		fmt.Fprint(s.out, e.Output)
		return
	case "build-fail":
		s.fail = true
		pkg, _, _ := strings.Cut(e.ImportPath, " ")
		c := s.moduleOf(pkg)
		c.buildFailed = append(c.buildFailed, pkg)
		return
	}
	if e.Test == "" {
		s.packageEvent(e)
		return
	}
	switch e.Action {
	case "run":
		s.running[e.Package] = append(s.running[e.Package], e.Test)
	case "output":
		s.held[e.Package] = append(s.held[e.Package], line{e.Test, e.Output})
	case "pass", "fail", "skip":
		s.running[e.Package] = slices.DeleteFunc(s.running[e.Package], func(t string) bool { return t == e.Test })
		s.testEnded[e.Package] = true
		c := s.moduleOf(e.Package)
		lines := s.take(e.Package, e.Test)
		switch e.Action {
		case "pass":
			c.passed++
		case "fail":
			c.failed++
			s.fail = true
			s.testFailed[e.Package] = true
		case "skip":
			c.skipped++
			key := shortPkg(e.Package) + ": " + skipMessage(lines)
			if c.skips[key] == 0 {
				c.skipOrder = append(c.skipOrder, key)
			}
			c.skips[key]++
		}
		// A failed top-level test shows its output and its failed
		// subtests', as go test does: a failed subtest's lines wait for
		// its top-level test, a passed or skipped one's are dropped.
		switch {
		case e.Action != "fail":
		case strings.Contains(e.Test, "/"):
			s.held[e.Package] = append(s.held[e.Package], lines...)
		default:
			s.print(lines)
		}
	}
}

// take removes and returns the held lines of test and of its subtests,
// and, for a top-level test, of its subtests' subtests too.
func (s *summary) take(pkg, test string) []line {
	var mine, rest []line
	for _, l := range s.held[pkg] {
		if l.test == test || strings.HasPrefix(l.test, test+"/") {
			mine = append(mine, l)
		} else {
			rest = append(rest, l)
		}
	}
	s.held[pkg] = rest
	return mine
}

// print prints a failed test's lines without the "=== RUN" (PAUSE, CONT,
// NAME) lines of go test -json's verbose mode, as go test without -v does.
func (s *summary) print(lines []line) {
	for _, l := range lines {
		if !strings.HasPrefix(l.text, "=== ") {
			fmt.Fprint(s.out, l.text)
		}
	}
}

// packageEvent handles an event of a package as a whole.
func (s *summary) packageEvent(e event) {
	switch e.Action {
	case "start":
		s.moduleOf(e.Package).packages++
	case "output":
		// go test -json runs tests verbosely; drop what go test without
		// -v does not print for a package that passes.
		if e.Output == "PASS\n" || strings.HasPrefix(e.Output, "=== ") {
			return
		}
		if e.Output == "FAIL\n" || strings.HasPrefix(e.Output, "FAIL\t"+e.Package) {
			// Output of tests that never ended (a panic, a timeout,
			// os.Exit) belongs to the failure, before its FAIL line.
			s.print(s.held[e.Package])
			delete(s.held, e.Package)
		}
		fmt.Fprint(s.out, e.Output)
	case "fail":
		s.fail = true
		s.print(s.held[e.Package])
		delete(s.held, e.Package)
		unfinished := s.running[e.Package]
		delete(s.running, e.Package)
		if e.FailedBuild != "" || (s.testFailed[e.Package] && len(unfinished) == 0) {
			return // counted as a build failure, or as its failed tests
		}
		// The test binary failed with no test failing, or died in the
		// middle of tests: a failure the counts alone would not show.
		c := s.moduleOf(e.Package)
		c.failed += len(unfinished)
		why := e.Package
		switch {
		case len(unfinished) > 0:
			why += " (did not finish: " + strings.Join(unfinished, ", ") + ")"
		case s.testEnded[e.Package]:
			// Nothing printed says why: TestMain exited non-zero, or
			// the race detector or a leak check failed the binary.
			why += " (the test binary failed after its tests ended)"
		default:
			why += " (before any test ended)"
		}
		c.died = append(c.died, why)
	case "pass", "skip":
		delete(s.held, e.Package)
		delete(s.running, e.Package)
	}
}

// framing matches the lines test2json's verbose mode adds around a test.
var framing = regexp.MustCompile(`^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|FAIL|SKIP):)`)

// location matches the "file_test.go:12: " that testing puts before a
// message.
var location = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// skipMessage returns the message a skipped test gave, on one line.
func skipMessage(lines []line) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimRight(l.text, "\n")
		if framing.MatchString(t) || strings.TrimSpace(t) == "" {
			continue
		}
		msg = append(msg, strings.TrimSpace(location.ReplaceAllString(t, "")))
	}
	if len(msg) == 0 {
		return "(no message)"
	}
	return strings.Join(msg, " ")
}

// shortPkg drops the repository's common prefix for readability.
func shortPkg(pkg string) string {
	if i := strings.Index(pkg, "/stormguard/stormguard/"); i >= 0 {
		return pkg[i+len("/stormguard/stormguard/"):]
	}
	if strings.HasSuffix(pkg, "/stormguard/stormguard") {
		return "."
	}
	return pkg
}

// maxSkipLines bounds the skip messages listed per module.
const maxSkipLines = 8

// report prints the summary and reports whether everything passed.
func (s *summary) report() bool {
	fmt.Fprintln(s.out, "== test summary")
	rows := slices.Clone(s.mods)
	width := 0
	for _, m := range rows {
		width = max(width, len(m.dir))
	}
	print := func(name string, c *counts) {
		status := "ok  "
		if c.failed > 0 || len(c.buildFailed) > 0 || len(c.died) > 0 || c.packages == 0 {
			status = "FAIL"
		}
		run := c.passed + c.failed
		fmt.Fprintf(s.out, "%s %-*s  %s, %s run (%d passed, %d failed), %d skipped",
			status, width, name, plural(c.packages, "package"), plural(run, "test"), c.passed, c.failed, c.skipped)
		if len(c.buildFailed) > 0 {
			fmt.Fprintf(s.out, ", build failed: %s", strings.Join(c.buildFailed, " "))
		}
		if len(c.died) > 0 {
			fmt.Fprintf(s.out, ", failed: %s", strings.Join(c.died, ", "))
		}
		if c.packages == 0 {
			// go test said why on stderr ("no packages to test", a go.mod
			// error): a module where nothing ran did not pass.
			fmt.Fprint(s.out, ": nothing was tested")
		}
		fmt.Fprintln(s.out)
		for i, k := range c.skipOrder {
			if i == maxSkipLines {
				fmt.Fprintf(s.out, "     %*s  ... and %d more skip messages\n", width, "", len(c.skipOrder)-i)
				break
			}
			fmt.Fprintf(s.out, "     %*s  skipped %d: %s\n", width, "", c.skips[k], k)
		}
	}
	for _, m := range rows {
		c := s.by[m.dir]
		if c == nil {
			c = &counts{}
		}
		if c.packages == 0 {
			s.fail = true
		}
		print(m.dir, c)
	}
	if s.other.packages+s.other.passed+s.other.failed+s.other.skipped+len(s.other.died)+len(s.other.buildFailed) > 0 {
		print("(other)", &s.other)
	}
	return !s.fail
}

// plural is "1 package" or "n packages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
