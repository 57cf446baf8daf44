package lease_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/leasesim"
)

var fullSim = flag.Bool("lease.full", false, "run the congestive-collapse simulation with 1,000,000 droplets instead of 10,000")

// TestCongestiveCollapse reproduces the droplet manager's collapse of 2025
// with a naive scheduler and shows Recovery avoiding it, on the same
// simulated fleet (internal/leasesim, shared with examples/leasestorm): N
// droplets (10,000; 1,000,000 with -lease.full), w = N/1000 workers,
// establishment ≈10ms, renewal ≈1ms, TTL 5s, timeout 2s, so N·c/w = 10s >
// TTL. Naive: under 5% leased after 10× the ideal time. Recovery: at least
// 99% within 1.5× the ideal time, and no lease lapsed.
func TestCongestiveCollapse(t *testing.T) {
	n := 10_000
	if *fullSim {
		n = 1_000_000
	}
	s := leasesim.Scenario{
		Droplets: n, Workers: max(1, n/1000),
		Cost: 10 * time.Millisecond, RenewCost: time.Millisecond,
		TTL: 5 * time.Second, Timeout: 2 * time.Second,
		Seed: 2025,
	}
	ideal := s.Ideal()
	if ideal <= s.TTL {
		t.Fatalf("scenario must have N·c/w (%v) > TTL (%v)", ideal, s.TTL)
	}
	s.Step = ideal / 10
	s.Horizon = 10 * ideal
	naive := leasesim.RunNaive(s)
	s.Horizon = 2 * ideal
	rec, prog, err := leasesim.RunRecovery(s)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "N=%d w=%d c=%v TTL=%v timeout=%v ideal N·c/w=%v\n%8s %8s %8s\n", n, s.Workers, s.Cost, s.TTL, s.Timeout, ideal, "t", "naive", "recovery")
	for i, x := range naive {
		r := "-"
		if i < len(rec) {
			r = fmt.Sprintf("%.1f%%", 100*float64(rec[i].Leased)/float64(n))
		}
		if i <= 20 || i%10 == 0 {
			fmt.Fprintf(&b, "%8v %7.1f%% %8s\n", x.At, 100*float64(x.Leased)/float64(n), r)
		}
	}
	t.Logf("timelines:\n%s\nrecovery progress at 2× ideal: %+v", b.String(), prog)
	if got := leasesim.LeasedAt(naive, n, 10*ideal); got >= 0.05 {
		t.Errorf("naive leased %.1f%% after 10× the ideal time, want < 5%% (collapse)", 100*got)
	}
	if got := leasesim.LeasedAt(rec, n, ideal*3/2); got < 0.99 {
		t.Errorf("recovery leased %.2f%% after 1.5× the ideal time, want ≥ 99%%", 100*got)
	}
	if prog.Lapsed != 0 {
		t.Errorf("recovery let %d leases lapse", prog.Lapsed)
	}
}
