package ebssim

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateNamesEveryBadField(t *testing.T) {
	err := Config{Volumes: MinVolumes - 1, Hours: MaxHours + 1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err %v does not match ErrInvalidConfig", err)
	}
	for _, want := range []string{"volumes 2999 is outside [3000, 1200000]", "hours 97 is outside [1, 96]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if _, err := Run(Config{Volumes: 10, Hours: 1}, Naive); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Run with 10 volumes: %v", err)
	}
}

func TestRunIsDeterministic(t *testing.T) {
	cfg := Config{Seed: 3, Volumes: MinVolumes, Hours: 2}
	for _, m := range []Mode{Naive, Guarded} {
		a, err := Run(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(cfg, m)
		if !reflect.DeepEqual(a.Timeline, b.Timeline) || a.Events != b.Events {
			t.Errorf("%v: two runs of the same config differ", m)
		}
	}
}

// TestHealthyAfterIsMeasuredNotRounded: volumes cut off at the heal
// cannot be healthy at the very instant of the heal, so a run that had any
// reports a positive time to heal, to the event, not to the minute.
func TestHealthyAfterIsMeasuredNotRounded(t *testing.T) {
	// Six hours of background re-mirroring, which heals volumes of
	// another cause, must not move it.
	r, err := Run(Config{Seed: 1, Volumes: 60000, Hours: 6}, Guarded)
	if err != nil {
		t.Fatal(err)
	}
	if r.CutOffPct == 0 {
		t.Fatal("no volume was cut off at the heal")
	}
	if r.HealthyAfter <= 0 || r.HealthyAfter >= time.Minute {
		t.Errorf("guarded healthy %v after the heal with %.2f%% cut off; want a measured time in (0, 1m)", r.HealthyAfter, r.CutOffPct)
	}
}
