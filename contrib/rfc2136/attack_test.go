package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// targetsOf returns the targets written with generation g in the tests
// below: a number of IPv4 and IPv6 targets, and weights, that all depend
// on g, so that a read mixing two writes is told from either.
func targetsOf(g fence.Token) []dnsplan.Target {
	var ts []dnsplan.Target
	for i := range 1 + int(g%5) {
		ts = append(ts, tg(fmt.Sprintf("10.%d.%d.%d", uint64(g)%250, i, 1+uint64(g)%7), uint32(uint64(g)%1000)+uint32(i)+1))
	}
	for i := range int(g % 3) {
		ts = append(ts, tg(fmt.Sprintf("2001:db8::%x:%x", uint64(g)%0xffff, i), uint32(i)+1))
	}
	dnsplan.SortTargets(ts)
	return ts
}

// TestConcurrentAppliesOnBind: in each round, writers condition on the
// same read at once — some of its generation (a rewrite), some of a newer
// one, one of the largest — and BIND lets exactly one through; every
// other gets a refusal matching fence.ErrStale (a *VersionConflictError
// if it wrote the generation found), and the endpoint then reads as the
// winner's write, exactly.
func TestConcurrentAppliesOnBind(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: targetsOf(1)}))
	for round := range 3 {
		cur, err := p.Read(ctx, api)
		require.NoError(t, err)
		const writers = 12
		gens := make([]fence.Token, writers)
		errs := make([]error, writers)
		for i := range gens {
			switch {
			case i%3 == 0:
				gens[i] = cur.Generation // a rewrite of the generation read
			case i == writers-1:
				gens[i] = math.MaxUint64 - fence.Token(round)
			default:
				gens[i] = fence.Token(100*(round+1) + i)
			}
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Writer i's targets differ from every other's, even at
				// the same generation.
				ts := append(targetsOf(gens[i]), tg(fmt.Sprintf("192.0.2.%d", i+1), uint32(i+1)))
				errs[i] = p.Apply(ctx, api, cur, dnsplan.Records{Generation: gens[i], Targets: ts})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: writers %d and %d both won", round, winner, i)
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "round %d: nobody won: %v", round, errs)
		got, err := p.Read(ctx, api)
		require.NoError(t, err)
		want := append(targetsOf(gens[winner]), tg(fmt.Sprintf("192.0.2.%d", winner+1), uint32(winner+1)))
		dnsplan.SortTargets(want)
		assert.Equal(t, want, got.Targets, "round %d", round)
		assert.Equal(t, gens[winner], got.Generation)
		assert.NotEqual(t, cur.Version, got.Version)
		for i, err := range errs {
			if i == winner {
				continue
			}
			require.ErrorIs(t, err, fence.ErrStale, "round %d writer %d", round, i)
			assert.NotErrorIs(t, err, rfc2136.ErrTransient)
			var stale *fence.StaleError
			require.ErrorAs(t, err, &stale)
			assert.Equal(t, got.Generation, stale.Have, "the refusal names the generation found")
			assert.Equal(t, cur.Generation, stale.Want)
			var conflict *dnsplan.VersionConflictError
			if got.Generation == cur.Generation {
				require.ErrorAs(t, err, &conflict)
				assert.Equal(t, got.Version, conflict.Have)
				assert.Equal(t, cur.Version, conflict.Want)
			}
		}
	}
}

// TestReadIsNeverTorn: reads racing a stream of writes each return one
// write whole — the targets and weights written with the generation
// read — or a transient error, never a mix.
func TestReadIsNeverTorn(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	var done atomic.Bool
	var wg sync.WaitGroup
	var reads, torn atomic.Int32
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				rec, err := p.Read(ctx, api)
				if err != nil {
					// Torn by a write (fence.ErrContended), or a timeout
					// on a loaded machine: transient either way.
					if !assert.ErrorIs(t, err, rfc2136.ErrTransient) {
						return
					}
					torn.Add(1)
					continue
				}
				reads.Add(1)
				if rec.Generation == 0 {
					assert.Empty(t, rec.Targets)
					continue
				}
				assert.Equal(t, targetsOf(rec.Generation), rec.Targets, "generation %d", rec.Generation)
			}
		}()
	}
	var expect dnsplan.Records
	for g := fence.Token(1); g <= 60; g++ {
		require.NoError(t, p.Apply(ctx, api, expect, dnsplan.Records{Generation: g, Targets: targetsOf(g)}))
		var err error
		expect, err = p.Read(ctx, api)
		require.NoError(t, err)
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d whole reads, %d torn ones refused", reads.Load(), torn.Load())
}

