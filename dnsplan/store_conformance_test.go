package dnsplan_test

import (
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
)

// TestConformanceMemoryStore: MemoryStore keeps every promise of Store and
// Watcher.
func TestConformanceMemoryStore(t *testing.T) {
	dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store {
		s, err := dnsplan.NewMemoryStore(dnsplan.MemoryStoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceZeroMemoryStore: so does the zero MemoryStore.
func TestConformanceZeroMemoryStore(t *testing.T) {
	dnsplantest.TestStore(t, func(*testing.T) dnsplan.Store { return new(dnsplan.MemoryStore) })
}
