package main

import (
	"bytes"
	"strings"
	"testing"
)

func output(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	run(&b)
	return b.String()
}

// The replay is deterministic: two runs print the same bytes.
func TestDeterministic(t *testing.T) {
	if a, b := output(t), output(t); a != b {
		t.Fatalf("two runs differ:\n%s\n---\n%s", a, b)
	}
}

// The 2025 run ends with the regional endpoint empty and stuck; the
// dnsplan run refuses the stale write, never empties the endpoint on its
// own, and repairs the damage made by hand.
func TestStory(t *testing.T) {
	out := output(t)
	naive, guarded, ok := strings.Cut(out, "== dnsplan")
	if !ok {
		t.Fatalf("no dnsplan run:\n%s", out)
	}
	if head, _, _ := strings.Cut(out, "== 2025"); !strings.Contains(head, "see go run ./dynamodb2025") || !strings.Contains(head, "one link") {
		t.Errorf("the replay does not say it is one link of the whole outage:\n%s", head)
	}
	for _, want := range []string{
		"A (1a)   applies regional 110->101",
		"records of regional go with them",
		"FAILS regional: live plan 101 missing, cannot build transaction",
		"=> regional endpoint EMPTY at the end, stuck on deleted plan 101",
	} {
		if !strings.Contains(naive, want) {
			t.Errorf("2025 run lacks %q:\n%s", want, naive)
		}
	}
	for _, want := range []string{
		"write of 101 to regional REFUSED: it is at 110 now",
		"REPAIRS regional 111->112",
		"=> regional endpoint serves plan 112",
	} {
		if !strings.Contains(guarded, want) {
			t.Errorf("dnsplan run lacks %q:\n%s", want, guarded)
		}
	}
	// Before the damage made by hand, the regional endpoint is never
	// empty in the dnsplan run.
	before, _, _ := strings.Cut(guarded, "outside")
	if strings.Contains(before, "EMPTY") {
		t.Errorf("dnsplan run empties the endpoint by itself:\n%s", guarded)
	}
	if strings.Contains(guarded, "applies regional 110->101") {
		t.Errorf("dnsplan run rolls the endpoint back:\n%s", guarded)
	}
}

func TestArguments(t *testing.T) {
	var out, errs bytes.Buffer
	if code := cli(nil, &out, &errs); code != 0 || !strings.Contains(out.String(), "== dnsplan") {
		t.Fatalf("no arguments: exit %d, output %q", code, out.String())
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "usage: dnsrace [-seed N]"},
		{[]string{"-plans", "999"}, 2, "-plans 999 is out of range [1000, 500000]"},
		{[]string{"-plans", "500001"}, 2, "-plans 500001 is out of range [1000, 500000]"},
		{[]string{"-stall", "-0.1"}, 2, "-stall -0.1 is out of range [0, 0.05]"},
		{[]string{"-stall", "NaN"}, 2, "-stall NaN is out of range [0, 0.05]"},
		{[]string{"-stall", "0.06"}, 2, "-stall 0.06 is out of range [0, 0.05]"},
		{[]string{"-ttl", "-1s"}, 2, "-ttl -1s is out of range [0, 1h0m0s]"},
		{[]string{"-ttl", "61m"}, 2, "-ttl 1h1m0s is out of range [0, 1h0m0s]"},
		{[]string{"-negttl", "3h1s"}, 2, "-negttl 3h0m1s is out of range [0, 3h0m0s]"},
		{[]string{"-repair", "59s"}, 2, "-repair 59s is out of range [1m0s, 24h0m0s]"},
		{[]string{"-repair", "25h"}, 2, "-repair 25h0m0s is out of range [1m0s, 24h0m0s]"},
		{[]string{"-plans", "5", "-ttl", "2h"}, 2, "-ttl 2h0m0s is out of range"},
		{[]string{"-seed", "x"}, 2, `invalid value "x" for flag -seed`},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		out.Reset()
		errs.Reset()
		if code := cli(tc.args, &out, &errs); code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(errs.String(), tc.want) {
			t.Errorf("%q: stderr %q lacks %q", tc.args, errs.String(), tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%q: something ran", tc.args)
		}
	}
	// -h names the program, not the build cache, and gives every range.
	out.Reset()
	errs.Reset()
	cli([]string{"-h"}, &out, &errs)
	if !strings.HasPrefix(errs.String(), "usage: dnsrace ") || strings.Contains(errs.String(), "/") && strings.Contains(errs.String(), "go-build") {
		t.Errorf("-h: %q", errs.String())
	}
	for _, want := range []string{"[1000, 500000]", "[0, 0.05]", "[0, 1h0m0s]", "[0, 3h0m0s]", "[1m0s, 24h0m0s]", "go run ./dynamodb2025"} {
		if !strings.Contains(errs.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, errs.String())
		}
	}
	// The edges of every range are accepted.
	out.Reset()
	errs.Reset()
	edges := []string{"-seed", "-9223372036854775808", "-plans", "1000", "-stall", "0.05", "-ttl", "1h", "-negttl", "3h", "-repair", "24h"}
	if code := cli(edges, &out, &errs); code != 0 || !strings.Contains(out.String(), "per million plans") {
		t.Errorf("%q: exit %d, stdout %q, stderr %q", edges, code, out.String(), errs.String())
	}
	edges = []string{"-seed", "9223372036854775807", "-plans", "1000", "-stall", "0", "-ttl", "0s", "-negttl", "0s", "-repair", "1m"}
	if code := cli(edges, &out, &errs); code != 0 {
		t.Errorf("%q: exit %d, stderr %q", edges, code, errs.String())
	}
}
