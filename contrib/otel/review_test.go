package stormotel

import (
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/shed"
)

// TestReviewForgottenKeyCountsFromZero: a Partition key forgotten (seen
// absent by a collection) and made again counts from zero; its series
// goes on from the last value reported and adds everything the new key
// counts, even when the new key has counted more than the old one by the
// next collection (no "went backwards" to see).
func TestReviewForgottenKeyCountsFromZero(t *testing.T) {
	m, r := newMeter(t)
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 4, PerKey: 4, MaxKeys: 1}))
	must[*Registration](t)(RegisterPartition(m, "zones", p, []string{"a"}))
	use := func(k string, n int) {
		for range n {
			if !p.TryAcquire(k) {
				t.Fatalf("%s refused", k)
			}
			p.Release(k)
		}
	}
	metric := shedPrefix(kindPartitionKey) + ".admitted"
	at := enc(attribute.NewSet(name("zones"), key("a")))
	use("a", 5)
	if v := collect(t, r)[metric][at].value; v != 5 {
		t.Fatalf("admitted %v, want 5", v)
	}
	use("b", 1) // MaxKeys 1: "a" is forgotten
	if _, ok := p.StatsFor("a"); ok {
		t.Fatal("a still tracked")
	}
	if _, ok := collect(t, r)[metric][at]; ok {
		t.Fatal("a reported while forgotten")
	}
	use("a", 7) // made again, from zero, and past 5
	if v := collect(t, r)[metric][at].value; v != 5+7 {
		t.Errorf("admitted %v after the key was forgotten and made again, want %d", v, 5+7)
	}
}

// TestReviewFarFutureTime: a breaker whose OpenWait reaches past 2262
// (where UnixNano overflows) reports its next probe in the future, at the
// right second, not at a wrapped negative time.
func TestReviewFarFutureTime(t *testing.T) {
	m, r := newMeter(t)
	br := must[*backoff.Breaker](t)(backoff.NewBreaker(backoff.BreakerConfig{WindowCalls: 1, MinCalls: 1,
		OpenWait: math.MaxInt64}))
	must[*Registration](t)(m.RegisterBreaker("far", br))
	if tk, err := br.Allow(); err == nil {
		br.Record(tk, errors.New("boom"))
	}
	s := br.Stats()
	if s.State != backoff.BreakerOpen {
		t.Fatalf("state %v, want open", s.State)
	}
	want := float64(s.NextProbe.Unix())
	got := collect(t, r)[breakerPrefix+".next_probe.time"][enc(attribute.NewSet(name("far")))].value
	if math.Abs(got-want) > 1 {
		t.Errorf("next_probe.time %v, want %v (%v)", got, want, s.NextProbe)
	}
}

// TestReviewKeyStartingWithPercentBang: a key whose own text starts with
// "%!" formats fine and is accepted; only a key whose formatting panicked
// is refused.
func TestReviewKeyStartingWithPercentBang(t *testing.T) {
	m, _ := newMeter(t)
	p := must[*shed.Partition[string]](t)(shed.NewPartition(shed.PartitionConfig[string]{Total: 4}))
	if _, err := RegisterPartition(m, "odd", p, []string{"%!weird", "100%"}); err != nil {
		t.Errorf("keys that format fine refused: %v", err)
	}
}

// TestReviewSemconvInstruments: the instruments follow the semantic
// conventions' choices. A current count of things present (calls in
// flight or waiting, volumes, keys) is additive, so it is an
// UpDownCounter, not a gauge (a sum over queues or keys means something;
// and it can fall, so it is no counter). The unit "1" is for ratios only:
// the Prometheus exporter appends "_ratio" to such names, so a ratio is
// named as one (no "failure_rate_ratio"), and a quantity that is no ratio
// (remirror's free capacity) has a unit of its own.
func TestReviewSemconvInstruments(t *testing.T) {
	updown := regexp.MustCompile(`\.(inflight|waiting|probes|keys|attempts\.queued|volumes(\.[a-z]+)?|outstanding|quarantined)$`)
	ratio := regexp.MustCompile(`(ratio|utilization|probability)$`)
	for _, in := range instruments {
		if in.kind == counterInt && updown.MatchString(in.name) {
			t.Errorf("%s: a current count is no counter", in.name)
		}
		if in.kind != counterInt && updown.MatchString(in.name) && in.kind != upDownInt {
			t.Errorf("%s: %v, want %v (an additive current count)", in.name, in.kind, upDownInt)
		}
		if in.unit == "1" && !ratio.MatchString(in.name) {
			t.Errorf("%s: unit 1 on a name that is no ratio (Prometheus: %s_ratio)", in.name, strings.ReplaceAll(in.name, ".", "_"))
		}
		if strings.HasSuffix(in.name, "total") || strings.HasSuffix(in.name, "count") && in.kind == counterInt {
			t.Errorf("%s: a counter's name ends in total or count", in.name)
		}
	}
}