// TestOperatorEditsBetweenReadAndApply: an operator edits the zone
// between an enactor's Read and its Apply. An address added by hand is
// replaced with the rest (Apply owns the whole A RRset); a generation
// TXT deleted, doubled, or rewritten in another spelling fails the
// condition, and nothing is written.
func TestOperatorEditsBetweenReadAndApply(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	gen := "_dnsplan." + api + "."
	next := dnsplan.Records{Generation: 9, Targets: targetsOf(9)}
	for _, tc := range []struct {
		name           string
		remove, insert func(cur dnsplan.Records) []string
		check          func(t *testing.T, err error)
	}{
		{
			name:   "address added",
			insert: func(dnsplan.Records) []string { return []string{api + ". 30 IN A 203.0.113.7"} },
			check:  func(t *testing.T, err error) { require.NoError(t, err) },
		},
		{
			name:   "generation deleted",
			remove: func(dnsplan.Records) []string { return []string{gen + " 0 IN TXT \"\""} },
			check: func(t *testing.T, err error) {
				var stale *fence.StaleError
				require.ErrorAs(t, err, &stale)
				assert.Equal(t, fence.Token(0), stale.Have)
			},
		},
		{
			name:   "second generation",
			insert: func(cur dnsplan.Records) []string { return []string{gen + ` 30 IN TXT "dnsplan-generation=1000"`} },
			check: func(t *testing.T, err error) {
				require.ErrorIs(t, err, rfc2136.ErrCorrupt)
				assert.Contains(t, err.Error(), "2 TXT records")
			},
		},
		{
			name:   "generation in capitals",
			remove: func(dnsplan.Records) []string { return []string{gen + " 0 IN TXT \"\""} },
			insert: func(cur dnsplan.Records) []string {
				return []string{fmt.Sprintf(`%s 30 IN TXT "DNSPLAN-GENERATION=%d" "DNSPLAN-VERSION=%s"`, gen, cur.Generation, strings.ToUpper(cur.Version))}
			},
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, rfc2136.ErrCorrupt) },
		},
		{
			name:   "generation as one string",
			remove: func(dnsplan.Records) []string { return []string{gen + " 0 IN TXT \"\""} },
			insert: func(cur dnsplan.Records) []string {
				return []string{fmt.Sprintf(`%s 30 IN TXT "dnsplan-generation=%d dnsplan-version=%s"`, gen, cur.Generation, cur.Version)}
			},
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, rfc2136.ErrCorrupt) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A clean endpoint, written through the provider.
			operator(t, s, []string{gen + " 0 IN TXT \"\"", api + ". 0 IN A 0.0.0.0"}, nil)
			require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 8, Targets: targetsOf(8)}))
			cur, err := p.Read(ctx, api)
			require.NoError(t, err)
			var remove, insert []string
			if tc.remove != nil {
				remove = tc.remove(cur)
			}
			if tc.insert != nil {
				insert = tc.insert(cur)
			}
			operator(t, s, remove, insert)
			before := zone(t, s)
			err = p.Apply(ctx, api, cur, next)
			tc.check(t, err)
			if err != nil {
				assert.Equal(t, before, zone(t, s), "a refused update writes nothing")
				return
			}
			got, err := p.Read(ctx, api)
			require.NoError(t, err)
			assert.Equal(t, next.Targets, got.Targets, "the hand-made address is replaced with the rest")
		})
	}
}

// TestGenerationExtremes: the largest generation round-trips; a
// generation TXT naming generation 0 with a version, or with spaces or a
// sign, is corrupt.
func TestGenerationExtremes(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	max := dnsplan.Records{Generation: math.MaxUint64, Targets: targetsOf(7)}
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, max))
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, max.Generation, rec.Generation)
	assert.Equal(t, max.Targets, rec.Targets)
	require.NoError(t, p.Apply(ctx, api, rec, max), "a rewrite of the largest generation")

	v := strings.Repeat("0", 32)
	for _, bad := range []string{
		`"dnsplan-generation=0" "dnsplan-version=` + v + `"`,
		`"dnsplan-generation= 5" "dnsplan-version=` + v + `"`,
		`"dnsplan-generation=5 " "dnsplan-version=` + v + `"`,
		`"dnsplan-generation=+5" "dnsplan-version=` + v + `"`,
		`"dnsplan-generation=18446744073709551616" "dnsplan-version=` + v + `"`,
		`"dnsplan-generation=5" "dnsplan-version= ` + v + `"`,
		`"dnsplan-generation=5" "dnsplan-version=` + v + `" ""`,
		`"dnsplan-generation=5" ""`,
	} {
		operator(t, s, []string{"_dnsplan.api.dnsplan.test. 0 IN TXT \"\""}, []string{"_dnsplan.api.dnsplan.test. 30 IN TXT " + bad})
		rec, err := p.Read(ctx, api)
		assert.ErrorIs(t, err, rfc2136.ErrCorrupt, bad)
		assert.NotErrorIs(t, err, dnsplan.ErrCorruptRecords, bad)
		assert.Equal(t, dnsplan.Records{}, rec, bad)
	}
}

