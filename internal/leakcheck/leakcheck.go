// Package leakcheck fails a test binary that leaves goroutines behind. Each
// package of stormguard calls it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
//
// It works with fuzzing (go test -fuzz): goroutines that belong to the Go
// runtime, to os/signal or to the fuzzing engine are not leaks, and the
// check is skipped in the fuzz worker processes that the fuzzing coordinator
// starts (see Main).
package leakcheck

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitTimeout is how long Main waits for goroutines to finish after the
// tests before it reports them.
var waitTimeout = 5 * time.Second

// testHookAfterRun, if set, is called by Main after m.Run with whether the
// process is a fuzz worker. Only the tests of this package set it.
var testHookAfterRun func(fuzzWorker bool)

// runner is the part of *testing.M that Main uses.
type runner interface{ Run() int }

var _ runner = (*testing.M)(nil)

// Main runs the tests, then waits up to five seconds for every goroutine
// started during the tests to end; if some do not, it prints them and exits
// with status 1. Goroutines that already ran before the tests, and those of
// the runtime, of os/signal and of the fuzzing engine, are not leaks.
//
// In a fuzz worker process (the copies of the test binary that
// `go test -fuzz` runs with -test.fuzzworker) Main does not check anything:
// a worker only executes the fuzz target under the fuzzing engine, its
// output is discarded, its exit status after the coordinator stops it is
// ignored, and the coordinator sends it SIGINT if it does not exit within a
// second of being told to stop, so waiting there would only slow down every
// fuzzing run. Leaks are still checked in the coordinator process, which
// runs the ordinary tests and the seed corpus.
//
// m is usually the *testing.M of TestMain; it may be anything that runs the
// tests, such as proctest.Shared, which starts a server around them.
func Main(m interface{ Run() int }) {
	os.Exit(run(m, os.Stderr, fuzzWorker))
}

// run is Main without os.Exit: it returns the exit status.
func run(m runner, stderr io.Writer, isWorker func() bool) int {
	before := map[int]bool{}
	for _, g := range goroutines() {
		before[g.id] = true
	}
	code := m.Run()
	// The testing flags are parsed by m.Run, so only now can we tell
	// whether this is a fuzz worker.
	worker := isWorker()
	if testHookAfterRun != nil {
		testHookAfterRun(worker)
	}
	if code != 0 || worker {
		return code
	}
	if leaked := wait(before, waitTimeout); len(leaked) > 0 {
		fmt.Fprintf(stderr, "leakcheck: goroutines left behind after the tests:\n\n")
		for _, g := range leaked {
			fmt.Fprintf(stderr, "%s\n\n", g.text)
		}
		return 1
	}
	return 0
}

// fuzzWorker reports whether this process is a fuzz worker: the fuzzing
// coordinator (internal/fuzz.CoordinateFuzzing) starts each worker with the
// test binary's arguments preceded by -test.fuzzworker.
func fuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	if f == nil {
		return false
	}
	w, _ := strconv.ParseBool(f.Value.String())
	return w
}

// wait polls until every goroutine not in before and not ignorable has
// ended, or timeout has passed; it returns those that remain.
func wait(before map[int]bool, timeout time.Duration) []goroutine {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		leaked := leaks(goroutines(), before)
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

// leaks returns the goroutines of gs that are neither in before nor
// ignorable.
func leaks(gs []goroutine, before map[int]bool) []goroutine {
	var out []goroutine
	for _, g := range gs {
		if !before[g.id] && !ignorable(g) {
			out = append(out, g)
		}
	}
	return out
}

// ignorable reports whether g is not a leak of the code under test:
//   - the goroutine of os/signal that delivers signals, started by the first
//     signal.Notify (by anyone: the fuzzing coordinator and workers use
//     signal.NotifyContext) and never stopped;
//   - goroutines running only runtime code (with GOTRACEBACK=system or
//     higher the dump includes the runtime's own goroutines; cgo's extra
//     goroutines show only runtime.goexit);
//   - goroutines of the fuzzing engine (internal/fuzz and
//     testing/internal/testdeps, which user code cannot import);
//   - the testing package's goroutines that wait for tests and fuzz targets
//     (gone after m.Run returns; listed as goleak does).
func ignorable(g goroutine) bool {
	if len(g.funcs) == 0 {
		return false
	}
	switch g.funcs[0] {
	case "os/signal.signal_recv", "os/signal.loop":
		return true
	case "testing.RunTests", "testing.(*T).Run", "testing.(*T).Parallel",
		"testing.runFuzzTests", "testing.runFuzzing":
		if strings.HasPrefix(g.state, "chan receive") {
			return true
		}
	}
	runtimeOnly := true
	for _, f := range g.funcs {
		if strings.HasPrefix(f, "internal/fuzz.") || strings.HasPrefix(f, "testing/internal/testdeps.") {
			return true
		}
		if !strings.HasPrefix(f, "runtime.") {
			runtimeOnly = false
		}
	}
	return runtimeOnly
}

// goroutine is one goroutine of a runtime.Stack dump.
type goroutine struct {
	id    int
	state string   // "chan receive", "select", "syscall, 2 minutes", ...
	funcs []string // functions from the top of the stack, then the creator
	text  string   // the goroutine's part of the dump
}

// goroutines returns every goroutine of the process.
func goroutines() []goroutine {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return parse(string(buf[:n]))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// parse parses a dump in the format of runtime.Stack(buf, true).
func parse(dump string) []goroutine {
	var out []goroutine
	for _, block := range strings.Split(strings.TrimSpace(dump), "\n\n") {
		lines := strings.Split(block, "\n")
		// goroutine 18 [chan receive, 2 minutes]:
		// goroutine 18 gp=0xc000102a80 m=nil [select]:
		head, ok := strings.CutPrefix(lines[0], "goroutine ")
		if !ok {
			continue
		}
		idText, _, _ := strings.Cut(head, " ")
		id, err := strconv.Atoi(idText)
		if err != nil {
			continue
		}
		g := goroutine{id: id, text: block}
		if i, j := strings.Index(head, "["), strings.LastIndex(head, "]"); i >= 0 && j > i {
			g.state = head[i+1 : j]
		}
		for _, l := range lines[1:] {
			if l == "" || l[0] == '\t' || l[0] == ' ' || strings.HasPrefix(l, "...") {
				continue // file:line, or "...additional frames elided..."
			}
			if c, ok := strings.CutPrefix(l, "created by "); ok {
				c, _, _ = strings.Cut(c, " in goroutine ")
				g.funcs = append(g.funcs, c)
				continue
			}
			if i := strings.LastIndex(l, "("); i > 0 {
				l = l[:i]
			}
			g.funcs = append(g.funcs, l)
		}
		out = append(out, g)
	}
	return out
}
