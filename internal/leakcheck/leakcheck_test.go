package leakcheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests below that run this test binary again set helperEnv to choose
// what the Helper tests and FuzzHelper do in that child process, and
// traceEnv to a file where the child (and its fuzz workers) record what
// Main saw.
const (
	helperEnv = "LEAKCHECK_TEST_HELPER"
	traceEnv  = "LEAKCHECK_TEST_TRACE"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		waitTimeout = 300 * time.Millisecond
		if path := os.Getenv(traceEnv); path != "" {
			testHookAfterRun = func(worker bool) {
				f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err == nil {
					fmt.Fprintf(f, "worker=%v\n", worker)
					f.Close()
				}
			}
		}
	}
	Main(m)
}

// leakedGoroutine blocks until block is closed; the tests look for its name
// in leak reports.
func leakedGoroutine(block chan struct{}) { <-block }

// fakeM is a runner whose Run calls run and returns code.
type fakeM struct {
	run  func()
	code int
}

func (f fakeM) Run() int {
	if f.run != nil {
		f.run()
	}
	return f.code
}

func shortWait(t *testing.T) {
	old := waitTimeout
	waitTimeout = 200 * time.Millisecond
	t.Cleanup(func() { waitTimeout = old })
}

func notWorker() bool { return false }

func TestRunReportsLeak(t *testing.T) {
	shortWait(t)
	block := make(chan struct{})
	defer close(block)
	var out bytes.Buffer
	code := run(fakeM{run: func() { go leakedGoroutine(block) }}, &out, notWorker)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(out.String(), "leakcheck: goroutines left behind") ||
		!strings.Contains(out.String(), "leakcheck.leakedGoroutine") {
		t.Errorf("report does not name the leaked goroutine:\n%s", out.String())
	}
}

func TestRunWaitsForGoroutinesToEnd(t *testing.T) {
	shortWait(t)
	var out bytes.Buffer
	code := run(fakeM{run: func() {
		go time.Sleep(50 * time.Millisecond)
	}}, &out, notWorker)
	if code != 0 || out.Len() != 0 {
		t.Errorf("exit code %d, output %q; want 0 and none", code, out.String())
	}
}

func TestRunIgnoresSignalLoop(t *testing.T) {
	shortWait(t)
	var out bytes.Buffer
	code := run(fakeM{run: func() {
		// The first signal.Notify of the process starts os/signal's
		// goroutine, which runs for ever.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1)
		signal.Stop(c)
	}}, &out, notWorker)
	if code != 0 || out.Len() != 0 {
		t.Errorf("exit code %d, output %q; want 0 and none", code, out.String())
	}
}

func TestRunSkipsFuzzWorker(t *testing.T) {
	shortWait(t)
	block := make(chan struct{})
	defer close(block)
	var out bytes.Buffer
	start := time.Now()
	code := run(fakeM{run: func() { go leakedGoroutine(block) }}, &out, func() bool { return true })
	if code != 0 || out.Len() != 0 {
		t.Errorf("exit code %d, output %q; want 0 and none", code, out.String())
	}
	if d := time.Since(start); d >= waitTimeout {
		t.Errorf("a fuzz worker waited %v", d)
	}
}