// TestAmbiguousWeightsAreCorrupt: a weights TXT that names an address
// twice, or spells an address or weight otherwise than Apply writes it,
// does not say what the endpoint's weights are: Read reports it as
// repairable damage rather than picking one, so that an Enactor rewrites
// it instead of taking the endpoint as current.
func TestAmbiguousWeightsAreCorrupt(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	want := dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg("10.0.0.1", 5), tg("2001:db8::1", 3)}}
	w := "_dnsplan-weights.api.dnsplan.test."
	for _, bad := range []string{
		`"10.0.0.1=3" "10.0.0.1=5" "2001:db8::1=3"`,        // the same address twice, the current weight last
		`"10.0.0.1=5" "2001:db8::1=3" "2001:DB8::1=3"`,     // the same address in two spellings
		`"10.0.0.1=5" "2001:db8:0::1=3"`,                   // an address spelled otherwise
		`"10.0.0.1=05" "2001:db8::1=3"`,                    // a weight spelled otherwise
		`"10.0.0.1=5" "2001:db8::1=3" "::ffff:10.0.0.1=5"`, // IPv4-mapped
		`"10.0.0.1=5" "2001:db8::1%eth0=3"`,                // a zone
	} {
		require.NoError(t, p.Apply(ctx, api, func() dnsplan.Records { r, _ := p.Read(ctx, api); return r }(), want))
		good, err := p.Read(ctx, api)
		require.NoError(t, err)
		operator(t, s, []string{w + " 0 IN TXT \"\""}, []string{w + " 30 IN TXT " + bad})
		rec, err := p.Read(ctx, api)
		require.ErrorIs(t, err, dnsplan.ErrCorruptRecords, bad)
		require.ErrorIs(t, err, rfc2136.ErrCorrupt, bad)
		assert.Equal(t, dnsplan.Records{Generation: 7, Version: good.Version}, rec, bad)
	}
}

// TestEndedContextIsNoIO: a context cancelled or past its deadline
// fails Read and Apply with the context's error, which matches
// ErrTransient, and nothing is sent.
func TestEndedContextIsNoIO(t *testing.T) {
	var received atomic.Int32
	addr := fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
		received.Add(1)
		r := new(dns.Msg)
		r.SetRcode(m, dns.RcodeRefused)
		_ = w.WriteMsg(r)
	})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	past, cancel2 := context.WithDeadline(ctx, time.Unix(0, 0))
	defer cancel2()
	r := dnsplan.Records{Generation: 1, Targets: targetsOf(1)}
	for _, network := range []string{"udp", "tcp"} {
		p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone, Net: network})
		require.NoError(t, err)
		for _, c := range []struct {
			ctx  context.Context
			want error
		}{{cancelled, context.Canceled}, {past, context.DeadlineExceeded}} {
			rec, err := p.Read(c.ctx, api)
			assert.ErrorIs(t, err, c.want, network)
			assert.ErrorIs(t, err, rfc2136.ErrTransient, network)
			assert.Equal(t, dnsplan.Records{}, rec)
			err = p.Apply(c.ctx, api, dnsplan.Records{}, r)
			assert.ErrorIs(t, err, c.want, network)
			assert.ErrorIs(t, err, rfc2136.ErrTransient, network)
		}
	}
	assert.Zero(t, received.Load(), "messages the server received")
}

