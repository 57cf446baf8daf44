package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stormguard/stormguard/examples/internal/ebssim"
)

// -full runs the whole calibration range of issue 14: seeds 1-10 and
// -volumes from 3,000 to 200,000, 72 hours each (minutes of CPU).
var full = flag.Bool("full", false, "check the calibration for seeds 1-10 and 3,000-200,000 volumes")

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(args, &out, &errs)
	return code, out.String(), errs.String()
}

// calibrate runs both modes of cfg and reports every calibration check
// that fails.
func calibrate(t *testing.T, cfg ebssim.Config) {
	t.Helper()
	n, err := ebssim.Run(cfg, ebssim.Naive)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ebssim.Run(cfg, ebssim.Guarded)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks(n.Summarize(), g.Summarize()) {
		if !c.OK {
			t.Errorf("seed %d, %d volumes: %s: got %s", cfg.Seed, cfg.Volumes, c.Name, c.Got)
		}
	}
}

// TestCalibrationScaledDown is the default run's calibration check: the
// smallest size, one seed, and the first 14 hours, which hold both
// brownouts and the 12 hours after the heal.
func TestCalibrationScaledDown(t *testing.T) {
	calibrate(t, ebssim.Config{Seed: 1, Volumes: ebssim.MinVolumes, Hours: 14})
}

// TestCalibrationFullRange is issue 14's "done when": seeds 1-10 and
// -volumes 3,000 to 200,000, at the default 72 hours. Run it with
// go test ./ebs2011 -run FullRange -full -timeout 1h.
func TestCalibrationFullRange(t *testing.T) {
	if !*full {
		t.Skip("the full calibration range takes minutes; run with -full")
	}
	sizes := []int{3000, 7000, 20000, 60000, 200000}
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, v := range sizes {
		for seed := uint64(1); seed <= 10; seed++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				calibrate(t, ebssim.Config{Seed: seed, Volumes: v, Hours: 72})
			}()
		}
	}
	wg.Wait()
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-volumes", "2999"}, "volumes 2999 is outside [3000, 1200000]"},
		{[]string{"-volumes", "1200001"}, "volumes 1200001 is outside [3000, 1200000]"},
		{[]string{"-hours", "0"}, "hours 0 is outside [1, 96]"},
		{[]string{"-hours", "97"}, "hours 97 is outside [1, 96]"},
		{[]string{"-seed", "-1"}, "invalid value"},
		{[]string{"-volumes", "many"}, "invalid value"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		code, out, errs := runCmd(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

func TestHelpStatesRanges(t *testing.T) {
	code, _, errs := runCmd(t, "-h")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"[0, 18446744073709551615]", "[3000, 1200000]", "[1, 96]", "-out", "-json"} {
		if !strings.Contains(errs, want) {
			t.Errorf("-h does not say %q:\n%s", want, errs)
		}
	}
}

func TestSameFlagsSameBytes(t *testing.T) {
	args := []string{"-hours", "3", "-seed", "7"}
	_, a, _ := runCmd(t, args...)
	_, b, _ := runCmd(t, args...)
	if a != b || a == "" {
		t.Fatal("two runs with the same flags printed different text")
	}
	_, c, _ := runCmd(t, "-hours", "3", "-seed", "8")
	if a == c {
		t.Fatal("seeds 7 and 8 printed the same text")
	}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkKeys reports any key of v, at any depth, that is not snake_case.
func checkKeys(t *testing.T, path string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !snake.MatchString(k) {
				t.Errorf("key %s.%s is not snake_case", path, k)
			}
			checkKeys(t, path+"."+k, e)
		}
	case []any:
		if len(x) > 0 {
			checkKeys(t, path+"[0]", x[0])
		}
	}
}

