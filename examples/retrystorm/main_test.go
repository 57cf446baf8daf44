package main

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stormguard/stormguard/examples/retrystorm/sim"
)

// small is a quick scenario for tests of the command itself.
var small = []string{"-clients", "100", "-fault", "2s", "-after", "10s"}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(args, &out, &errs)
	return code, out.String(), errs.String()
}

// Without flags the command runs the demo's scenario; the claims its legend
// makes about that scenario are tested in package sim.
func TestDefaultsAreTheDemo(t *testing.T) {
	opts, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opts.cfg != sim.DefaultConfig() || opts.attempts != sim.DefaultMaxAttempts || opts.out != "" {
		t.Errorf("defaults %+v, want sim.DefaultConfig() with %d attempts and no -out", opts, sim.DefaultMaxAttempts)
	}
}

func TestPrintsTheTable(t *testing.T) {
	code, out, errs := runCmd(t, small...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"100 clients retry through a 2s outage (seed 1",
		"strategy ", "calls", "peak load", "calls in fault", "failed requests", "drain",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// One aligned row per strategy: name, four numbers, a drain time.
	row := regexp.MustCompile(`(?m)^(immediate|fixed 1s|exponential|full jitter|full jitter \+ budget) +[\d,]+ +[\d.]+× +[\d,]+ +[\d,]+ +(\d+\.\d\ds|> 10s)$`)
	rows := row.FindAllString(out, -1)
	if len(rows) != 5 {
		t.Fatalf("found %d table rows, want 5:\n%s", len(rows), out)
	}
	header := regexp.MustCompile(`(?m)^strategy +calls +peak load +calls in fault +failed requests +drain$`).FindString(out)
	for _, r := range append(rows[1:], header) {
		if utf8.RuneCountInString(r) != utf8.RuneCountInString(rows[0]) {
			t.Errorf("rows are not aligned:\n%s\n%s", rows[0], r)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 90 {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
}

func TestSameFlagsSameBytes(t *testing.T) {
	_, a, _ := runCmd(t, small...)
	_, b, _ := runCmd(t, small...)
	if a != b {
		t.Fatalf("two runs differ:\n%s\n---\n%s", a, b)
	}
	_, c, _ := runCmd(t, append([]string{"-seed", "2"}, small...)...)
	if a == c {
		t.Fatal("-seed 2 printed the same output as seed 1")
	}
}

func TestFlagsReachTheScenario(t *testing.T) {
	_, out, _ := runCmd(t, "-clients", "150", "-fault", "3s", "-after", "9s", "-attempts", "4", "-sessions=false", "-seed", "7")
	out = strings.Join(strings.Fields(out), " ") // undo the wrapping of paragraphs
	for _, want := range []string{
		"150 clients retry through a 3s outage (seed 7",
		"From 5s to 8s it refuses every call.",
		"at most 4 calls per request",
		"ends 9s after the fault",
		"fixed 1s waits 1s between calls (3s in all)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "session") {
		t.Errorf("-sessions=false still mentions sessions:\n%s", out)
	}
}

func TestNoFault(t *testing.T) {
	code, out, _ := runCmd(t, "-clients", "100", "-fault", "0", "-after", "5s")
	if code != 0 || !strings.Contains(out, "There is no fault.") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-clients", "0"}, "-clients 0 is outside [1, 10000]"},
		{[]string{"-clients", "10001"}, "-clients 10001 is outside [1, 10000]"},
		{[]string{"-clients", "100000"}, "-clients 100000 is outside"},
		{[]string{"-attempts", "101"}, "-attempts 101 is outside [1, 100]"},
		{[]string{"-attempts", "1000000"}, "-attempts 1000000 is outside"},
		{[]string{"-rate", "100.5"}, "-rate 100.5 is outside (0, 100]"},
		{[]string{"-capacity", "1001"}, "-capacity 1001 is outside [1, 1000]"},
		{[]string{"-fault", "11m"}, "-fault 11m0s is outside [0, 10m0s]"},
		{[]string{"-after", "601s"}, "-after 10m1s is outside [0, 10m0s]"},
		{[]string{"-clients", "10000", "-attempts", "20"}, "above 100,000,000: lower one of them"},
		{[]string{"-clients", "-3"}, "-clients -3 is outside"},
		{[]string{"-clients", "1000000"}, "-clients 1000000 is outside"},
		{[]string{"-clients", "many"}, "invalid value"},
		{[]string{"-fault", "-1s"}, "-fault -1s is negative"},
		{[]string{"-fault", "10"}, "invalid value"},
		{[]string{"-rate", "0"}, "-rate 0 is not a positive"},
		{[]string{"-rate", "NaN"}, "-rate NaN"},
		{[]string{"-capacity", "0.5"}, "-capacity 0.5 is below 1"},
		{[]string{"-refuse-cost", "1"}, "-refuse-cost 1 is outside [0, 1)"},
		{[]string{"-refuse-cost", "-0.1"}, "-refuse-cost -0.1"},
		{[]string{"-after", "-5s"}, "-after -5s is negative"},
		{[]string{"-attempts", "0"}, "-attempts 0 is below 1"},
		{[]string{"-nosuchflag"}, "not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-clients", "0", "-fault", "-2s"}, "-fault -2s is negative"},
		{[]string{"-rate", "0.001"}, "less than one call per tick"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out != "" {
				t.Errorf("printed to stdout on error:\n%s", out)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("stderr %q lacks %q", errs, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, _, errs := runCmd(t, "-h")
	if code != 0 {
		t.Errorf("-h exits %d", code)
	}
	for _, flag := range []string{"-seed", "-clients", "-fault", "-out"} {
		if !strings.Contains(errs, flag) {
			t.Errorf("usage lacks %s:\n%s", flag, errs)
		}
	}
}

func TestTimelineCSV(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "out")
	code, out, errs := runCmd(t, append([]string{"-out", dir}, small...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	path := filepath.Join(dir, "retrystorm.csv")
	if !strings.Contains(out, path) {
		t.Errorf("output does not name %s:\n%s", path, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(records[0], ","); got != "strategy,second,calls,served,refused,peak_backlog,in_fault" {
		t.Errorf("header %q", got)
	}
	// 5 strategies × (5s before + 2s fault + 10s after).
	if len(records) != 1+5*17 {
		t.Errorf("%d records, want %d", len(records), 1+5*17)
	}
	faults := 0
	for _, r := range records[1:] {
		if r[6] == "true" {
			faults++
			if r[3] != "0" {
				t.Errorf("calls served during the fault: %v", r)
			}
		}
	}
	if faults != 5*2 {
		t.Errorf("%d seconds marked in fault, want 10", faults)
	}
}

func TestTimelineUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCmd(t, append([]string{"-out", file}, small...)...)
	if code != 1 || errs == "" {
		t.Errorf("exit %d, stderr %q: want 1 and an error", code, errs)
	}
}

// TestHelpStatesRanges checks that -h names the command and gives every
// flag its range, the bound on the product, and the guarded strategy.
func TestHelpStatesRanges(t *testing.T) {
	_, _, errs := runCmd(t, "-h")
	for _, want := range []string{
		"usage: retrystorm", "0 to 2^64-1", "1 to 10000", "0 (no fault) to 10m0s", "above 0 up to 100",
		"1 to 1000", "in [0, 1)", "0 to 10m0s", "(true or false)", "1 to 100 (default 8)",
		"at most 100,000,000 calls", "full jitter + budget, is the one guarded",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("usage lacks %q:\n%s", want, errs)
		}
	}
}

// The largest values each flag allows, alone, are accepted (without
// running them).
func TestLargestValuesAccepted(t *testing.T) {
	for _, args := range [][]string{
		{"-clients", "10000"}, {"-attempts", "100"}, {"-rate", "100"}, {"-capacity", "1000"},
		{"-fault", "10m"}, {"-after", "10m"}, {"-attempts", "100", "-fault", "40s", "-after", "5s"},
	} {
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("%v refused: %v", args, err)
		}
	}
}

// TestNamesTheGuardedStrategy checks that the output says which strategy
// is guarded, and that the sentence about it comes from the numbers.
func TestNamesTheGuardedStrategy(t *testing.T) {
	_, out, _ := runCmd(t, small...)
	out = strings.Join(strings.Fields(out), " ")
	if !strings.Contains(out, "The guarded strategy is full jitter + budget") {
		t.Errorf("output does not name the guarded strategy:\n%s", out)
	}
	if !regexp.MustCompile(`It made [\d,]+ (fewer|more) calls than full jitter`).MatchString(out) {
		t.Errorf("output does not compare the guarded strategy's calls with full jitter's:\n%s", out)
	}
}

func TestGuardedVerdictFollowsTheNumbers(t *testing.T) {
	names := []string{"immediate", "fixed 1s", "exponential", "full jitter", "full jitter + budget"}
	results := func(failed, calls [5]int64) []sim.Result {
		rs := make([]sim.Result, 5)
		for i := range rs {
			rs[i] = sim.Result{Strategy: names[i], Failed: failed[i], Calls: calls[i], PeakLoad: 2}
		}
		return rs
	}
	shed := guardedVerdict(results([5]int64{10, 20, 30, 40, 50}, [5]int64{1000, 900, 800, 700, 350}), 8)
	for _, want := range []string{"failed the most requests (50) on purpose", "350 fewer calls than full jitter (50% less load", "650 fewer calls than immediate (65% less load"} {
		if !strings.Contains(shed, want) {
			t.Errorf("verdict lacks %q: %s", want, shed)
		}
	}
	calm := guardedVerdict(results([5]int64{10, 20, 30, 40, 5}, [5]int64{1000, 900, 800, 700, 800}), 8)
	for _, want := range []string{"failed 5 requests, not the most", "100 more calls than full jitter", "200 fewer calls than immediate (20% less load"} {
		if !strings.Contains(calm, want) {
			t.Errorf("verdict lacks %q: %s", want, calm)
		}
	}
	if strings.Contains(calm, "on purpose") {
		t.Errorf("verdict claims shedding with the fewest failures: %s", calm)
	}
}

// TestShortRunQuietWhenNotATerminal: a short run prints nothing but errors
// on a stderr that is not a terminal (progress lines start at
// progress.LineAfter).
func TestShortRunQuietWhenNotATerminal(t *testing.T) {
	code, _, errs := runCmd(t, small...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}
