package ddbsim

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{Droplets: MinDroplets - 1, Hours: 17, Scenario: Cascade},
		{Droplets: MaxDroplets + 1, Hours: 17, Scenario: Cascade},
		{Droplets: MinDroplets, Hours: MinHours - 1, Scenario: Cascade},
		{Droplets: MinDroplets, Hours: MaxHours + 1, Scenario: Cascade},
		{Droplets: MinDroplets, Hours: 17, Scenario: "nope"},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", c, err)
		}
		if _, err := Run(c, Naive); !errors.Is(err, ErrConfig) {
			t.Errorf("Run %+v: got %v, want ErrConfig", c, err)
		}
	}
}

// TestDeterministic: the same Config gives the same timeline.
func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Droplets: MinDroplets, Hours: MinHours, Scenario: DynamoDBDown}
	for _, m := range []Mode{Naive, Guarded} {
		a, err := Run(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.Timeline, b.Timeline) {
			t.Errorf("%v: two runs of one Config differ", m)
		}
	}
}

// TestGuardedDNSNeverEmpty: dnsplan's enactors refuse the stalled write,
// so the regional record stays non-empty; check-once enactors empty it.
// Only the DNS layer runs: it draws from its own stream.
func TestGuardedDNSNeverEmpty(t *testing.T) {
	end := time.Duration(MinHours) * time.Hour
	for seed := uint64(1); seed <= 10; seed++ {
		g, err := runDNS(Guarded, rand.New(rand.NewPCG(seed, 1)), end)
		if err != nil {
			t.Fatal(err)
		}
		n, err := runDNS(Naive, rand.New(rand.NewPCG(seed, 1)), end)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.flips) > 0 {
			t.Errorf("seed %d: guarded record empty at %v", seed, g.flips)
		}
		if len(n.flips) != 2 || n.flips[1] != DNSRepair || n.flips[0] < RaceAt || n.flips[0] >= RaceAt+time.Minute {
			t.Errorf("seed %d: naive record empty at %v, want from 23:48 to the 02:25 repair", seed, n.flips)
		}
	}
}

// TestGuardedNLBAloneExercised: in dynamodb-down each guarded layer must
// be shown holding on its own. The guarded Network Manager keeps every new
// target's state under a minute, so the guarded run's NLB never sees a
// failing health check; its velocity control is judged instead against the
// naive run's health checks (targets waiting hours for network state), and
// must both remove failing targets and keep the floor.
func TestGuardedNLBAloneExercised(t *testing.T) {
	for _, n := range []int{12_345} {
		cfg := Config{Seed: 11, Droplets: n, Hours: MinHours, Scenario: DynamoDBDown}
		r, err := Run(cfg, Naive)
		if err != nil {
			t.Fatal(err)
		}
		v := r.Velocity
		if v.Removed == 0 || v.FailingPeak == 0 {
			t.Errorf("%d droplets: velocity control not exercised: %+v", n, v)
		}
		if v.MinPct < 100*VelocityFloor {
			t.Errorf("%d droplets: velocity control let capacity fall to %.1f%%, floor %.0f%%", n, v.MinPct, 100*VelocityFloor)
		}
		var failing int
		for _, m := range r.Timeline {
			failing = max(failing, m.NLBChecksFailing)
		}
		if failing != v.FailingPeak {
			t.Errorf("%d droplets: timeline's peak failing checks %d, velocity's %d", n, failing, v.FailingPeak)
		}
	}
}

// TestRatesProportionalToDroplets: the launch rate and the Network
// Manager's capacity are per droplet, so the naive Network Manager works
// its backlog (0.7 items per droplet) off at about the same minute at
// 10,000 droplets as at sizes just under the next thousand, where whole
// rates per 1,000 droplets gave up to 10% more backlog per unit of
// capacity (11,999: normal an hour after 10,000).
func TestRatesProportionalToDroplets(t *testing.T) {
	end := func(n int) int {
		r, err := Run(Config{Seed: 11, Droplets: n, Hours: MinHours, Scenario: Cascade}, Naive)
		if err != nil {
			t.Fatal(err)
		}
		return r.Summarize().Propagation.To + 1
	}
	base := end(MinDroplets)
	for _, n := range []int{11_999} {
		if d := end(n) - base; d < -15 || d > 15 {
			t.Errorf("%d droplets: propagation normal %+d minutes from %d droplets'", n, d, MinDroplets)
		}
	}
}
