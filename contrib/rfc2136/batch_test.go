package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// writer is one concurrent Apply of TestConcurrentAppliesGetTheirOwnAnswers.
type writer struct {
	ep     int
	stale  bool // conditioned on a state the endpoint is no longer in
	ctx    int  // 0 live, 1 ended before the call, 2 cancelled during it
	delay  time.Duration
	expect dnsplan.Records
	write  dnsplan.Records
	err    error
}

// TestConcurrentAppliesGetTheirOwnAnswers: rounds of concurrent Applies
// on a real BIND, at MaxBatch 1, 2 and 64, to a few endpoints: some
// conditioned on the endpoint as read, some on a state it is no longer
// in (a stale generation, which would regress it, or a stale version),
// some whose context ends before the call or during it. Whatever
// UPDATEs they were batched in, every caller gets the answer of its own
// conditioned write: a stale one is refused (fence.ErrStale) and never
// lands; of the current ones at most one per endpoint succeeds, and if
// one succeeds the endpoint holds its write; a current one refused as
// stale means another landed; one whose context ended before its update
// was sent ("nothing was written") never lands; one whose context ended
// in flight may or may not have (and may land after its caller gave up:
// a write conditioned on the same state settles the endpoint). No
// generation regresses, and the zone, read over AXFR, holds exactly the
// model's records.
func TestConcurrentAppliesGetTheirOwnAnswers(t *testing.T) {
	s := bindtest.Start(t)
	var run atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		maxBatch := rapid.SampledFrom([]int{1, 2, 64}).Draw(rt, "maxBatch")
		p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret(), MaxBatch: maxBatch})
		require.NoError(rt, err)
		id := run.Add(1)
		const endpoints = 4
		name := func(i int) string { return fmt.Sprintf("r%d-%d.dnsplan.test", id, i) }
		model := make([]dnsplan.Records, endpoints)
		history := make([][]dnsplan.Records, endpoints) // earlier states
		rounds := rapid.IntRange(1, 3).Draw(rt, "rounds")
		for round := range rounds {
			ws := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) *writer {
				return &writer{
					ep:    rapid.IntRange(0, endpoints-1).Draw(rt, "ep"),
					stale: rapid.IntRange(0, 3).Draw(rt, "stale") == 0,
					ctx:   rapid.SampledFrom([]int{0, 0, 1, 2}).Draw(rt, "ctx"),
					delay: time.Duration(rapid.IntRange(0, 2000).Draw(rt, "delayµs")) * time.Microsecond,
				}
			}), 1, 12).Draw(rt, "writers")
			for k, w := range ws {
				cur := model[w.ep]
				w.expect = cur
				w.write.Generation = cur.Generation + 1 + fence.Token(k)
				if w.stale {
					if h := history[w.ep]; len(h) > 0 && rapid.Bool().Draw(rt, "older") {
						w.expect = h[rapid.IntRange(0, len(h)-1).Draw(rt, "which")]
						w.write.Generation = w.expect.Generation + 1 // no newer than cur
					} else {
						// Another write of the same generation.
						w.expect = dnsplan.Records{Generation: max(cur.Generation, 1), Version: strings.Repeat("0", 32)}
					}
				}
				w.write.Targets = []dnsplan.Target{{Addr: netip.AddrFrom4([4]byte{10, byte(id), byte(round), byte(k)}), Weight: uint32(k + 1)}}
			}
			var wg sync.WaitGroup
			for _, w := range ws {
				c, cancel := context.WithCancel(ctx)
				switch w.ctx {
				case 1:
					cancel()
				case 2:
					time.AfterFunc(w.delay, cancel)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer cancel()
					w.err = p.Apply(c, name(w.ep), w.expect, w.write)
				}()
			}
			wg.Wait()
			for ep := range endpoints {
				before := model[ep]
				after, err := p.Read(ctx, name(ep))
				require.NoError(rt, err)
				require.GreaterOrEqual(rt, after.Generation, before.Generation, "endpoint %d regressed", ep)
				var winner *writer
				landedOther := false
				for _, w := range ws {
					if w.ep != ep {
						continue
					}
					switch {
					case w.err == nil:
						require.False(rt, w.stale, "a stale write succeeded: %+v", w)
						require.Nil(rt, winner, "two writes conditioned on one state succeeded")
						winner = w
					case errors.Is(w.err, fence.ErrStale):
						if !w.stale && w.ctx == 0 {
							landedOther = true
						}
					case w.ctx != 0 && errors.Is(w.err, context.Canceled) && errors.Is(w.err, rfc2136.ErrTransient):
						if strings.Contains(w.err.Error(), "nothing was written") || w.ctx == 1 {
							require.NotEqual(rt, w.write.Targets, after.Targets, "an update never sent landed: %v", w.err)
						}
					default:
						rt.Fatalf("writer %+v: unexpected %v", w, w.err)
					}
					if w.stale {
						require.NotEqual(rt, w.write.Targets, after.Targets, "a stale write landed")
					}
				}
				inFlight := func(after dnsplan.Records) bool {
					for _, w := range ws {
						if w.ep == ep && !w.stale && w.ctx == 2 && w.err != nil && slices.Equal(w.write.Targets, after.Targets) && w.write.Generation == after.Generation {
							return true
						}
					}
					return false
				}
				plain := after
				plain.Version = ""
				switch {
				case winner != nil:
					require.Equal(rt, dnsplan.Records{Generation: winner.write.Generation, Targets: winner.write.Targets}, plain)
				case after.Version == before.Version:
					require.False(rt, landedOther, "a current write was refused, yet nothing landed")
					if !inFlightPending(ws, ep) {
						break
					}
					// An UPDATE whose caller gave up may still reach the
					// server: settle the endpoint with a write conditioned
					// on the same state, after which none of them can land.
					settle := dnsplan.Records{Generation: before.Generation + 100, Targets: []dnsplan.Target{{Addr: netip.AddrFrom4([4]byte{10, byte(id), byte(round), 200}), Weight: 1}}}
					err := p.Apply(ctx, name(ep), before, settle)
					if err != nil {
						require.ErrorIs(rt, err, fence.ErrStale)
					}
					after, err = p.Read(ctx, name(ep))
					require.NoError(rt, err)
					plain = after
					plain.Version = ""
					if err == nil && slices.Equal(plain.Targets, settle.Targets) {
						break
					}
					require.True(rt, inFlight(after), "endpoint %d holds %+v, which no Apply in flight wrote", ep, after)
				default:
					// An Apply whose context ended in flight landed.
					require.True(rt, inFlight(after), "endpoint %d holds %+v, which no Apply in flight wrote", ep, after)
				}
				if after.Version != before.Version && before.Generation != 0 {
					history[ep] = append(history[ep], before)
				}
				model[ep] = after
			}
			requireZone(rt, s, id, name, model)
		}
	})
}

