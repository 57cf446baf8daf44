package fencetest_test

import (
	"testing"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/fence/fencetest"
	"github.com/stormguard/stormguard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestConformance is the package comment's code, run: fence.Memory keeps
// every promise of fence.Store.
func TestConformance(t *testing.T) {
	fencetest.TestStore(t, func(t *testing.T) fence.Store {
		return &fence.Memory{} // your Store: a new, empty one on each call
	})
}
