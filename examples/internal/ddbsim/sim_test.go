package ddbsim

import (
	"errors"
	"reflect"
	"testing"
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
func TestGuardedDNSNeverEmpty(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		cfg := Config{Seed: seed, Droplets: MinDroplets, Hours: MinHours, Scenario: Cascade}
		g, err := Run(cfg, Guarded)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Run(cfg, Naive)
		if err != nil {
			t.Fatal(err)
		}
		if s := g.Summarize(); s.DNSEmpty.Has() {
			t.Errorf("seed %d: guarded record empty %v", seed, s.DNSEmpty)
		}
		if s := n.Summarize(); !s.DNSEmpty.Has() {
			t.Errorf("seed %d: naive record never empty", seed)
		}
	}
}