func TestJSON(t *testing.T) {
	code, out, errs := runCmd(t, "-hours", "2", "-json")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "", doc)
	for _, k := range []string{"seed", "volumes", "hours", "runs"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	runs := doc["runs"].([]any)
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	for i, mode := range []string{"naive", "guarded"} {
		r := runs[i].(map[string]any)
		if r["mode"] != mode {
			t.Errorf("run %d is %v, want %s", i, r["mode"], mode)
		}
		for _, k := range []string{"peak_stuck_affected_zone_pct", "peak_stuck_other_zones_pct", "api_success_healthy_zones_min_pct",
			"api_success_healthy_zones_below_50_minutes", "search_messages", "node_crashes", "volumes_without_live_replica_max",
			"affected_zone_healthy_after_heal_seconds", "timeline"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s run has no %q", mode, k)
			}
		}
		if tl := r["timeline"].([]any); len(tl) != 120 {
			t.Errorf("%s timeline has %d minutes, want 120", mode, len(tl))
		}
	}
	// Two hours end before the naive run could be healthy again: null.
	if v := runs[0].(map[string]any)["affected_zone_healthy_after_heal_seconds"]; v != nil {
		t.Errorf("naive healthy after heal = %v, want null", v)
	}
}

func TestChartsWritten(t *testing.T) {
	// A directory that does not exist yet, two levels deep.
	dir := filepath.Join(t.TempDir(), "new", "charts")
	code, out, errs := runCmd(t, "-hours", "2", "-out", dir)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, f := range chartFiles() {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v (size %d)", f, err, st.Size())
		}
	}
	// Nothing else: no probe or temporary file left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(chartFiles()) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want only %q", dir, names, chartFiles())
	}
	if !strings.Contains(out, "Charts: "+dir) {
		t.Error("the report does not say where the charts are")
	}
}

// TestTimelineMarksPeaks checks that the rows include the minute of each
// peak, marked, and the postmortem's timestamps.
func TestTimelineMarksPeaks(t *testing.T) {
	code, out, _ := runCmd(t, "-hours", "14")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	n, err := ebssim.Run(ebssim.Config{Seed: 1, Volumes: 60000, Hours: 14}, ebssim.Naive)
	if err != nil {
		t.Fatal(err)
	}
	s := n.Summarize()
	row := fmt.Sprintf("%s |", clock(s.PeakStuckAffectedAt))
	found := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, row) && strings.Contains(l, "▲ naive peak stuck 1a") {
			found = true
		}
	}
	if !found {
		t.Errorf("no marked row for the naive peak at %s", clock(s.PeakStuckAffectedAt))
	}
	for _, ts := range []string{"00:47", "02:40", "05:30", "08:20", "11:30", "12:04"} {
		if !strings.Contains(out, "Apr 21 "+ts+" |") {
			t.Errorf("no row at %s", ts)
		}
	}
}

// BenchmarkSimulate measures the simulator's speed in simulated events
// per second of CPU (the default size, 24 simulated hours, naive).
func BenchmarkSimulate(b *testing.B) {
	var events int64
	start := time.Now()
	for b.Loop() {
		r, err := ebssim.Run(ebssim.Config{Seed: 1, Volumes: 60000, Hours: 24}, ebssim.Naive)
		if err != nil {
			b.Fatal(err)
		}
		events += r.Events
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}

// TestTextFollowsTheNumbers feeds the report's prose summaries whose
// conclusions differ from the default run's, and checks that no sentence
// states what the numbers do not say.
func TestTextFollowsTheNumbers(t *testing.T) {
	n := &ebssim.Result{Mode: ebssim.Naive, ZoneVolumes: 20000}
	g := &ebssim.Result{Mode: ebssim.Guarded}
	ns := ebssim.Summary{PeakStuckAffectedPct: 14, PeakStuckAffectedAt: 300, PeakStuckOtherPct: 0.02, PeakStuckOtherAt: 3700,
		Brownouts: []ebssim.Window{{From: 51, To: 160}, {From: 330, To: 500}}, NodeCrashes: 20, DegradationStopped: 600,
		Below22: 2000, Below104: -1, HealthyAfterHeal: -1, UnrecoverablePct: 0.05, FinalStuckPct: 1.5}
	// A guarded run that did storm: its peak is above 2.2% and it had
	// race crashes, and it healed only after 40 minutes.
	gs := ebssim.Summary{PeakStuckAffectedPct: 3, PeakStuckAffectedAt: 60, NodeCrashes: 2, DegradationStopped: 70,
		Below22: 90, Below104: 95, HealthyAfterHeal: 40 * time.Minute, CutOffPct: 12}
	var b bytes.Buffer
	summary(&b, n, g, ns, gs)
	limits(&b, n, ns, gs)
	out := b.String()
	for _, bad := range []string{
		"no storm",                                // guarded stormed
		"within seconds",                          // guarded took 40 minutes
		"at not in the run",                       // 1.04% was not reached
		"where 2011 took two more days",           // ... so no comparison
		"whose both replicas are on failed nodes", // 1.5% still stuck, 0.05% unrecoverable
		"elections time out during the brownouts", // the peak outside is at 3700, after both
	} {
		if strings.Contains(out, bad) {
			t.Errorf("the text says %q, which these numbers contradict:\n%s", bad, out)
		}
	}
	for _, want := range []string{"Apr 21 01:10", "Apr 21 01:30", "Apr 21 01:35", "40m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("the text does not give %q:\n%s", want, out)
		}
	}
}

