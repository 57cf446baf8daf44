package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func seededOutput(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if code := cli(args, &out, &errs); code != 0 {
		t.Fatalf("%q: exit %d: %s", args, code, errs.String())
	}
	return out.String()
}

// A seed fixes the run: the same flags print the same bytes, and another
// seed prints others.
func TestSeededDeterministic(t *testing.T) {
	args := []string{"-seed", "7", "-plans", "3000", "-stall", "0.05"}
	a, b := seededOutput(t, args...), seededOutput(t, args...)
	if a != b {
		t.Fatalf("two runs of %q differ:\n%s\n---\n%s", args, a, b)
	}
	if c := seededOutput(t, "-seed", "8", "-plans", "3000", "-stall", "0.05"); c == a {
		t.Errorf("seeds 7 and 8 print the same:\n%s", a)
	}
	if !strings.Contains(a, "go run ./dynamodb2025") {
		t.Errorf("no pointer to the whole outage:\n%s", a)
	}
}

// Over enough plans with stalls, check-once enactors empty endpoints and
// leave them on deleted plans; dnsplan's enactors, on the same delays
// drawn from the same seeds, never do.
func TestSeededRace(t *testing.T) {
	var once, fenced simResult
	for seed := int64(1); seed <= 3; seed++ {
		cfg := simConfig{seed: seed, plans: 4000, stall: 0.05, ttl: 5 * time.Second, negTTL: time.Minute, repair: time.Hour}
		o, f := runSeeded(cfg, false, nil), runSeeded(cfg, true, nil)
		if o.plans != cfg.plans || f.plans != cfg.plans {
			t.Fatalf("seed %d: %d and %d plans published, want %d", seed, o.plans, f.plans, cfg.plans)
		}
		if f.emptied != 0 || f.stuck != 0 || f.empty != 0 {
			t.Errorf("seed %d: dnsplan enactors emptied %d times (%v), left %d endpoints on deleted plans", seed, f.emptied, f.empty, f.stuck)
		}
		once.emptied += o.emptied
		once.stuck += o.stuck
		if len(o.outages) != o.emptied {
			t.Errorf("seed %d: %d emptyings, %d repaired", seed, o.emptied, len(o.outages))
		}
		for _, out := range o.outages {
			if out[1]-out[0] != cfg.repair {
				t.Errorf("seed %d: outage %v lasted %v, want the repair time %v", seed, out, out[1]-out[0], cfg.repair)
			}
		}
		fenced.emptied += f.emptied
	}
	if once.emptied == 0 || once.stuck == 0 {
		t.Errorf("check-once enactors over 3 seeds of 4000 plans: %d emptied, %d stuck; want both > 0", once.emptied, once.stuck)
	}
}

// Clients fail from the moment their cached answer expires until their
// first question after the repair, asked when their cached empty answer
// expires.
func TestClientFailure(t *testing.T) {
	out := [2]time.Duration{0, 10 * time.Minute}
	if mean, longest, failed := clientFailure(out, 0, 0); mean != out[1] || longest != out[1] || failed != clientGrid {
		t.Errorf("no caching: mean %v, longest %v, failed %d", mean, longest, failed)
	}
	// A positive TTL longer than the outage spares the clients whose
	// answer outlives it: here half of them.
	if _, longest, failed := clientFailure(out, 20*time.Minute, 0); failed != clientGrid/2 || longest != out[1] {
		t.Errorf("ttl 20m: longest %v, failed %d, want %v, %d", longest, failed, out[1], clientGrid/2)
	}
	// A negative TTL rounds each failure up to its multiple.
	if mean, longest, _ := clientFailure(out, 0, 3*time.Minute); mean != 12*time.Minute || longest != 12*time.Minute {
		t.Errorf("negttl 3m: mean %v, longest %v, want 12m", mean, longest)
	}
}
