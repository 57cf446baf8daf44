package stormotel

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/stormguard/stormguard/shed"
)

// TestReview2KeyRemadeWithFewerAdmittedMoreShed: a Partition key forgotten
// and made again between two collections (never seen absent), whose new
// state has admitted fewer than the old one but refused more, so that its
// total did not fall, is a reset: admitted goes on from the old value and
// adds the new key's admissions. (A grant revoked moves a count from
// admitted to cancelled or deadline only; a refusal for a full key cannot
// absorb a fall of admitted.)
func TestReview2KeyRemadeWithFewerAdmittedMoreShed(t *testing.T) {
	m, r := newMeter(t)
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 8, PerKey: 2, MaxKeys: 1}))
	must[*Registration](t)(RegisterPartition(m, "zones", p, []string{"a"}))
	prefix := shedPrefix(kindPartitionKey)
	at := enc(attribute.NewSet(name("zones"), key("a")))
	for range 10 {
		if !p.TryAcquire("a") {
			t.Fatal("a refused")
		}
		p.Release("a")
	}
	if v := collect(t, r)[prefix+".admitted"][at].value; v != 10 {
		t.Fatalf("admitted %v, want 10", v)
	}
	if !p.TryAcquire("b") { // MaxKeys 1: "a" is forgotten
		t.Fatal("b refused")
	}
	p.Release("b")
	if _, ok := p.StatsFor("a"); ok {
		t.Fatal("a still tracked")
	}
	// "a" again: 2 admitted and held, then 15 refused as the key is full.
	for range 2 {
		if !p.TryAcquire("a") {
			t.Fatal("a refused")
		}
	}
	for range 15 {
		if p.TryAcquire("a") {
			t.Fatal("a admitted past PerKey")
		}
	}
	s, _ := p.StatsFor("a")
	if s.Admitted != 2 || s.Shed.Total() != 15 {
		t.Fatalf("a's new stats %+v, want 2 admitted and 15 refused", s)
	}
	got := collect(t, r)
	if v := got[prefix+".admitted"][at].value; v != 10+2 {
		t.Errorf("admitted %v after the key was made again with 2, want %d (the old 10 and the new 2)", v, 10+2)
	}
	var shedSum float64
	for k, pt := range got[prefix+".shed"] {
		if len(k) > 0 && pt.counter {
			shedSum += pt.value
		}
	}
	if shedSum != 15 {
		t.Errorf("shed %v, want 15", shedSum)
	}
}

// TestReview2AdaptiveCountersSteady: an adaptive limit's counters only
// grow on one object, so a key's adaptive limit made again between two
// collections with fewer admissions but more refusals (its total grew) is
// a reset: admitted goes on from its old value.
func TestReview2AdaptiveCountersSteady(t *testing.T) {
	m, r := newMeter(t)
	cur := shed.AdaptiveStats{Admitted: 10, Samples: 10, Windows: 1}
	p := &two{} // the Partition: one id for the key throughout
	must[*Registration](t)(register(m, kindPartition, "zones", []source[shed.AdaptiveStats]{
		{attrs: []attribute.KeyValue{key("a")}, table: adaptiveTable, get: func() (shed.AdaptiveStats, any, bool) { return cur, p, true }}}))
	at := enc(attribute.NewSet(name("zones"), key("a")))
	if v := collect(t, r)[adaptivePrefix+".admitted"][at].value; v != 10 {
		t.Fatalf("admitted %v, want 10", v)
	}
	cur = shed.AdaptiveStats{Admitted: 2, Refused: 30, Samples: 2}
	got := collect(t, r)
	if v := got[adaptivePrefix+".admitted"][at].value; v != 12 {
		t.Errorf("admitted %v after the limit was made again with 2, want 12", v)
	}
	if v := got[adaptivePrefix+".samples"][at].value; v != 12 {
		t.Errorf("samples %v, want 12", v)
	}
	if v := got[adaptivePrefix+".windows"][at].value; v != 1 {
		t.Errorf("windows %v, want 1", v)
	}
}

// TestReview2NoNameIsANamespace: OpenTelemetry's naming rules say a
// metric's name must not also be the namespace of another metric's name
// (no "a.b" beside "a.b.c"): some backends map both to one path.
func TestReview2NoNameIsANamespace(t *testing.T) {
	names := map[string]bool{}
	for _, in := range instruments {
		names[in.name] = true
	}
	for n := range names {
		for i := range len(n) {
			if n[i] == '.' && names[n[:i]] {
				t.Errorf("%s is a metric and the namespace of %s", n[:i], n)
			}
		}
	}
}