// TestAfterFixCheckMeansAbove95 builds a naive run whose healthy zones
// sit at 80% success after the cut-off: never below 50%, but not back
// above 95% either.
func TestAfterFixCheckMeansAbove95(t *testing.T) {
	r := &ebssim.Result{Mode: ebssim.Naive, ZoneVolumes: 1}
	for m := 1; m <= 14*60; m++ {
		x := ebssim.Minute{Minute: m}
		for z := range ebssim.Zones {
			x.APICalls[z] = 100
			x.APIOK[z] = 100
			if m > 9*60 {
				x.APIOK[z] = 80
			}
		}
		r.Timeline = append(r.Timeline, x)
	}
	ns := r.Summarize()
	for _, c := range Checks(ns, ebssim.Summary{}) {
		if strings.Contains(c.Name, "95%") && c.OK {
			t.Errorf("%s holds with 80%% success after 09:00 (%s)", c.Name, c.Got)
		}
	}
}

// TestUnwritableOutRefusedBeforeRunning: a bad -out is a bad flag: exit
// 2, before minutes of simulation, and no partial files.
func TestUnwritableOutRefusedBeforeRunning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "-hours", "1", "-out", filepath.Join(file, "charts"))
	if code != 2 || out != "" || !strings.Contains(errs, "-out") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 naming -out", code, out, errs)
	}
}

// TestNoFigureForATimeAfterTheRun: a run that ends before 11:30 has no
// stuck share at 11:30; it is null, not 0%.
func TestNoFigureForATimeAfterTheRun(t *testing.T) {
	code, out, _ := runCmd(t, "-hours", "3", "-volumes", "3000", "-json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range doc.Runs {
		for _, k := range []string{"stuck_affected_zone_at_1130_pct", "stuck_race_crash_at_1130_pct"} {
			if v, ok := r[k]; !ok || v != nil {
				t.Errorf("%s: %s = %v, want null", r["mode"], k, v)
			}
		}
	}
	_, text, _ := runCmd(t, "-hours", "3", "-volumes", "3000")
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "stuck at 11:30") && !strings.Contains(l, "not in the run") {
			t.Errorf("a 3-hour run gives a figure at 11:30: %q", l)
		}
	}
}

// TestChecksNeedTheirHours: a run that ends before a check's time cannot
// show that the check holds.
func TestChecksNeedTheirHours(t *testing.T) {
	cfg := ebssim.Config{Seed: 1, Volumes: ebssim.MinVolumes, Hours: 3}
	n, err := ebssim.Run(cfg, ebssim.Naive)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ebssim.Run(cfg, ebssim.Guarded)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks(n.Summarize(), g.Summarize()) {
		if strings.Contains(c.Name, "12h after the heal") && c.OK {
			t.Errorf("a 3-hour run: %q holds (%s)", c.Name, c.Got)
		}
	}
}

// TestClockSeconds: the heal's time in the text is computed, seconds
// included, not a fixed ":30".
func TestClockSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		ebssim.FaultStart + ebssim.FaultDuration: "00:47:30",
		61*time.Minute + 5*time.Second:           "01:01:05",
		25 * time.Hour:                           "01:00:00",
	} {
		if got := clockS(d); got != want {
			t.Errorf("clockS(%v) = %q, want %q", d, got, want)
		}
	}
}