// TestUnsignedAnswerIsNotTrusted: with a TSIG key configured, an answer
// without a TSIG signature — forged, or from a server that ignores the
// key — is never taken as the server's word: an UPDATE it "accepts" is
// not reported applied, and records it "holds" are not read.
func TestUnsignedAnswerIsNotTrusted(t *testing.T) {
	addr := fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(m)
		r.Authoritative = true
		if m.Opcode == dns.OpcodeQuery && m.Question[0].Qtype == dns.TypeTXT && strings.HasPrefix(m.Question[0].Name, "_dnsplan.") {
			r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 30}, Txt: []string{"dnsplan-generation=3"}})
		}
		_ = w.WriteMsg(r)
	})
	for _, network := range []string{"udp", "tcp"} {
		p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone, Net: network, KeyName: bindtest.KeyName, Secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="})
		require.NoError(t, err)
		err = p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: targetsOf(1)})
		require.ErrorIs(t, err, rfc2136.ErrServer, network)
		assert.Contains(t, err.Error(), "not signed")
		rec, err := p.Read(ctx, api)
		require.ErrorIs(t, err, rfc2136.ErrServer, network)
		assert.Contains(t, err.Error(), "not signed")
		assert.Equal(t, dnsplan.Records{}, rec)
	}
}

// TestAnswerToAnotherQuestionIsRefused: an answer whose question is not
// the one asked (a confused server, a stray answer, a forgery) is an
// error, never read as "no such records" or "update applied".
func TestAnswerToAnotherQuestionIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(q *dns.Question)
	}{
		{"name", func(q *dns.Question) { q.Name = "other." + q.Name }},
		{"type", func(q *dns.Question) { q.Qtype = dns.TypeMX }},
		{"class", func(q *dns.Question) { q.Qclass = dns.ClassCHAOS }},
		{"none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
				r := new(dns.Msg)
				r.SetReply(m)
				r.Authoritative = true
				if tc.mangle == nil {
					r.Question = nil
				} else {
					tc.mangle(&r.Question[0])
				}
				_ = w.WriteMsg(r)
			})
			for _, network := range []string{"udp", "tcp"} {
				p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone, Net: network})
				require.NoError(t, err)
				rec, err := p.Read(ctx, api)
				require.ErrorIs(t, err, rfc2136.ErrServer, network)
				assert.Contains(t, err.Error(), "question")
				assert.Equal(t, dnsplan.Records{}, rec)
				err = p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: targetsOf(1)})
				require.ErrorIs(t, err, rfc2136.ErrServer, network)
				assert.Contains(t, err.Error(), "question")
			}
		})
	}
}

// TestWildcardCheckServfailIsTransient: when the UPDATE that tells a
// wildcard CNAME from a real one fails with SERVFAIL, the CNAME is not
// declared a foreign record at the name (permanent, for an operator):
// the failure is the SERVFAIL, transient.
func TestWildcardCheckServfailIsTransient(t *testing.T) {
	addr := fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		if m.Opcode == dns.OpcodeUpdate {
			r.SetRcode(m, dns.RcodeServerFailure)
			_ = w.WriteMsg(r)
			return
		}
		r.SetReply(m)
		r.Authoritative = true
		r.Answer = append(r.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 30}, Target: "lb.elsewhere.example."})
		_ = w.WriteMsg(r)
	})
	p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone})
	require.NoError(t, err)
	_, err = p.Read(ctx, api)
	require.ErrorIs(t, err, rfc2136.ErrTransient)
	assert.NotErrorIs(t, err, dnsplan.ErrNameInUse)
	assert.Contains(t, err.Error(), "SERVFAIL")
}

