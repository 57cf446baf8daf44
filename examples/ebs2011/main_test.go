package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/remirror/sim"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(args, &out, &errs)
	return code, out.String(), errs.String()
}

var small = []string{"-volumes", "3000", "-hours", "3"}

func TestDefaultsAreTheSimulatorsScenario(t *testing.T) {
	opts, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := sim.DefaultConfig()
	if opts.cfg != want || opts.json {
		t.Fatalf("defaults %+v, want %+v", opts.cfg, want)
	}
}

func TestTimelineTable(t *testing.T) {
	code, out, errs := runCmd(t, small...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"EBS, April 21 2011, replayed: 3000 volumes in 3 zones",
		"00:47 a network change isolates 10% of us-east-1a's nodes; 01:27 it is rolled back.",
		"naive (2011)", "guarded (remirror defaults)",
		"| stuck %", "| searches/min", "| authority calls/min", "← isolation", "← rollback",
		"peak stuck, region", "search messages", "volumes without a live replica",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The story the table tells: the naive zone is still stuck at the end,
	// the guarded one is healthy, and no data is lost in either.
	if !strings.Contains(out, "never") {
		t.Errorf("the naive run recovered:\n%s", out)
	}
	if strings.Count(out, "00:50 ") != 2 || strings.Count(out, "03:00 ") != 2 {
		t.Errorf("want one row per table at 00:50 and 03:00:\n%s", out)
	}
	_, again, _ := runCmd(t, small...)
	if again != out {
		t.Fatal("two runs with the same flags printed different tables")
	}
}

func TestJSON(t *testing.T) {
	code, out, errs := runCmd(t, append(small, "-json", "-seed", "3")...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var doc struct {
		Seed uint64 `json:"seed"`
		Runs []struct {
			Mode      string  `json:"mode"`
			PeakStuck float64 `json:"peak_stuck"`
			Searches  int64   `json:"searches"`
			Zones     []struct {
				Name    string       `json:"name"`
				Minutes []sim.Minute `json:"minutes"`
			} `json:"zones"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Seed != 3 || len(doc.Runs) != 2 || doc.Runs[0].Mode != "naive" || doc.Runs[1].Mode != "guarded" {
		t.Fatalf("document %+v", doc)
	}
	for _, r := range doc.Runs {
		if len(r.Zones) != 3 || r.Zones[0].Name != "us-east-1a" || len(r.Zones[0].Minutes) != 180 {
			t.Fatalf("%s: zones %d, minutes %d", r.Mode, len(r.Zones), len(r.Zones[0].Minutes))
		}
	}
	if doc.Runs[1].Searches*100 > doc.Runs[0].Searches || doc.Runs[1].PeakStuck*3 > doc.Runs[0].PeakStuck {
		t.Fatalf("guarded %+v not well below naive %+v", doc.Runs[1], doc.Runs[0])
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-volumes", "10"}, {"-hours", "0"}, {"-nope"}, {"extra"}} {
		if code, _, errs := runCmd(t, args...); code != 2 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	if code, _, _ := runCmd(t, "-h"); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}