// inFlightPending reports whether a current write to ep ended with its
// caller's context, and so may land later.
func inFlightPending(ws []*writer, ep int) bool {
	for _, w := range ws {
		if w.ep == ep && !w.stale && w.ctx == 2 && w.err != nil && !strings.Contains(w.err.Error(), "nothing was written") {
			return true
		}
	}
	return false
}

// requireZone requires that the zone, read over AXFR, holds exactly the
// model's addresses and generation TXT for the endpoints of run id.
func requireZone(t require.TestingT, s *bindtest.Server, id int64, name func(int) string, model []dnsplan.Records) {
	m := new(dns.Msg)
	m.SetAxfr(bindtest.Zone)
	m.SetTsig(bindtest.KeyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{bindtest.KeyName: s.Secret()}}
	ch, err := tr.In(m, s.Addr())
	require.NoError(t, err)
	var got []string
	suffix := fmt.Sprintf("r%d-", id)
	for env := range ch {
		require.NoError(t, env.Error)
		for _, rr := range env.RR {
			h := rr.Header()
			switch rr := rr.(type) {
			case *dns.A:
				if strings.HasPrefix(h.Name, suffix) {
					got = append(got, h.Name+" "+rr.A.String())
				}
			case *dns.TXT:
				if strings.HasPrefix(h.Name, "_dnsplan."+suffix) {
					got = append(got, h.Name+" "+strings.Join(rr.Txt, " "))
				}
			}
		}
	}
	var want []string
	for i, r := range model {
		if r.Generation == 0 {
			continue
		}
		for _, tg := range r.Targets {
			want = append(want, name(i)+". "+tg.Addr.String())
		}
		want = append(want, fmt.Sprintf("_dnsplan.%s. dnsplan-generation=%d dnsplan-version=%s", name(i), uint64(r.Generation), r.Version))
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got)
}