func TestRunKeepsFailure(t *testing.T) {
	shortWait(t)
	block := make(chan struct{})
	defer close(block)
	var out bytes.Buffer
	code := run(fakeM{run: func() { go leakedGoroutine(block) }, code: 3}, &out, notWorker)
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

func TestFuzzWorkerFlag(t *testing.T) {
	if fuzzWorker() {
		t.Error("fuzzWorker() = true in a process run without -test.fuzzworker")
	}
}

// dump is a runtime.Stack dump of a fuzzing coordinator after m.Run, plus
// goroutines shown with GOTRACEBACK=system and a leaked one.
const dump = `goroutine 1 [running]:
github.com/stormguard/stormguard/internal/leakcheck.goroutines()
	/work/main/internal/leakcheck/leakcheck.go:160 +0x45
main.main()
	_testmain.go:51 +0xa5

goroutine 5 [syscall]:
os/signal.signal_recv()
	/usr/local/go/src/runtime/sigqueue.go:152 +0x98
os/signal.loop()
	/usr/local/go/src/os/signal/signal_unix.go:23 +0x13
created by os/signal.Notify.func1.1 in goroutine 21
	/usr/local/go/src/os/signal/signal.go:152 +0x1f

goroutine 2 gp=0xc000006c40 m=nil [force gc (idle)]:
runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)
	/usr/local/go/src/runtime/proc.go:460 +0xce
runtime.forcegchelper()
	/usr/local/go/src/runtime/proc.go:375 +0xb3
created by runtime.init.7 in goroutine 1
	/usr/local/go/src/runtime/proc.go:363 +0x1a

goroutine 17 [syscall, 3 minutes]:
runtime.goexit({})
	/usr/local/go/src/runtime/asm_amd64.s:1700 +0x1

goroutine 30 [chan receive]:
internal/fuzz.(*worker).stop(0xc0001a4000)
	/usr/local/go/src/internal/fuzz/worker.go:442 +0x1a5
internal/fuzz.(*worker).coordinate(0xc0001a4000, {0x6a4c10, 0xc000120050})
	/usr/local/go/src/internal/fuzz/worker.go:113 +0x8b
internal/fuzz.CoordinateFuzzing.func3()
	/usr/local/go/src/internal/fuzz/fuzz.go:186 +0x3b
created by internal/fuzz.CoordinateFuzzing in goroutine 20
	/usr/local/go/src/internal/fuzz/fuzz.go:185 +0x9f0

goroutine 31 [select]:
os/signal.NotifyContext.func1()
	/usr/local/go/src/os/signal/signal.go:289 +0x6b
created by testing/internal/testdeps.TestDeps.CoordinateFuzzing in goroutine 20
	/usr/local/go/src/testing/internal/testdeps/deps.go:158 +0x97

goroutine 40 [chan receive, 2 minutes]:
github.com/stormguard/stormguard/internal/fuzz.Drain(0xc000182000)
	/work/main/internal/fuzz/drain.go:10 +0x25
github.com/stormguard/stormguard/dnsplan_test.TestLeak.func1()
	/work/main/dnsplan/plan_test.go:30 +0x1d
created by github.com/stormguard/stormguard/dnsplan_test.TestLeak in goroutine 39
	/work/main/dnsplan/plan_test.go:29 +0x7a

goroutine 41 [select (no cases)]:
github.com/stormguard/stormguard/dnsplan_test.TestSignal.func1(...)
	/work/main/dnsplan/plan_test.go:40
os/signal.Notify.func1(0x2)
	/usr/local/go/src/os/signal/signal.go:140 +0x1d
created by github.com/stormguard/stormguard/dnsplan_test.TestSignal in goroutine 39
	/work/main/dnsplan/plan_test.go:38 +0x7a
`

func TestParseAndFilter(t *testing.T) {
	gs := parse(dump)
	var ids []int
	for _, g := range gs {
		ids = append(ids, g.id)
	}
	if fmt.Sprint(ids) != "[1 5 2 17 30 31 40 41]" {
		t.Fatalf("parsed goroutines %v", ids)
	}
	if g := gs[1]; g.state != "syscall" || strings.Join(g.funcs, " ") != "os/signal.signal_recv os/signal.loop os/signal.Notify.func1.1" {
		t.Errorf("goroutine 5 parsed as state %q, funcs %q", g.state, g.funcs)
	}
	if g := gs[6]; g.state != "chan receive, 2 minutes" || g.funcs[0] != "github.com/stormguard/stormguard/internal/fuzz.Drain" {
		t.Errorf("goroutine 40 parsed as state %q, funcs %q", g.state, g.funcs)
	}

	var leaked []int
	for _, g := range leaks(gs, map[int]bool{1: true}) {
		leaked = append(leaked, g.id)
	}
	// 40: a package whose path merely contains internal/fuzz is not the
	// fuzzing engine; 41: user code reached from os/signal is not the
	// signal loop.
	if fmt.Sprint(leaked) != "[40 41]" {
		t.Errorf("leaks = %v, want [40 41]", leaked)
	}
}

// The tests below run this test binary again, as go test does.

func helper(t *testing.T, mode string, args ...string) (out string, trace string, err error) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the test binary again")
	}
	tracePath := t.TempDir() + "/trace"
	cmd := exec.Command(os.Args[0], append([]string{"-test.timeout=2m"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, traceEnv+"="+tracePath)
	b, err := cmd.CombinedOutput()
	tb, _ := os.ReadFile(tracePath)
	return string(b), string(tb), err
}

func exitCode(err error) int {
	if e, ok := err.(*exec.ExitError); ok {
		return e.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestBinaryWithLeakFails(t *testing.T) {
	out, _, err := helper(t, "leak", "-test.run=^TestHelperLeak$")
	if exitCode(err) != 1 || !strings.Contains(out, "leakcheck: goroutines left behind") ||
		!strings.Contains(out, "leakcheck.leakedGoroutine") {
		t.Errorf("leaking test binary: %v, want exit status 1 and a report naming the goroutine; output:\n%s", err, out)
	}
}

func TestBinaryWithoutLeakPasses(t *testing.T) {
	out, _, err := helper(t, "clean", "-test.run=^TestHelperClean$")
	if err != nil || strings.Contains(out, "leakcheck:") {
		t.Errorf("clean test binary: %v; output:\n%s", err, out)
	}
}

// fuzzArgs fuzz FuzzHelper for a number of executions rather than a
// duration, to avoid a race in the fuzzing coordinator of Go 1.26 and
// earlier that can fail a run at the end of a -fuzztime duration with
// "context deadline exceeded" (go.dev/issue/75804).
func fuzzArgs(t *testing.T) []string {
	return []string{"-test.fuzz=^FuzzHelper$", "-test.fuzztime=300x", "-test.parallel=2",
		"-test.fuzzcachedir=" + t.TempDir()}
}

func TestFuzzingPasses(t *testing.T) {
	out, trace, err := helper(t, "fuzz", append([]string{"-test.run=^$"}, fuzzArgs(t)...)...)
	if err != nil || strings.Contains(out, "leakcheck:") {
		t.Errorf("fuzzing: %v; output:\n%s", err, out)
	}
	// One coordinator, which checks, and the workers, which do not.
	if strings.Count(trace, "worker=false") != 1 || !strings.Contains(trace, "worker=true") {
		t.Errorf("Main saw workers as:\n%s", trace)
	}
}

func TestFuzzingStillCatchesLeak(t *testing.T) {
	out, _, err := helper(t, "fuzz", append([]string{"-test.run=^TestHelperLeak$"}, fuzzArgs(t)...)...)
	report, _, _ := strings.Cut(out, "leakcheck: goroutines left behind")
	report = strings.TrimPrefix(out, report)
	if exitCode(err) != 1 || !strings.Contains(report, "leakcheck.leakedGoroutine") {
		t.Errorf("fuzzing after a leaking test: %v, want exit status 1 and a report naming the goroutine; output:\n%s", err, out)
	}
	if strings.Contains(report, "os/signal") || strings.Contains(report, "internal/fuzz") {
		t.Errorf("report includes the fuzzing machinery:\n%s", report)
	}
}

// The Helper tests do something only in a child process.

func TestHelperLeak(t *testing.T) {
	if m := os.Getenv(helperEnv); m != "leak" && m != "fuzz" {
		t.Skip("helper for TestBinaryWithLeakFails")
	}
	go leakedGoroutine(make(chan struct{}))
}

func TestHelperClean(t *testing.T) {
	if os.Getenv(helperEnv) != "clean" {
		t.Skip("helper for TestBinaryWithoutLeakPasses")
	}
	go time.Sleep(100 * time.Millisecond) // ends during the wait
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	signal.Stop(c)
}

func FuzzHelper(f *testing.F) {
	if os.Getenv(helperEnv) != "fuzz" {
		f.Skip("helper for TestFuzzing*")
	}
	f.Add([]byte("seed"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if strings.Count(string(b), "x") > len(b) {
			t.Fatal("impossible")
		}
	})
}