// TestLongestNamesBothFamilies: the longest endpoint name whose metadata
// names still fit, with the most targets of both families, round-trips;
// one byte longer is refused before any I/O.
func TestLongestNamesBothFamilies(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	// "_dnsplan-weights." + endpoint + "." must be at most 254 bytes.
	long := func(last int) string {
		return strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", last) + "." + strings.TrimSuffix(bindtest.Zone, ".")
	}
	ep := long(31)
	require.Len(t, "_dnsplan-weights."+ep+".", 254)
	var ts []dnsplan.Target
	for i := range dnsplan.DefaultMaxTargets {
		if i%2 == 0 {
			ts = append(ts, dnsplan.Target{Addr: netip.AddrFrom4([4]byte{10, 255, byte(i), 255}), Weight: math.MaxUint32 - uint32(i)})
		} else {
			ts = append(ts, dnsplan.Target{Addr: netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:ffff:%x", 0xff00+i)), Weight: math.MaxUint32})
		}
	}
	dnsplan.SortTargets(ts)
	want := dnsplan.Records{Generation: math.MaxUint64, Targets: ts}
	require.NoError(t, p.Apply(ctx, ep, dnsplan.Records{}, want))
	rec, err := p.Read(ctx, ep)
	require.NoError(t, err)
	assert.Equal(t, want.Targets, rec.Targets)
	assert.Equal(t, want.Generation, rec.Generation)

	longer := long(32)
	_, err = p.Read(ctx, longer)
	assert.ErrorIs(t, err, rfc2136.ErrInvalidName)
	assert.ErrorIs(t, p.Apply(ctx, longer, dnsplan.Records{}, want), rfc2136.ErrInvalidName)
}

// TestTTLAboveRFC2181IsInvalid: a TTL with its top bit set is read as 0
// by resolvers (RFC 2181 §8), though BIND stores and serves it: New
// refuses it instead of writing records no resolver caches as asked.
func TestTTLAboveRFC2181IsInvalid(t *testing.T) {
	for _, ttl := range []uint32{math.MaxInt32 + 1, math.MaxUint32} {
		_, err := rfc2136.New(rfc2136.Config{Server: "127.0.0.1:53", Zone: bindtest.Zone, TTL: ttl})
		require.ErrorIs(t, err, rfc2136.ErrInvalidConfig, "TTL %d", ttl)
		assert.Contains(t, err.Error(), fmt.Sprintf("Config.TTL %d", ttl))
		assert.Contains(t, err.Error(), "2147483647")
	}
	_, err := rfc2136.New(rfc2136.Config{Server: "127.0.0.1:53", Zone: bindtest.Zone, TTL: math.MaxInt32})
	require.NoError(t, err)
}

// TestHungServerHonoursTheContext: a server that takes a message and
// never answers holds an exchange only until the context ends, however
// long Config.Timeout is; the error names the context's cause.
func TestHungServerHonoursTheContext(t *testing.T) {
	got := make(chan struct{}, 64)
	addr := fakeHandler(t, func(dns.ResponseWriter, *dns.Msg) { got <- struct{}{} })
	cause := errors.New("operator gave up")
	for _, network := range []string{"udp", "tcp"} {
		for _, timeout := range []time.Duration{time.Hour, math.MaxInt64} {
			p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone, Net: network, Timeout: timeout})
			require.NoError(t, err)
			for _, apply := range []bool{false, true} {
				c, cancel := context.WithCancelCause(ctx)
				go func() {
					<-got
					cancel(cause)
				}()
				if apply {
					err = p.Apply(c, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: targetsOf(1)})
				} else {
					_, err = p.Read(c, api)
				}
				require.ErrorIs(t, err, cause, "%s %v apply=%t", network, timeout, apply)
				assert.ErrorIs(t, err, rfc2136.ErrTransient)
				cancel(nil)
			}
		}
	}
}

// TestWildcardTXTIsNotAtTheName: a wildcard TXT in the zone (an SPF
// record for every name, say) answers the TXT queries of an endpoint
// never written, though no TXT is at its metadata names: the endpoint
// reads as never written, is written under that condition, and reads
// back; the check writes nothing. Before, it read as a corrupt
// generation TXT, for an operator to fix at a name that holds nothing.
func TestWildcardTXTIsNotAtTheName(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	operator(t, s, nil, []string{`*.dnsplan.test. 60 IN TXT "v=spf1 -all"`})
	before := zone(t, s)
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{}, rec)
	assert.Equal(t, before, zone(t, s), "telling a wildcard from a TXT writes nothing")

	want := dnsplan.Records{Generation: 1, Targets: targetsOf(4)}
	require.NoError(t, p.Apply(ctx, api, rec, want))
	rec, err = p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, want.Targets, rec.Targets)

	// A wildcard under a written endpoint answers for its weights name
	// once an operator has deleted the weights TXT: no weights, weight 1.
	operator(t, s, []string{"_dnsplan-weights." + api + ". 0 IN TXT \"\""}, []string{`*.` + api + `. 60 IN TXT "note"`})
	rec, err = p.Read(ctx, api)
	require.NoError(t, err)
	for _, tgt := range rec.Targets {
		assert.Equal(t, uint32(1), tgt.Weight)
	}
}

