package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The streams in testdata were recorded with `go test -json` (Go 1.26) on
// a module example.com/rec whose packages pass (with parallel subtests and
// an Example), skip (a top-level test, and a parallel subtest), fail (a
// parallel subtest), panic, do not compile, have no tests (mixed.jsonl),
// and fail go vet's Example check (vetfail.jsonl).

var rec = []module{{dir: "rec", path: "example.com/rec"}}

func summarise(t *testing.T, file string, mods []module, prefix string) (out string, ok bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	s := newSummary(mods, &buf)
	if err := s.read(strings.NewReader(prefix + string(b))); err != nil {
		t.Fatal(err)
	}
	ok = s.report()
	return buf.String(), ok
}

func TestMixedStream(t *testing.T) {
	out, ok := summarise(t, "mixed.jsonl", rec, "== go test -race rec\n")
	if ok {
		t.Error("report() = true for a stream with failures")
	}
	for _, want := range []string{
		"== go test -race rec\n", // a line that is not JSON, as it was
		// The build failure, with the compiler's message.
		"broken/b.go:3:23: cannot use \"not an int\"",
		"FAIL\texample.com/rec/broken [build failed]\n",
		// The panic, with its stack.
		"panic: assignment to entry in nil map",
		"/src/rec/panics/p_test.go:7",
		"FAIL\texample.com/rec/panics",
		// The failed parallel subtest, under its parent.
		"--- FAIL: TestBad ",
		"--- FAIL: TestBad/inner ",
		"got 1, want 2",
		"ok  \texample.com/rec/pass",
		"ok  \texample.com/rec/skip",
		"?   \texample.com/rec/notests\t[no test files]\n",
		// The summary.
		"== test summary\n",
		"FAIL rec  6 packages, 12 tests run (9 passed, 3 failed), 2 skipped, build failed: example.com/rec/broken\n",
		"skipped 2: example.com/rec/skip: etcd binary not found: install it (apt-get install -y etcd-server) or set ETCD_BIN\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// What go test without -v does not print for tests that pass or skip.
	for _, unwanted := range []string{"=== RUN", "=== PAUSE", "=== CONT", "--- PASS", "--- SKIP", "quiet unless failed", "PASS\n"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, out)
		}
	}
	// Each failure's output once, and the summary at the end.
	if n := strings.Count(out, "got 1, want 2"); n != 1 {
		t.Errorf("the failure's message is printed %d times, want once", n)
	}
	if !strings.HasSuffix(out, "ETCD_BIN\n") {
		t.Errorf("output does not end with the summary:\n%s", out)
	}
}

func TestVetFailure(t *testing.T) {
	out, ok := summarise(t, "vetfail.jsonl", rec, "")
	if ok {
		t.Error("report() = true for a package that failed go vet")
	}
	for _, want := range []string{
		"pass/p_test.go:17:1: ExampleHello refers to unknown identifier: Hello",
		"FAIL rec  1 package, 0 tests run (0 passed, 0 failed), 0 skipped, build failed: example.com/rec/pass\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPassingStream(t *testing.T) {
	out, ok := summarise(t, "pass.jsonl", rec, "")
	if !ok {
		t.Errorf("report() = false for a passing stream:\n%s", out)
	}
	want := "ok  \texample.com/rec/pass\t"
	if !strings.HasPrefix(out, want) {
		t.Errorf("output does not start with %q:\n%s", want, out)
	}
	if want := "ok   rec  1 package, 5 tests run (5 passed, 0 failed), 0 skipped\n"; !strings.HasSuffix(out, want) {
		t.Errorf("output does not end with %q:\n%s", want, out)
	}
}

// TestModuleWithNothingTested: a module in which go test ran nothing (it
// said why on stderr: no packages, a broken go.mod) fails the summary.
func TestModuleWithNothingTested(t *testing.T) {
	mods := []module{{dir: "contrib/empty", path: "example.com/other"}, {dir: "rec", path: "example.com/rec"}}
	out, ok := summarise(t, "pass.jsonl", mods, "no packages to test\n")
	if ok {
		t.Errorf("report() = true with a module where nothing ran:\n%s", out)
	}
	for _, want := range []string{
		"no packages to test\n",
		"FAIL contrib/empty  0 packages, 0 tests run (0 passed, 0 failed), 0 skipped: nothing was tested\n",
		"ok   rec            1 package, 5 tests run (5 passed, 0 failed), 0 skipped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestLongestModulePrefix: a package of a nested module counts for the
// nested module, not for the one whose path is a shorter prefix.
func TestLongestModulePrefix(t *testing.T) {
	s := newSummary([]module{{".", "example.com/r"}, {"contrib/x", "example.com/r/contrib/x"}}, &bytes.Buffer{})
	if s.moduleOf("example.com/r/contrib/x/sub") != s.by["contrib/x"] {
		t.Error("nested module's package counted for the outer module")
	}
	if s.moduleOf("example.com/r/contrib") != s.by["."] {
		t.Error("outer module's package not counted for it")
	}
	if s.moduleOf("example.com/rx") != &s.other {
		t.Error("a package of no module given counted for one")
	}
}

func TestSkipMessage(t *testing.T) {
	got := skipMessage([]line{
		{"T", "=== RUN   T\n"},
		{"T", "    etcd_test.go:42: etcd binary not found\n"},
		{"T", "--- SKIP: T (0.00s)\n"},
	})
	if got != "etcd binary not found" {
		t.Errorf("skipMessage = %q", got)
	}
	if got := skipMessage([]line{{"T", "--- SKIP: T (0.00s)\n"}}); got != "(no message)" {
		t.Errorf("skipMessage without a message = %q", got)
	}
}

// TestTestBinaryDied: died.jsonl was recorded on example.com/died, whose
// packages fail with no test failing: one times out (-timeout 2s) in
// TestSlow, one's TestMain exits with status 3 after its test passed, one
// panics in init. Each module line says FAIL and names the package and,
// for the timeout, the test that never finished; the timeout's panic is
// printed before the package's FAIL line, as go test prints it.
func TestTestBinaryDied(t *testing.T) {
	died := []module{{dir: "died", path: "example.com/died"}}
	out, ok := summarise(t, "died.jsonl", died, "")
	if ok {
		t.Error("report() = true for a stream of failed packages")
	}
	for _, want := range []string{
		"FAIL died  3 packages, 3 tests run (2 passed, 1 failed), 0 skipped, failed: example.com/died/exit (the test binary failed after its tests ended), example.com/died/initpanic (before any test ended), example.com/died/timeout (did not finish: TestSlow)\n",
		"panic: init boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	panicAt, failAt := strings.Index(out, "panic: test timed out after 2s"), strings.Index(out, "FAIL\texample.com/died/timeout\t")
	if panicAt < 0 || failAt < 0 || panicAt > failAt {
		t.Errorf("the timeout's panic (at %d) is not printed before the package's FAIL line (at %d):\n%s", panicAt, failAt, out)
	}
}
