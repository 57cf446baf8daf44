package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fakeRun returns a fleet whose prober saw the answers changes (kind at
// each offset) and whose run ended at end, with the events evs.
func fakeRun(mode string, end time.Duration, changes []change, evs ...event) *fleet {
	start := time.Unix(1000, 0)
	f := &fleet{mode: mode, start: start, cfg: config{qps: 100}}
	f.prober = newProber("", 100, start)
	f.prober.changes = changes
	for _, c := range changes {
		i := int(c.at / time.Second)
		for len(f.prober.seconds) <= i {
			f.prober.seconds = append(f.prober.seconds, second{})
		}
		f.prober.seconds[i].Queries++
		switch c.kind {
		case kindAddresses:
			f.prober.seconds[i].Addresses++
		case kindNoData:
			f.prober.seconds[i].NoData++
		default:
			f.prober.seconds[i].Errors++
		}
	}
	for _, ev := range evs {
		ev.T = start.Add(time.Duration(ev.T)).UnixNano()
		f.evs = append(f.evs, ev)
	}
	f.evs = append(f.evs, event{T: start.Add(end).UnixNano(), Who: "fleet", Kind: "end"})
	return f
}

// TestSummaryEmptyThenFailedQueries: a query that fails (a timeout on a
// loaded machine) is no answer: an endpoint empty from 5s whose last
// queries failed was still empty at the end, not "answered with
// addresses again".
func TestSummaryEmptyThenFailedQueries(t *testing.T) {
	f := fakeRun("2025", 15*time.Second, []change{
		{at: 2 * time.Second, kind: kindAddresses},
		{at: 5 * time.Second, kind: kindNoData},
		{at: 9 * time.Second, kind: kindError},
		{at: 10 * time.Second, kind: kindNoData},
		{at: 14900 * time.Millisecond, kind: kindError},
	})
	r := f.result()
	assert.True(t, r.EmptyAtEnd, "no answer with addresses after 5s")
	assert.Equal(t, 10.0, r.SecondsEmpty, "empty from 5s to the end at 15s")
	s := r.summary()
	assert.Contains(t, s, "first answered empty at 5.00s and was still empty when the run ended (10.0s empty in all)")
	assert.NotContains(t, s, "with addresses again")
}

// TestSummaryEmptyThenAddresses: an endpoint empty from 5s to 8s that
// then answers with addresses again (an error in between changes
// nothing) was empty 3s and not at the end.
func TestSummaryEmptyThenAddresses(t *testing.T) {
	f := fakeRun("2025", 15*time.Second, []change{
		{at: 2 * time.Second, kind: kindAddresses},
		{at: 5 * time.Second, kind: kindNoData},
		{at: 6 * time.Second, kind: kindError},
		{at: 8 * time.Second, kind: kindAddresses},
	})
	r := f.result()
	assert.False(t, r.EmptyAtEnd)
	assert.Equal(t, 3.0, r.SecondsEmpty)
	assert.Contains(t, r.summary(), "first answered empty at 5.00s and answered with addresses again by the end (3.0s empty in all)")
}

// TestSummaryStalledBStuck: when B stops on a missing live plan before
// its clean-up (a lagging 2025 pass), it never applied the plan the
// summary would name: the summary does not say "B had applied plan 0".
func TestSummaryStalledBStuck(t *testing.T) {
	f := fakeRun("2025", 15*time.Second, []change{{at: 2 * time.Second, kind: kindAddresses}},
		event{T: int64(3 * time.Second), Who: "A", Kind: "stalled", Endpoint: regional, Gen: 10, Have: 9},
		event{T: int64(4 * time.Second), Who: "B", Kind: "stuck", Endpoint: regional, Gen: 9, Have: 12},
		event{T: int64(4 * time.Second), Who: "fleet", Kind: "resume", Msg: "A", Gen: 10, Have: 9},
	)
	s := f.result().summary()
	assert.NotContains(t, s, "applied plan 0")
	assert.Contains(t, s, "A stalled with plan 10 and resumed when B had stopped on a missing live plan")
}

// TestFreePortsOutsideEphemeralRange: the servers' ports are never ones
// the kernel hands out to outgoing connections. etcd is stopped and
// started again on its ports; with ports from the ephemeral range, one
// of the many connections the fleet opens meanwhile (updates to BIND,
// clients reconnecting) could take one, and etcd would not start again.
func TestFreePortsOutsideEphemeralRange(t *testing.T) {
	lo, hi, ok := ephemeralRange()
	if !ok {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range")
	}
	for range 20 {
		ports, err := freePorts(3)
		if !assert.NoError(t, err) {
			return
		}
		assert.Len(t, ports, 3)
		seen := map[int]bool{}
		for _, p := range ports {
			assert.False(t, p >= lo && p <= hi, "port %d is in the ephemeral range [%d, %d]", p, lo, hi)
			assert.False(t, seen[p], "port %d twice", p)
			seen[p] = true
		}
	}
}