// TestMismatchedIDIsNeverData: an answer whose ID is not the query's is
// never read: over UDP it is ignored (a late answer to an earlier query,
// say) and the exchange times out, transient; over TCP, where no earlier
// query shares the connection, it is an error.
func TestMismatchedIDIsNeverData(t *testing.T) {
	addr := fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(m)
		r.Authoritative = true
		r.Id = m.Id + 1
		_ = w.WriteMsg(r)
	})
	for _, network := range []string{"udp", "tcp"} {
		p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone, Net: network, Timeout: 50 * time.Millisecond})
		require.NoError(t, err)
		rec, err := p.Read(ctx, api)
		require.Error(t, err, network)
		assert.Equal(t, dnsplan.Records{}, rec)
		assert.Equal(t, network == "udp", errors.Is(err, rfc2136.ErrTransient), "%s: %v", network, err)
		err = p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: targetsOf(1)})
		require.Error(t, err, network)
		assert.NotErrorIs(t, err, fence.ErrStale)
	}
}

// TestWildcardAddressIsNotAtTheName: a wildcard A or AAAA answers the
// address queries of an endpoint never written: it reads as never
// written, as the package documentation says of an endpoint under a
// wildcard, not as one with the wildcard's addresses; an address
// written by hand at the name still reads.
func TestWildcardAddressIsNotAtTheName(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	operator(t, s, nil, []string{"*.dnsplan.test. 60 IN A 192.0.2.1", "*.dnsplan.test. 60 IN AAAA 2001:db8::99"})
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{}, rec)

	operator(t, s, nil, []string{"hand.dnsplan.test. 60 IN A 203.0.113.1"})
	rec, err = p.Read(ctx, "hand.dnsplan.test")
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{Targets: []dnsplan.Target{tg("203.0.113.1", 1)}}, rec)
}

// TestSecretMustBeBase64: a TSIG secret that is not base64 could sign
// no message; New refuses it rather than every Read and Apply failing.
func TestSecretMustBeBase64(t *testing.T) {
	for _, secret := range []string{"not base64!", "c2VjcmV0", "c2VjcmV0="} {
		_, err := rfc2136.New(rfc2136.Config{Server: "127.0.0.1:53", Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: secret})
		if secret == "c2VjcmV0" {
			require.NoError(t, err)
			continue
		}
		require.ErrorIs(t, err, rfc2136.ErrInvalidConfig, "%q", secret)
		assert.Contains(t, err.Error(), "Config.Secret is not base64")
		assert.NotContains(t, err.Error(), secret, "the secret is not repeated in the error")
	}
}

// TestServerPortMustBeANumber: a Config.Server whose port is missing, out
// of range or not a number would fail every exchange as if the network
// were down (transient, retried forever); New refuses it.
func TestServerPortMustBeANumber(t *testing.T) {
	for _, server := range []string{"127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:99999999999999999999", "ns.example:dns"} {
		_, err := rfc2136.New(rfc2136.Config{Server: server, Zone: bindtest.Zone})
		require.ErrorIs(t, err, rfc2136.ErrInvalidConfig, server)
		assert.Contains(t, err.Error(), "port", server)
	}
	for _, server := range []string{"127.0.0.1:53", "[::1]:5353", "ns.example:65535"} {
		_, err := rfc2136.New(rfc2136.Config{Server: server, Zone: bindtest.Zone})
		require.NoError(t, err, server)
	}
}

// TestReadIsNeverTornWithinAGeneration: rewrites of one generation with
// different targets, raced by reads: every read returns the targets of
// the write whose version it names, never another's.
func TestReadIsNeverTornWithinAGeneration(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	var done atomic.Bool
	var mu sync.Mutex
	var seen []dnsplan.Records
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				rec, err := p.Read(ctx, api)
				if err != nil {
					if !assert.ErrorIs(t, err, rfc2136.ErrTransient) {
						return
					}
					continue
				}
				mu.Lock()
				seen = append(seen, rec)
				mu.Unlock()
			}
		}()
	}
	written := map[string][]dnsplan.Target{"": nil}
	var expect dnsplan.Records
	for i := range 40 {
		r := dnsplan.Records{Generation: 7, Targets: targetsOf(fence.Token(i))}
		require.NoError(t, p.Apply(ctx, api, expect, r))
		var err error
		expect, err = p.Read(ctx, api) // the only writer: this is its write
		require.NoError(t, err)
		require.Equal(t, r.Targets, expect.Targets)
		written[expect.Version] = r.Targets
	}
	done.Store(true)
	wg.Wait()
	for _, rec := range seen {
		want, ok := written[rec.Version]
		require.True(t, ok, "version %q was never written", rec.Version)
		assert.Equal(t, want, rec.Targets, "version %q", rec.Version)
	}
	t.Logf("%d reads checked", len(seen))
}
