package dnsplantest_test

import (
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	"github.com/stormguard/stormguard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestConformance is the package comment's code, run: dnsplan.MemoryStore
// keeps every promise of dnsplan.Store and dnsplan.Watcher.
func TestConformance(t *testing.T) {
	dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store {
		return new(dnsplan.MemoryStore) // yours: empty, with the default Limits
	})
}
