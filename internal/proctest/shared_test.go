package proctest

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// runner is a fake *testing.M: Run records that it ran and what -test.skip
// was at that moment.
type runner struct {
	code    int
	ran     bool
	skipped string
	during  func()
}

func (r *runner) Run() int {
	r.ran = true
	r.skipped = flag.Lookup("test.skip").Value.String()
	if r.during != nil {
		r.during()
	}
	return r.code
}

// withFlags sets -test.run and -test.skip for one test, and puts them back.
func withFlags(t *testing.T, run, skip string) {
	t.Helper()
	for name, v := range map[string]string{"test.run": run, "test.skip": skip} {
		old := flag.Lookup(name).Value.String()
		if err := flag.Set(name, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = flag.Set(name, old) })
	}
}

// recordTB records Skip and Fatal of Check.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Skipf(f string, a ...any)  { r.skipped = strings.TrimSpace(fmt.Sprintf(f, a...)) }
func (r *recordTB) Fatalf(f string, a ...any) { r.failed = strings.TrimSpace(fmt.Sprintf(f, a...)) }

// TestSharedSkipsExamplesWhenStartSkips: without the binary locally, the
// Examples are left out through -test.skip, the tests still run, and Check
// skips with the harness's message.
func TestSharedSkipsExamplesWhenStartSkips(t *testing.T) {
	withFlags(t, "", "")
	m := &runner{}
	s := NewShared([]string{"Example", "ExampleStore"}, func(tb testing.TB) { tb.Skip("named binary not found") })
	if code := s.With(m).Run(); code != 0 || !m.ran {
		t.Fatalf("Run = %d, ran %v; want 0, true", code, m.ran)
	}
	if m.skipped != "^(Example|ExampleStore)$" {
		t.Errorf("-test.skip during the tests = %q", m.skipped)
	}
	r := &recordTB{TB: t}
	s.Check(r)
	if !strings.Contains(r.skipped, "named binary not found") || r.failed != "" {
		t.Errorf("Check: skipped %q, failed %q", r.skipped, r.failed)
	}
}

// TestSharedKeepsUserSkip: a -test.skip of the user's is kept.
func TestSharedKeepsUserSkip(t *testing.T) {
	withFlags(t, "", "TestSlow")
	m := &runner{}
	NewShared([]string{"Example"}, func(tb testing.TB) { tb.Skip("no binary") }).With(m).Run()
	if m.skipped != "TestSlow|^(Example)$" {
		t.Errorf("-test.skip during the tests = %q", m.skipped)
	}
}

// TestSharedFailsWhenStartFails: with CI=true a missing binary fails the
// harness; the run then fails even though the tests pass, and Check fails.
func TestSharedFailsWhenStartFails(t *testing.T) {
	withFlags(t, "", "")
	m := &runner{}
	s := NewShared([]string{"Example"}, func(tb testing.TB) {
		tb.Fatal("named binary not found (CI=true: integration tests must not be skipped)")
		panic("Fatal returned")
	})
	if code := s.With(m).Run(); code != 1 || !m.ran {
		t.Fatalf("Run = %d, ran %v; want 1, true", code, m.ran)
	}
	if m.skipped != "^(Example)$" {
		t.Errorf("-test.skip during the tests = %q; the Examples must not run without their server", m.skipped)
	}
	r := &recordTB{TB: t}
	s.Check(r)
	if !strings.Contains(r.failed, "CI=true") || r.skipped != "" {
		t.Errorf("Check: skipped %q, failed %q", r.skipped, r.failed)
	}
}

// TestSharedRunsServerAroundTests: a started server's cleanups run after
// the tests, in reverse order, and its temporary directory is removed;
// the Examples are not skipped and Check does nothing.
func TestSharedRunsServerAroundTests(t *testing.T) {
	withFlags(t, "", "")
	var order []string
	var dir string
	m := &runner{code: 3}
	m.during = func() {
		order = append(order, "tests")
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("temporary directory gone during the tests: %v", err)
		}
	}
	s := NewShared([]string{"Example"}, func(tb testing.TB) {
		dir = tb.TempDir()
		tb.Cleanup(func() { order = append(order, "first") })
		tb.Cleanup(func() { order = append(order, "second") })
	})
	if code := s.With(m).Run(); code != 3 {
		t.Errorf("Run = %d, want the tests' 3", code)
	}
	if got := strings.Join(order, ","); got != "tests,second,first" {
		t.Errorf("order %q", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s left behind: %v", dir, err)
	}
	if m.skipped != "" {
		t.Errorf("-test.skip = %q with the server running", m.skipped)
	}
	r := &recordTB{TB: t}
	s.Check(r)
	if r.skipped != "" || r.failed != "" {
		t.Errorf("Check: skipped %q, failed %q", r.skipped, r.failed)
	}
}

// TestSharedStartsNothingUnselected: with -run selecting none of the
// Examples, or -list, no server is started.
func TestSharedStartsNothingUnselected(t *testing.T) {
	for _, run := range []string{"TestOther", "TestOther/Example"} {
		withFlags(t, run, "")
		started := false
		m := &runner{}
		NewShared([]string{"Example"}, func(testing.TB) { started = true }).With(m).Run()
		if started || !m.ran {
			t.Errorf("-run %q: started %v, ran %v", run, started, m.ran)
		}
	}
	withFlags(t, "Example", "^Example$")
	started := false
	NewShared([]string{"Example"}, func(testing.TB) { started = true }).With(&runner{}).Run()
	if started {
		t.Error("started a server for Examples that -skip leaves out")
	}
}
