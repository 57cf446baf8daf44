package proctest

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Shared is a server started once for a whole test binary, for the
// package's Example functions: an Example cannot skip or fail the way a
// test does, so the server must exist before it runs, or it must not run.
//
// Run starts the server with start (a harness's Start, given a stand-in
// for testing.TB) before the tests, runs them, and stops it after. If start
// skips (no binary, CI unset), the Examples are left out of the run through
// -test.skip and Check skips with the same message; if start fails (no
// binary with CI=true, a server that does not start), they are left out
// too, Check fails with the message and Run returns a failing status, so
// that nothing passes by not running.
//
//	var etcdServer = proctest.NewShared([]string{"Example"}, func(t testing.TB) {
//		endpoint = etcdtest.Start(t).Endpoint()
//	})
//
//	func TestMain(m *testing.M) { leakcheck.Main(etcdServer.With(m)) }
//
//	func TestExamplesServer(t *testing.T) { etcdServer.Check(t) }
type Shared struct {
	examples []string
	start    func(testing.TB)
	m        interface{ Run() int }

	skipped, failed string
	cleanups        []func()
}

// NewShared returns a Shared server for the Example functions named in
// examples, started by start.
func NewShared(examples []string, start func(testing.TB)) *Shared {
	return &Shared{examples: examples, start: start}
}

// With returns s set to run m's tests; pass it to leakcheck.Main.
func (s *Shared) With(m interface{ Run() int }) *Shared {
	s.m = m
	return s
}

// Run starts the server if any of the Examples is selected by -test.run
// (and not by -test.skip), runs the tests, stops the server, and returns
// the tests' exit status (1 if the server failed to start).
func (s *Shared) Run() int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if !s.selected() {
		return s.m.Run()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.start(&mainTB{s: s})
	}()
	<-done
	if s.skipped != "" || s.failed != "" {
		why := s.skipped
		if s.failed != "" {
			why = "FAILED: " + s.failed
		}
		fmt.Printf("proctest: not running %s: %s\n", strings.Join(s.examples, ", "), why)
		if err := s.skipExamples(); err != nil {
			fmt.Println("proctest:", err)
			s.failed += "; " + err.Error()
		}
	}
	code := s.m.Run()
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	if s.failed != "" && code == 0 {
		code = 1
	}
	return code
}

// Check skips t with the message the server's start skipped with, or fails
// it with the message it failed with; it does nothing if the server runs
// or was not needed.
func (s *Shared) Check(t testing.TB) {
	t.Helper()
	switch {
	case s.failed != "":
		t.Fatalf("server for %s: %s", strings.Join(s.examples, ", "), s.failed)
	case s.skipped != "":
		t.Skipf("%s not run: %s", strings.Join(s.examples, ", "), s.skipped)
	}
}

// selected reports whether -test.run (if set) selects one of the Examples
// and -test.skip and -test.list do not leave them all out.
func (s *Shared) selected() bool {
	if v := flagValue("test.list"); v != "" {
		return false
	}
	run, skip := topLevel(flagValue("test.run")), topLevel(flagValue("test.skip"))
	for _, name := range s.examples {
		if (run == nil || run.MatchString(name)) && (skip == nil || !skip.MatchString(name)) {
			return true
		}
	}
	return false
}

// skipExamples adds the Examples to -test.skip.
func (s *Shared) skipExamples() error {
	mine := "^(" + strings.Join(s.examples, "|") + ")$"
	old := flagValue("test.skip")
	switch {
	case old == "":
	case strings.Contains(old, "/"):
		// A sub-test pattern cannot be joined with ours at the top level;
		// ours is what must hold.
	default:
		mine = old + "|" + mine
	}
	return flag.Set("test.skip", mine)
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// topLevel compiles the top-level element of a -test.run or -test.skip
// pattern (the part before the first unbracketed slash); nil if empty or
// invalid (go test reports an invalid one itself).
func topLevel(pattern string) *regexp.Regexp {
	if pattern == "" {
		return nil
	}
	depth := 0
scan:
	for i, c := range pattern {
		switch c {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case '/':
			if depth == 0 {
				pattern = pattern[:i]
				break scan
			}
		}
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil
	}
	return re
}

// mainTB stands in for testing.TB in TestMain, for a harness's Start: it
// records Skip and Fatal (ending only the goroutine that called them, as
// testing does), and keeps the cleanups and temporary directories for Run
// to undo after the tests. Other methods of testing.TB are not used by
// the harnesses and panic.
type mainTB struct {
	testing.TB
	s *Shared
}

func (t *mainTB) Helper()                 {}
func (t *mainTB) Name() string            { return "TestMain" }
func (t *mainTB) Cleanup(f func())        { t.s.cleanups = append(t.s.cleanups, f) }
func (t *mainTB) Failed() bool            { return t.s.failed != "" }
func (t *mainTB) Skipped() bool           { return t.s.skipped != "" }
func (t *mainTB) Log(args ...any)         { fmt.Fprintln(os.Stderr, args...) }
func (t *mainTB) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (t *mainTB) Skip(args ...any)        { t.s.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (t *mainTB) Skipf(f string, a ...any) {
	t.s.skipped = fmt.Sprintf(f, a...)
	runtime.Goexit()
}
func (t *mainTB) Error(args ...any)         { t.fail(fmt.Sprint(args...)) }
func (t *mainTB) Errorf(f string, a ...any) { t.fail(fmt.Sprintf(f, a...)) }
func (t *mainTB) Fatal(args ...any)         { t.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (t *mainTB) Fatalf(f string, a ...any) { t.fail(fmt.Sprintf(f, a...)); runtime.Goexit() }

func (t *mainTB) fail(msg string) {
	if t.s.failed != "" {
		msg = t.s.failed + "; " + msg
	}
	t.s.failed = msg
}

// TempDir returns a new temporary directory, removed after the tests.
func (t *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "proctest-shared-")
	if err != nil {
		t.Fatalf("proctest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
