package ebssim

import (
	"errors"
	"reflect"
	"strings"
	"testing"
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
