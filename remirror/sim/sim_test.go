package sim

import (
	"errors"
	"flag"
	"reflect"
	"testing"
	"time"

	"github.com/stormguard/stormguard/internal/leakcheck"
)

var full = flag.Bool("full", false, "run the simulation regression tests at full size (100,000 volumes, 24 hours)")

func TestMain(m *testing.M) { leakcheck.Main(m) }

// testConfig is DefaultConfig, shortened to 4 hours, or the full size with
// -full.
func testConfig(seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Duration = 4 * time.Hour
	if *full {
		cfg = cfg.Scaled(100_000)
		cfg.Duration = 24 * time.Hour
	}
	return cfg
}

func runBoth(t *testing.T, cfg Config) (naive, guarded *Result) {
	t.Helper()
	var err error
	if naive, err = Run(cfg, Naive); err != nil {
		t.Fatal(err)
	}
	if guarded, err = Run(cfg, Guarded); err != nil {
		t.Fatal(err)
	}
	t.Logf("naive:   peak stuck %.1f%% (zone 0 %.1f%%), searches %d, authority calls %d, crashes %d, events %d",
		100*naive.PeakStuck, 100*naive.PeakStuckZone, naive.Searches, naive.AuthorityCalls, naive.Crashes, naive.Events)
	t.Logf("guarded: peak stuck %.1f%% (zone 0 %.1f%%), searches %d, authority calls %d, crashes %d, events %d, healthy %v after the heal",
		100*guarded.PeakStuck, 100*guarded.PeakStuckZone, guarded.Searches, guarded.AuthorityCalls, guarded.Crashes, guarded.Events, guarded.HealthyAfter)
	return naive, guarded
}

func TestStormVersusGuarded(t *testing.T) {
	seeds := []uint64{1, 2}
	if *full {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		cfg := testConfig(seed)
		naive, guarded := runBoth(t, cfg)
		healed := int((cfg.FaultStart + cfg.FaultDuration) / time.Minute)

		// The naive storm: the stuck fraction rises well above the isolated
		// fraction, stays high after the network heals, and searches explode.
		if naive.PeakStuck < 3*naive.IsolatedFraction {
			t.Errorf("seed %d: naive peak stuck %.3f, not well above the isolated fraction %.3f", seed, naive.PeakStuck, naive.IsolatedFraction)
		}
		after := naive.Zones[0][min(healed+60, len(naive.Zones[0])-1)].Stuck
		if after < 0.5 {
			t.Errorf("seed %d: naive zone 0 is %.3f stuck an hour after the heal; the storm should outlive the fault", seed, after)
		}
		if last := naive.Zones[0][len(naive.Zones[0])-1].Stuck; last < 0.5 {
			t.Errorf("seed %d: naive zone 0 ends %.3f stuck", seed, last)
		}
		// The guarded engine.
		if guarded.PeakStuck*3 > naive.PeakStuck {
			t.Errorf("seed %d: guarded peak stuck %.4f is above 1/3 of naive %.4f", seed, guarded.PeakStuck, naive.PeakStuck)
		}
		if guarded.Searches*100 > naive.Searches {
			t.Errorf("seed %d: guarded searches %d are above 1/100 of naive %d", seed, guarded.Searches, naive.Searches)
		}
		if guarded.HealthyAfter < 0 || guarded.HealthyAfter > 15*time.Minute {
			t.Errorf("seed %d: guarded zone 0 healthy %v after the heal, want within 15m", seed, guarded.HealthyAfter)
		}
		if naive.MaxZeroLive != 0 || guarded.MaxZeroLive != 0 {
			t.Errorf("seed %d: volumes without a live replica: naive %d, guarded %d", seed, naive.MaxZeroLive, guarded.MaxZeroLive)
		}
		// The other zones are not dragged in under the guarded settings.
		for zi := 1; zi < cfg.Zones; zi++ {
			for _, m := range guarded.Zones[zi] {
				if m.Stuck > 0.2 {
					t.Errorf("seed %d: guarded zone %d %.3f stuck at minute %d", seed, zi, m.Stuck, m.Minute)
					break
				}
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration = 2 * time.Hour
	for _, m := range []Mode{Naive, Guarded} {
		a, err := Run(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(cfg, m)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%v: two runs with one seed differ", m)
		}
		cfg.Seed++
		c, _ := Run(cfg, m)
		if reflect.DeepEqual(a.Region, c.Region) {
			t.Fatalf("%v: two seeds gave the same timeline", m)
		}
		cfg.Seed--
	}
}

// Without a fault, neither mode storms: the naive settings are fragile, not
// broken.
func TestQuietWithoutFault(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration = 3 * time.Hour
	cfg.IsolatedFraction = 0
	cfg.ChurnPerHour = 0
	for _, m := range []Mode{Naive, Guarded} {
		r, err := Run(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		if r.PeakStuck != 0 || r.Searches != 0 || r.Crashes != 0 {
			t.Fatalf("%v: %+v", m, r)
		}
	}
}

func TestBadConfig(t *testing.T) {
	cfg := Config{Zones: 0, NodesPerZone: 1, VolumesPerZone: -1, Fill: 2, Duration: -1, FaultStart: -1, IsolatedFraction: 2, AuthorityRate: -1, CrashPerClose: 5, CrashThreshold: -1, ChurnPerHour: -1, MaxEvents: -1}
	_, err := Run(cfg, Guarded)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"Zones 0", "NodesPerZone 1", "VolumesPerZone -1", "Fill 2", "Duration -1ns", "FaultStart", "IsolatedFraction 2", "Latency", "AuthorityRate -1", "CrashPerClose 5", "CrashThreshold -1", "ChurnPerHour -1", "MaxEvents -1"} {
		if !contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// A Mode that is neither Naive nor Guarded is refused by Run (it used to
// run as Guarded) and formats as its number.
func TestUnknownMode(t *testing.T) {
	for m, want := range map[Mode]string{Naive: "naive", Guarded: "guarded", 2: "Mode(2)", 9: "Mode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", uint8(m), got, want)
		}
	}
	cfg := DefaultConfig()
	cfg.Duration = time.Hour
	r, err := Run(cfg, Mode(9))
	if !errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), "Mode(9)") || r != nil {
		t.Fatalf("Run(Mode(9)): %v, %v; want ErrInvalidConfig naming Mode(9)", r, err)
	}
	// Reported with every bad field of the Config.
	cfg.Zones = 0
	if _, err := Run(cfg, Mode(9)); !contains(err.Error(), "Mode(9)") || !contains(err.Error(), "Zones 0") {
		t.Fatalf("Run(bad config, Mode(9)): %v", err)
	}
}
