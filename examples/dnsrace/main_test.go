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
		{[]string{"-h"}, 0, "no flags"},
		{[]string{"-seed", "3"}, 2, "flag provided but not defined: -seed"},
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
			t.Errorf("%q: the replay ran", tc.args)
		}
	}
}
