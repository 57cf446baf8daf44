package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/internal/proctest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var full = flag.Bool("dnsfleet.full", false, "run the fleet at full length (the defaults of go run ./dnsfleet) besides the short runs")

// mainEnv makes the test binary run cli with the arguments it holds (JSON),
// so that a test can run the fleet as a process of its own and signal
// it; childEnv makes it a member of the fleet, as the command does.
const mainEnv = "DNSFLEET_TEST_MAIN"

func TestMain(m *testing.M) {
	if raw, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(raw))
	}
	if raw, ok := os.LookupEnv(mainEnv); ok {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(cli(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// requireServers skips the test without etcd or named, or fails it if
// CI is "true", where integration tests must not be skipped.
func requireServers(t testing.TB) {
	t.Helper()
	for _, b := range []struct{ env, name, fallback, pkg string }{
		{"ETCD_BIN", "etcd", etcdFallback, "etcd-server"},
		{"NAMED_BIN", "named", namedFallback, "bind9"},
	} {
		if _, err := binary(b.env, b.name, b.fallback, b.pkg); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%v (CI=true: integration tests must not be skipped)", err)
			}
			t.Skip(err)
		}
	}
}

// fleetRun is the fleet run as a process of its own.
type fleetRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.String()
}

// startFleet runs the fleet with args in a process of its own, with env
// added to its environment.
func startFleet(t *testing.T, env []string, args ...string) *fleetRun {
	t.Helper()
	raw, err := json.Marshal(args)
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	r := &fleetRun{cmd: exec.Command(self), stderr: &lockedBuffer{mu: make(chan struct{}, 1)}, done: make(chan struct{})}
	// The run's directory (logs, etcd's data, BIND's zone) goes in the
	// test's, even when the run cannot remove it (killed, or keeping its
	// logs after an error).
	r.cmd.Env = append(append(os.Environ(), mainEnv+"="+string(raw), "TMPDIR="+t.TempDir()), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, r.stderr
	require.NoError(t, r.cmd.Start())
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			// Only the run this test started; its members and servers
			// die with it (Pdeathsig).
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for the run to end and returns its exit status.
func (r *fleetRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the fleet did not end in 5 minutes; its stderr:\n%s", r.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, r.err)
	return 0
}

var startedRE = regexp.MustCompile(`(?m)^dnsfleet: started (\S+) \(pid (\d+)\)$`)

// pids returns the processes the run reported it started, by PID.
func (r *fleetRun) pids() map[int]string {
	out := map[int]string{}
	for _, m := range startedRE.FindAllStringSubmatch(r.stderr.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		out[pid] = m[1]
	}
	return out
}

// alive reports whether pid is a live (not zombie) process whose command
// line is still the one started as name: a PID the kernel has given to
// another program since is not ours.
func alive(pid int, name string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	self, _ := os.Executable()
	want := self // the fleet's members are this binary
	switch name {
	case "etcd", "named":
		want = name
	}
	return strings.Contains(string(cmdline), want)
}

// requireNoOrphans checks that no process the run reported is left, within
// ten seconds (the kernel's Pdeathsig kills are asynchronous).
func requireNoOrphans(t *testing.T, pids map[int]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pid, name := range pids {
		for alive(pid, name) {
			if time.Now().After(deadline) {
				t.Errorf("%s (pid %d) outlived the run", name, pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// runShort runs one mode at the shortest length and returns its result.
func runShort(t *testing.T, mode string, args ...string) result {
	t.Helper()
	requireServers(t)
	r := startFleet(t, nil, append([]string{"-enactors", mode, "-json"}, args...)...)
	code := r.wait(t)
	pids := r.pids()
	require.Equal(t, 0, code, "exit status; stderr:\n%s", r.stderr.String())
	var names []string
	for _, n := range pids {
		names = append(names, n)
	}
	for _, want := range []string{"etcd", "named", "planner", "A", "B", "C"} {
		assert.Contains(t, names, want, "the run reports the PID of every process it starts")
	}
	requireNoOrphans(t, pids)
	var out struct{ Runs []result }
	require.NoError(t, json.Unmarshal(r.stdout.Bytes(), &out), "stdout:\n%s", r.stdout.String())
	require.Len(t, out.Runs, 1)
	res := out.Runs[0]
	var keys struct{ Runs []map[string]any }
	require.NoError(t, json.Unmarshal(r.stdout.Bytes(), &keys))
	for _, k := range []string{"queries", "empty_answers", "generation_regressions", "stale_writes_refused", "repairs", "max_seconds_behind_planner"} {
		assert.Contains(t, keys.Runs[0], k, "-json has the key %s", k)
	}
	for k := range keys.Runs[0] {
		assert.Regexp(t, `^[a-z][a-z0-9_]*$`, k, "snake_case key")
	}
	for _, f := range faultsOf(mode) {
		assert.Contains(t, res.Faults, f, "fault %s injected", f)
	}
	assert.Positive(t, res.Queries)
	t.Logf("%s", res.summary())
	return res
}

// shortArgs are the flags of the short runs: the shortest run, and a
// retention of 8 generations (1.6s at the default -plan-every), so that
// only the injected stall, not a loaded machine's scheduling, makes an
// enactor's write that late.
var shortArgs = []string{"-seconds", fmt.Sprint(minSeconds), "-retention", "8"}

// TestFleet2025: with the 2025 enactors, on the real servers, the stalled
// enactor's write rolls the regional endpoint back, the clean-up deletes
// the plan it is on, and BIND answers it empty from then until the end.
func TestFleet2025(t *testing.T) {
	res := runShort(t, "2025", shortArgs...)
	check2025(t, res)
}

// TestFleet2025FastPlans: with a plan every 50ms, A's next pass (the
// newest plan, right after its stalled one) used to rewrite the regional
// endpoint before B's clean-up deleted the plan A had put there: no
// empty answer at all. A is held between passes until B's clean-up is
// done, so the 2025 failure shows at every pace. (A retention of 20
// generations is 1s of plans, so only the stall makes a write that late.)
func TestFleet2025FastPlans(t *testing.T) {
	res := runShort(t, "2025", "-seconds", fmt.Sprint(minSeconds), "-plan-every", "50ms", "-retention", "20")
	check2025(t, res)
}

func check2025(t *testing.T, res result) {
	t.Helper()
	text := printed(res)
	for _, want := range []string{
		fmt.Sprintf("writes plan %d over plan %d on regional: the endpoint goes BACK", res.StalledAt, res.ResumedAt),
		fmt.Sprintf("clean-up deletes plan %d, live on regional: its records go with it", res.StalledAt),
		"regional answers EMPTY",
		fmt.Sprintf("first answered empty at %.2fs and was still empty when the run ended", res.FirstEmptyAt),
		fmt.Sprintf("%s empty (", textfmt.Group(int64(res.EmptyAnswers))),
	} {
		assert.Contains(t, text, want)
	}
	assert.Positive(t, res.EmptyAnswers, "empty answers")
	assert.True(t, res.EmptyAtEnd, "still empty at the end")
	assert.Positive(t, res.GenerationRegressions, "the stalled write rolls the endpoint back")
	assert.Positive(t, res.RecordsRemovedByCleanup, "the clean-up takes the live plan's records")
	assert.Positive(t, res.LivePlanMissingStops, "enactors stop on the missing live plan")
	require.GreaterOrEqual(t, res.FirstEmptyAt, 0.0)
	for _, row := range res.PerSecond {
		if float64(row.Second) > res.FirstEmptyAt+1 && row.Probed {
			assert.Zero(t, row.Probe.Addresses, "second %d: addresses after the endpoint went empty at %.2fs", row.Second, res.FirstEmptyAt)
		}
	}
}

// printed is the timeline and summary of res, as the command prints them,
// and the summary again unwrapped.
func printed(res result) string {
	var b bytes.Buffer
	res.print(&b)
	return b.String() + res.summary()
}

// TestFleetDnsplan: with dnsplan.Enactor, every fault injected, the
// prober never sees an empty answer nor the generation go back, and the
// stalled enactor's write is refused by BIND.
func TestFleetDnsplan(t *testing.T) {
	res := runShort(t, "dnsplan", shortArgs...)
	checkDnsplan(t, res)
}

func checkDnsplan(t *testing.T, res result) {
	t.Helper()
	text := printed(res)
	for _, want := range []string{
		fmt.Sprintf("write of plan %d to regional REFUSED by BIND: the endpoint is at plan", res.StalledAt),
		"The regional endpoint never answered empty.",
		"went back 0 times",
		fmt.Sprintf("Faults injected (%d of %d)", len(faultsOf("dnsplan")), len(faultsOf("dnsplan"))),
		fmt.Sprintf("operator adds %s to regional at plan %d", strayAddr, res.DamagedAt),
		fmt.Sprintf("repairs regional with plan %d", res.DamagedAt),
		fmt.Sprintf("repairs: %d;", res.Repairs),
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "EMPTY")
	assert.NotContains(t, text, "BACK")
	assert.Zero(t, res.EmptyAnswers, "empty answers")
	assert.Zero(t, res.GenerationRegressions, "generation regressions")
	assert.False(t, res.EmptyAtEnd)
	assert.Positive(t, res.StaleWritesRefused, "the stalled write is refused")
	assert.Zero(t, res.RecordsRemovedByCleanup)
	assert.Zero(t, res.LivePlanMissingStops)
	assert.Positive(t, res.Repairs, "the operator's damage is repaired")
	assert.Positive(t, res.DamagedAt, "the operator damages the regional endpoint")
	assert.Greater(t, res.ServedGenerationAtEnd, res.ResumedAt, "the endpoint follows the planner after every fault")
}

// TestFleetFull runs the command's defaults, both modes, with
// -dnsfleet.full.
func TestFleetFull(t *testing.T) {
	if !*full {
		t.Skip("the full-length run needs -dnsfleet.full")
	}
	requireServers(t)
	r := startFleet(t, nil, "-json")
	require.Equal(t, 0, r.wait(t), "stderr:\n%s", r.stderr.String())
	requireNoOrphans(t, r.pids())
	var out struct{ Runs []result }
	require.NoError(t, json.Unmarshal(r.stdout.Bytes(), &out))
	require.Len(t, out.Runs, 2)
	check2025(t, out.Runs[0])
	checkDnsplan(t, out.Runs[1])
}

// TestNoOrphansOnError: a run that fails after starting etcd (named
// cannot start) stops etcd before it exits.
func TestNoOrphansOnError(t *testing.T) {
	requireServers(t)
	r := startFleet(t, []string{"NAMED_BIN=/bin/false"}, "-enactors", "dnsplan")
	code := r.wait(t)
	assert.Equal(t, 1, code, "stderr:\n%s", r.stderr.String())
	assert.Contains(t, r.stderr.String(), "named (pid")
	assert.Contains(t, r.stderr.String(), "exited before it was ready")
	pids := r.pids()
	assert.Len(t, pids, 2, "etcd and named were started: %v", pids)
	requireNoOrphans(t, pids)
}

// TestNoOrphansWhenAMemberDies: a member that dies on its own (here
// SIGKILLed from outside, by the PID the run reported) fails the run at
// once, with what happened, and the run stops everything else.
func TestNoOrphansWhenAMemberDies(t *testing.T) {
	requireServers(t)
	r := startFleet(t, nil, "-enactors", "dnsplan")
	waitStarted(t, r)
	var b int
	for pid, name := range r.pids() {
		if name == "B" {
			b = pid
		}
	}
	require.True(t, alive(b, "B"))
	require.NoError(t, syscall.Kill(b, syscall.SIGKILL))
	assert.Equal(t, 1, r.wait(t), "stderr:\n%s", r.stderr.String())
	assert.Contains(t, r.stderr.String(), fmt.Sprintf("B (pid %d) exited, not stopped by the run (signal: killed)", b))
	requireNoOrphans(t, r.pids())
}

// waitStarted waits until the run reports every member started.
func waitStarted(t *testing.T, r *fleetRun) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for len(r.pids()) < 6 {
		select {
		case <-r.done:
			t.Fatalf("the run ended early; stderr:\n%s", r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not start its members; stderr:\n%s", r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoOrphansOnSIGINT: Ctrl-C, or a SIGTERM (kill, systemd, a CI
// runner's timeout), stops every process the run started.
func TestNoOrphansOnSIGINT(t *testing.T) {
	requireServers(t)
	for _, c := range []struct {
		sig  syscall.Signal
		mode string
	}{{syscall.SIGINT, "2025"}, {syscall.SIGTERM, "dnsplan"}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			r := startFleet(t, nil, "-enactors", c.mode)
			waitStarted(t, r)
			require.NoError(t, r.cmd.Process.Signal(c.sig))
			assert.Equal(t, 130, r.wait(t), "stderr:\n%s", r.stderr.String())
			assert.Contains(t, r.stderr.String(), "interrupted")
			requireNoOrphans(t, r.pids())
		})
	}
}

// TestNoOrphansOnSIGKILL: even a run killed with SIGKILL, which cannot
// stop anything, leaves nothing behind: the kernel kills what it started.
func TestNoOrphansOnSIGKILL(t *testing.T) {
	requireServers(t)
	r := startFleet(t, nil, "-enactors", "dnsplan")
	waitStarted(t, r)
	require.NoError(t, r.cmd.Process.Kill())
	r.wait(t)
	requireNoOrphans(t, r.pids())
}

// TestMissingServer: without etcd the run fails at once, naming the
// Debian package.
func TestMissingServer(t *testing.T) {
	for _, c := range []struct{ env, name, pkg string }{{"ETCD_BIN", "etcd", "etcd-server"}, {"NAMED_BIN", "named", "bind9"}} {
		_, err := binary(c.env+"_UNSET_FOR_TEST", "no-such-"+c.name, "/nonexistent/"+c.name, c.pkg)
		require.ErrorIs(t, err, errMissingServer)
		assert.Contains(t, err.Error(), "install the Debian package "+c.pkg)
	}
	t.Setenv("ETCD_BIN", "")
	t.Setenv("PATH", t.TempDir())
	saved := etcdFallback
	etcdFallback = "/nonexistent/etcd"
	t.Cleanup(func() { etcdFallback = saved })
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 1, cli([]string{"-enactors", "2025"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "etcd-server")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "a run that started nothing leaves no directory")
}

// TestRequireServers: without etcd, the integration tests skip locally
// and fail under CI=true, naming the Debian package either way.
func TestRequireServers(t *testing.T) {
	saved := etcdFallback
	etcdFallback = "/nonexistent/etcd"
	t.Cleanup(func() { etcdFallback = saved })
	skipped, failed := proctest.WithoutBinary(t, "ETCD_BIN", "", requireServers)
	assert.Contains(t, skipped, "install the Debian package etcd-server")
	assert.Empty(t, failed)
	skipped, failed = proctest.WithoutBinary(t, "ETCD_BIN", "true", requireServers)
	assert.Contains(t, failed, "install the Debian package etcd-server")
	assert.Contains(t, failed, "CI=true: integration tests must not be skipped")
	assert.Empty(t, skipped)
}

// TestFlags: -h states every flag's range, and a value outside it is
// refused with a message naming the flag and the range.
func TestFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, cli([]string{"-h"}, &stdout, &stderr))
	help := stderr.String()
	sc := bufio.NewScanner(strings.NewReader(help))
	var flags int
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "  -") {
			flags++
			name := strings.Fields(l)[0]
			sc.Scan()
			usage := sc.Text()
			if name == "-json" {
				continue
			}
			assert.Regexp(t, `\[.+, .+\]|2025, dnsplan or both|2025 .*dnsplan .*both`, usage, "%s states its range", name)
		}
	}
	assert.Equal(t, 7, flags, "help:\n%s", help)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-enactors", "2026"}, `-enactors "2026" is not 2025, dnsplan or both`},
		{[]string{"-seconds", "14"}, "-seconds 14 is outside [15, 300]"},
		{[]string{"-seconds", "301"}, "-seconds 301 is outside [15, 300]"},
		{[]string{"-qps", "9"}, "-qps 9 is outside [10, 1000]"},
		{[]string{"-qps", "1001"}, "-qps 1001 is outside [10, 1000]"},
		{[]string{"-retention", "0"}, "-retention 0 is outside [1, 20]"},
		{[]string{"-retention", "21"}, "-retention 21 is outside [1, 20]"},
		{[]string{"-plan-every", "49ms"}, "-plan-every 49ms is outside [50ms, 2s]"},
		{[]string{"-plan-every", "3s"}, "-plan-every 3s is outside [50ms, 2s]"},
		{[]string{"-down", "100ms"}, "-down 100ms is outside [500ms, 30s]"},
		{[]string{"-down", "1m"}, "-down 1m0s is outside [500ms, 30s]"},
		{[]string{"-seconds", "10", "-qps", "0"}, "-qps 0 is outside"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		stdout.Reset()
		stderr.Reset()
		assert.Equal(t, 2, cli(c.args, &stdout, &stderr), "%v", c.args)
		assert.Contains(t, stderr.String(), c.want, "%v", c.args)
		assert.Empty(t, stdout.String())
	}
	// Every problem at once.
	stderr.Reset()
	cli([]string{"-seconds", "10", "-qps", "0"}, io.Discard, &stderr)
	assert.Contains(t, stderr.String(), "-seconds 10 is outside")
}
