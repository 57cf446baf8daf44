package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bindProvider returns a Provider for s with cfg's MaxBatch and
// MaxTargets.
func bindProvider(t *testing.T, s *bindtest.Server, cfg Config) *Provider {
	t.Helper()
	cfg.Server, cfg.Zone, cfg.KeyName, cfg.Secret = s.Addr(), bindtest.Zone, bindtest.KeyName, s.Secret()
	p, err := New(cfg)
	require.NoError(t, err)
	return p
}

// serial returns the zone's SOA serial: one more for every UPDATE
// applied.
func serial(t *testing.T, s *bindtest.Server) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(bindtest.Zone, dns.TypeSOA)
	r, err := dns.Exchange(m, s.Addr())
	require.NoError(t, err)
	require.Len(t, r.Answer, 1)
	return r.Answer[0].(*dns.SOA).Serial
}

// together makes the Applies that apply starts go in the fewest UPDATEs
// p's bounds allow: it marks p's queue as being sent, starts n calls of
// apply, waits until all n wait in the queue, and sends them. It returns
// their answers by call.
func together(t *testing.T, p *Provider, n int, apply func(i int) error) []error {
	t.Helper()
	p.batch.mu.Lock()
	require.False(t, p.batch.running)
	p.batch.running = true
	p.batch.mu.Unlock()
	errs := make([]chan error, n)
	for i := range n {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- apply(i) }()
	}
	waitQueued(t, p, n)
	go p.flush()
	out := make([]error, n)
	for i := range n {
		out[i] = <-errs[i]
	}
	return out
}

// TestRefusedBatchAppliesTheOthers: six Applies in one UPDATE, two of
// them conditioned on what the endpoint no longer is (a version written
// over, a generation written over): the server refuses the UPDATE, and
// each member is sent again alone, so the four current ones are applied
// and the two stale ones get the answers their own Applies would (a
// *dnsplan.VersionConflictError, a *fence.StaleError with the generation
// found), their endpoints unchanged. With all six current, one UPDATE
// applies them all.
func TestRefusedBatchAppliesTheOthers(t *testing.T) {
	s := bindtest.Start(t)
	p := bindProvider(t, s, Config{})
	const n = 6
	cur := make([]dnsplan.Records, n)
	for i := range n {
		require.NoError(t, p.Apply(context.Background(), epName(i), dnsplan.Records{}, recs(i)))
		var err error
		cur[i], err = p.Read(context.Background(), epName(i))
		require.NoError(t, err)
	}
	next := func(i, g int) dnsplan.Records {
		return dnsplan.Records{Generation: fence.Token(g), Targets: []dnsplan.Target{{Addr: netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i)}), Weight: 1}}}
	}

	before := serial(t, s)
	stale := map[int]dnsplan.Records{
		2: {Generation: cur[2].Generation, Version: newVersion()}, // another write of generation 1
		4: {},                                                     // never written
	}
	errs := together(t, p, n, func(i int) error {
		expect, ok := stale[i]
		if !ok {
			expect = cur[i]
		}
		return p.Apply(context.Background(), epName(i), expect, next(i, 2))
	})
	var vc *dnsplan.VersionConflictError
	require.ErrorAs(t, errs[2], &vc)
	assert.Equal(t, cur[2].Version, vc.Have)
	var se *fence.StaleError
	require.ErrorAs(t, errs[4], &se)
	assert.Equal(t, cur[4].Generation, se.Have)
	for i := range n {
		got, err := p.Read(context.Background(), epName(i))
		require.NoError(t, err)
		if _, ok := stale[i]; ok {
			assert.Equal(t, cur[i], got, "endpoint %d, refused, is unchanged", i)
			continue
		}
		require.NoError(t, errs[i], "endpoint %d", i)
		assert.Equal(t, next(i, 2).Targets, got.Targets)
		assert.Equal(t, fence.Token(2), got.Generation)
		cur[i] = got
	}
	assert.Equal(t, before+n-2, serial(t, s), "the batch applied nothing; each current member alone, once")

	before = serial(t, s)
	errs = together(t, p, n, func(i int) error { return p.Apply(context.Background(), epName(i), cur[i], next(i, 3)) })
	for i := range n {
		require.NoError(t, errs[i])
	}
	assert.Equal(t, before+1, serial(t, s), "six current Applies, one UPDATE")
}

// TestOversizedBatchIsSplit: Applies whose UPDATEs together exceed
// maxBatchBytes — endpoints of 64 IPv6 targets, about 5 KB of UPDATE
// each — go in several UPDATEs, each within the bounds (a DNS message
// holds 64 KiB); every one is applied and reads back. (An UPDATE larger
// than maxBatchBytes alone is sent alone: TestTakeBoundsBatches. BIND
// 9.18 refuses more than 100 records of one type at a name by default,
// max-records-per-type, so no larger endpoint can be written here.)
func TestOversizedBatchIsSplit(t *testing.T) {
	s := bindtest.Start(t)
	p := bindProvider(t, s, Config{})
	const n = 12
	targets := func(i, k int) []dnsplan.Target {
		out := make([]dnsplan.Target, k)
		for j := range k {
			a := netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:%x:ffff:%x", 0xf000+i, 0xf000+j))
			out[j] = dnsplan.Target{Addr: a, Weight: 4_000_000_000 - uint32(j)}
		}
		return out
	}
	want := make([]dnsplan.Records, n)
	for i := range n {
		want[i] = dnsplan.Records{Generation: 1, Targets: targets(i, dnsplan.DefaultMaxTargets)}
		dnsplan.SortTargets(want[i].Targets)
	}
	before := serial(t, s)
	errs := together(t, p, n, func(i int) error {
		return p.Apply(context.Background(), epName(i), dnsplan.Records{}, want[i])
	})
	for i := range n {
		require.NoError(t, errs[i], "endpoint %d", i)
		got, err := p.Read(context.Background(), epName(i))
		require.NoError(t, err)
		assert.Equal(t, want[i].Targets, got.Targets, "endpoint %d", i)
	}
	updates := serial(t, s) - before
	t.Logf("%d Applies in %d UPDATEs", n, updates)
	assert.Greater(t, updates, uint32(1), "more than one UPDATE")
	assert.Less(t, updates, uint32(n), "batched")
}

// TestMaxBatchOneSendsEachAlone: with MaxBatch 1 every Apply is an
// UPDATE of its own, even when many arrive at once, and each gets its
// own answer.
func TestMaxBatchOneSendsEachAlone(t *testing.T) {
	s := bindtest.Start(t)
	p := bindProvider(t, s, Config{MaxBatch: 1})
	const n = 8
	before := serial(t, s)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			expect := dnsplan.Records{}
			if i == 3 {
				expect = dnsplan.Records{Generation: 7, Version: newVersion()}
			}
			errs <- p.Apply(context.Background(), epName(i), expect, recs(i))
		}()
	}
	stale := 0
	for range n {
		if err := <-errs; err != nil {
			require.True(t, errors.Is(err, fence.ErrStale), "%v", err)
			stale++
		}
	}
	assert.Equal(t, 1, stale)
	assert.Equal(t, before+n-1, serial(t, s))
	assert.Zero(t, queuedCalls(p))
	p.batch.mu.Lock()
	assert.False(t, p.batch.running, "MaxBatch 1 never queues")
	p.batch.mu.Unlock()
}
