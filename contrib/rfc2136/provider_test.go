package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stormguard/stormguard/internal/proctest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// server and secret are the address and TSIG secret of the BIND the
// Examples use: a real one, started once for the test binary by
// bindServer.
var server, secret string

// bindServer runs the BIND of the Examples. Without a named binary the
// Examples are left out locally, as the integration tests skip, and fail
// the run under CI=true.
var bindServer = proctest.NewShared([]string{"Example"}, func(t testing.TB) {
	s := bindtest.Start(t)
	server, secret = s.Addr(), s.Secret()
})

func TestMain(m *testing.M) { leakcheck.Main(bindServer.With(m)) }

// TestExamplesServer reports whether the Examples ran against a real BIND:
// it skips with the reason they did not (no binary, CI unset), or fails.
func TestExamplesServer(t *testing.T) { bindServer.Check(t) }

var ctx = context.Background()

func newProvider(t testing.TB, s *bindtest.Server) *rfc2136.Provider {
	t.Helper()
	p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret()})
	require.NoError(t, err)
	return p
}

// read reads the endpoint, requires a version if it has a generation,
// and returns the records, and the records without their version.
func read(t testing.TB, p dnsplan.Provider, ep string) (rec, plain dnsplan.Records) {
	t.Helper()
	rec, err := p.Read(ctx, ep)
	require.NoError(t, err)
	if rec.Generation != 0 {
		require.NotEmpty(t, rec.Version, "every write has a version")
	}
	plain = rec
	plain.Version = ""
	return rec, plain
}

func tg(ip string, w uint32) dnsplan.Target {
	return dnsplan.Target{Addr: netip.MustParseAddr(ip), Weight: w}
}

const api = "api.dnsplan.test"

func TestNewReportsEveryBadField(t *testing.T) {
	_, err := rfc2136.New(rfc2136.Config{Server: "nohost", Zone: "bad..zone", KeyName: "k", Algorithm: "md5", Timeout: -1, Net: "sctp", MetaPrefix: "a.b", MaxTargets: -1})
	require.ErrorIs(t, err, rfc2136.ErrInvalidConfig)
	for _, w := range []string{"Server \"nohost\"", "Zone \"bad..zone\"", "no Config.Secret", "Algorithm", "Timeout -1ns", "Net \"sctp\"", "MetaPrefix \"a.b\"", "MaxTargets -1"} {
		assert.Contains(t, err.Error(), w)
	}
	_, err = rfc2136.New(rfc2136.Config{Server: "127.0.0.1:53", Secret: "x"})
	assert.ErrorIs(t, err, rfc2136.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Zone is empty")
	assert.Contains(t, err.Error(), "without a Config.KeyName")
}

// Invalid input is refused before any I/O: the server address is
// unreachable, so an attempted exchange would fail differently.
func TestRefusesBeforeIO(t *testing.T) {
	p, err := rfc2136.New(rfc2136.Config{Server: "192.0.2.1:53", Zone: "example.com", Timeout: time.Millisecond})
	require.NoError(t, err)
	err = p.Apply(ctx, "api.example.com", dnsplan.Records{}, dnsplan.Records{Generation: 1})
	assert.ErrorIs(t, err, dnsplan.ErrEmptyRecords)
	err = p.Apply(ctx, "api.other.org", dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}})
	assert.ErrorIs(t, err, rfc2136.ErrInvalidName)
	assert.ErrorIs(t, err, dnsplan.ErrInvalidRecords)
	_, err = p.Read(ctx, "example.com")
	assert.ErrorIs(t, err, rfc2136.ErrInvalidName, "the apex is not an endpoint")

	var nilCtx context.Context
	_, err = p.Read(nilCtx, "api.example.com")
	assert.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
	err = p.Apply(nilCtx, "api.example.com", dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}})
	assert.EqualError(t, err, "dnsplan: invalid argument: nil context")
}

func TestApplyAndReadRoundTrip(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)

	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{}, rec, "never written")

	want := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.2", 1), tg("10.0.0.1", 3), tg("2001:db8::1", 2)}}
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, want))
	first, plain := read(t, p, api)
	dnsplan.SortTargets(want.Targets)
	assert.Equal(t, want, plain)

	// The server refuses a write conditioned on a generation it does not
	// have, and nothing of it lands.
	err = p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 9, Targets: []dnsplan.Target{tg("10.9.9.9", 1)}})
	var stale *fence.StaleError
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, fence.Token(1), stale.Have)
	err = p.Apply(ctx, api, dnsplan.Records{Generation: 5}, dnsplan.Records{Generation: 9, Targets: []dnsplan.Target{tg("10.9.9.9", 1)}})
	require.ErrorIs(t, err, fence.ErrStale)
	rec, _ = read(t, p, api)
	assert.Equal(t, first, rec)

	// A write conditioned on the current generation and version replaces
	// everything: an IPv6 target removed, weights changed.
	next := dnsplan.Records{Generation: 2, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}
	require.NoError(t, p.Apply(ctx, api, first, next))
	_, plain = read(t, p, api)
	assert.Equal(t, next, plain)

	// What a resolver sees: the addresses, and the generation TXT.
	m := new(dns.Msg)
	m.SetQuestion("_dnsplan."+api+".", dns.TypeTXT)
	r, err := dns.Exchange(m, s.Addr())
	require.NoError(t, err)
	require.Len(t, r.Answer, 1)
	txt := r.Answer[0].(*dns.TXT).Txt
	require.Len(t, txt, 2)
	assert.Equal(t, "dnsplan-generation=2", txt[0])
	assert.Regexp(t, "^dnsplan-version=[0-9a-f]{32}$", txt[1])
}

func TestWrongKeyIsRefused(t *testing.T) {
	s := bindtest.Start(t)
	p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="})
	require.NoError(t, err)
	err = p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}})
	require.Error(t, err)
	assert.NotErrorIs(t, err, rfc2136.ErrTransient, "a wrong key does not pass by itself: %v", err)
	_, err = p.Read(ctx, api)
	require.Error(t, err)
	assert.NotErrorIs(t, err, rfc2136.ErrTransient, "a wrong key does not pass by itself: %v", err)
	unsigned, err2 := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone})
	require.NoError(t, err2)
	err2 = unsigned.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}})
	assert.ErrorIs(t, err2, rfc2136.ErrServer)
	assert.Contains(t, err2.Error(), "REFUSED")
	assert.NotErrorIs(t, err2, rfc2136.ErrTransient)
	rec, _ := newProvider(t, s).Read(ctx, api)
	assert.Zero(t, rec.Generation)
}

// TestConcurrentAppliesOneWins: sixteen writers condition on the same
// generation at once; the server lets exactly one through.
func TestConcurrentAppliesOneWins(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}))
	cur, _ := read(t, p, api)
	var wins, stales atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Apply(ctx, api, cur, dnsplan.Records{Generation: fence.Token(2 + i), Targets: []dnsplan.Target{tg(fmt.Sprintf("10.0.1.%d", i+1), 1)}})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, fence.ErrStale):
				stales.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load())
	assert.EqualValues(t, 15, stales.Load())
}

// The 2025 schedule against the real server, step by step: enactor A
// reads the endpoint and stalls before its write; B applies a newer plan
// and cleans up (deleting A's plan); A's write reaches BIND and is refused
// by the update's prerequisite; A re-reads and writes nothing.
func TestRace2025OnBind(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	store := &dnsplan.MemoryStore{}
	put := func(g fence.Token, ip string) {
		require.NoError(t, store.Put(ctx, dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{api: {tg(ip, 1)}}}))
	}
	a, _ := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "A", Retention: 1})
	b, _ := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "B", Retention: 1})
	put(1, "10.0.0.1")
	a.Deliver(dnsplan.Execute(ctx, a.Next(), store, p)) // load plan 1
	a.Deliver(dnsplan.Execute(ctx, a.Next(), store, p)) // read: generation 0
	stalled := a.Next()
	require.Equal(t, dnsplan.OpApply, stalled.Op)
	for g := fence.Token(2); g <= 5; g++ {
		put(g, fmt.Sprintf("10.0.0.%d", g))
	}
	st, err := b.Pass(ctx, store, p)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Applied)
	assert.Equal(t, 3, st.Deleted, "plans 1-3, A's among them")

	r := dnsplan.Execute(ctx, stalled, store, p)
	require.ErrorIs(t, r.Err, fence.ErrStale, "BIND refuses the stale write")
	a.Deliver(r)
	for a.Next().Op != dnsplan.OpRest {
		a.Deliver(dnsplan.Execute(ctx, a.Next(), store, p))
	}
	assert.Equal(t, 1, a.LastPass().Newer)
	_, rec := read(t, p, api)
	assert.Equal(t, dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg("10.0.0.5", 1)}}, rec)
}

// delayed injects a random delay before every operation of the provider,
// so enactors stall between their reads and their writes.
type delayed struct {
	dnsplan.Provider
	mu  sync.Mutex
	rng *rand.Rand
	max time.Duration
}

func (d *delayed) pause() {
	d.mu.Lock()
	n := time.Duration(d.rng.Int64N(int64(d.max)))
	d.mu.Unlock()
	time.Sleep(n)
}

func (d *delayed) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	d.pause()
	return d.Provider.Read(ctx, ep)
}

func (d *delayed) Apply(ctx context.Context, ep string, expect dnsplan.Records, r dnsplan.Records) error {
	d.pause()
	return d.Provider.Apply(ctx, ep, expect, r)
}

// TestThreeEnactorsWithDelaysOnBind: a planner publishes plans while three
// enactors, each stalling at random before every read and write, apply
// them to a real BIND; a watcher reads the endpoints all along. No
// endpoint's generation ever decreases, none is ever empty, the live plan
// is never deleted, and all converge to the newest plan once the planner
// stops.
func TestThreeEnactorsWithDelaysOnBind(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	store := &dnsplan.MemoryStore{}
	endpoints := []string{"api.dnsplan.test", "fips.dnsplan.test", "v6.dnsplan.test"}
	plan := func(g fence.Token) dnsplan.Plan {
		pl := dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{}}
		for j, ep := range endpoints {
			for k := range 1 + int(g+fence.Token(j))%3 {
				pl.Endpoints[ep] = append(pl.Endpoints[ep], tg(fmt.Sprintf("10.%d.%d.%d", j, g%200, k+1), uint32(k+1)))
			}
		}
		return pl
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var deleted sync.Map // generations clean-up deleted
	for i := range 3 {
		e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: fmt.Sprintf("E%d", i), Retention: 1, Interval: 5 * time.Millisecond,
			OnEvent: func(ev dnsplan.Event) {
				if ev.Kind == dnsplan.EventDeleted {
					deleted.Store(ev.Generation, true)
				}
			}})
		require.NoError(t, err)
		d := &delayed{Provider: p, rng: rand.New(rand.NewPCG(uint64(i), 7)), max: time.Duration(i*15+1) * time.Millisecond}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = e.Run(runCtx, store, d)
		}()
	}
	maxSeen := map[string]fence.Token{}
	violations := 0
	watch := func() {
		for _, ep := range endpoints {
			rec, err := p.Read(ctx, ep)
			if err != nil {
				t.Errorf("watch %s: %v", ep, err)
				violations++
				continue
			}
			if rec.Generation < maxSeen[ep] {
				t.Errorf("%s rolled back from %d to %d", ep, maxSeen[ep], rec.Generation)
				violations++
			}
			maxSeen[ep] = rec.Generation
			if rec.Generation != 0 && len(rec.Targets) == 0 {
				t.Errorf("%s is empty at generation %d", ep, rec.Generation)
				violations++
			}
			if _, gone := deleted.Load(rec.Generation); gone && rec.Generation != 0 {
				t.Errorf("%s serves generation %d, which clean-up deleted", ep, rec.Generation)
				violations++
			}
		}
	}
	const plans = 30
	for g := fence.Token(1); g <= plans; g++ {
		require.NoError(t, store.Put(ctx, plan(g)))
		watch()
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		watch()
		done := true
		for _, ep := range endpoints {
			rec, _ := p.Read(ctx, ep)
			done = done && rec.Generation == plans && dnsplan.SameTargets(rec.Targets, plan(plans).Endpoints[ep])
		}
		if done || time.Now().After(deadline) || violations > 0 {
			assert.True(t, done, "converged to plan %d", plans)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
}

// largest returns dnsplan.DefaultMaxTargets targets with distinct weights,
// the first v4 of them IPv4 and the rest IPv6, with the longest addresses
// and weights (seed varies them), so that the answers to Read's queries
// and the UPDATE are as large as an endpoint's can be.
func largest(v4 int, seed uint32) []dnsplan.Target {
	var ts []dnsplan.Target
	for i := range dnsplan.DefaultMaxTargets {
		ip := fmt.Sprintf("ffff:ffff:ffff:ffff:ffff:ffff:%x:%x", 0xf000+seed, 0xf000+i)
		if i < v4 {
			ip = fmt.Sprintf("198.%d.100.%d", 100+seed, 100+i)
		}
		ts = append(ts, tg(ip, math.MaxUint32-uint32(i)*7919-seed))
	}
	dnsplan.SortTargets(ts)
	return ts
}

// TestLargestEndpointRoundTrip: an endpoint with as many targets as the
// provider accepts, IPv4 and IPv6 mixed or all IPv6, reads back exactly
// as written — over UDP, where BIND truncates the AAAA and weights
// answers and Read asks again over TCP, and over TCP. The UPDATE, several
// kilobytes, goes through, and so does its replacement by another of the
// same size.
func TestLargestEndpointRoundTrip(t *testing.T) {
	s := bindtest.Start(t)
	for _, network := range []string{"udp", "tcp"} {
		p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret(), Net: network})
		require.NoError(t, err)
		for _, tc := range []struct {
			name string
			v4   int
		}{{"mixed", dnsplan.DefaultMaxTargets / 2}, {"ipv6", 0}} {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				ep := network + "-" + tc.name + ".dnsplan.test"
				first := dnsplan.Records{Generation: 1, Targets: largest(tc.v4, 1)}
				require.NoError(t, p.Apply(ctx, ep, dnsplan.Records{}, first))
				cur, plain := read(t, p, ep)
				assert.Equal(t, first, plain)

				next := dnsplan.Records{Generation: 2, Targets: largest(tc.v4, 2)}
				require.NoError(t, p.Apply(ctx, ep, cur, next))
				cur, plain = read(t, p, ep)
				assert.Equal(t, next, plain)

				tooMany := dnsplan.Records{Generation: 3, Targets: append(largest(tc.v4, 3), tg("2001:db8::1", 1))}
				assert.ErrorIs(t, p.Apply(ctx, ep, cur, tooMany), dnsplan.ErrInvalidRecords, "the largest endpoint is the largest accepted")
			})
		}
	}

	// The test is only worth something if BIND does truncate these
	// answers over UDP.
	for _, q := range []struct {
		name string
		t    uint16
	}{{"udp-ipv6.dnsplan.test.", dns.TypeAAAA}, {"_dnsplan-weights.udp-mixed.dnsplan.test.", dns.TypeTXT}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.t)
		m.SetEdns0(1232, false)
		r, err := dns.Exchange(m, s.Addr())
		require.NoError(t, err)
		assert.True(t, r.Truncated, "%s %s over udp", q.name, dns.TypeToString[q.t])
	}
}

// TestEnactorLeavesLargestEndpointAlone: the symptom of truncated answers
// read as data — an endpoint that read back empty at the enactor's own
// generation, and was rewritten on every pass — is gone: once applied,
// the largest endpoint is current.
func TestEnactorLeavesLargestEndpointAlone(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	store := &dnsplan.MemoryStore{}
	require.NoError(t, store.Put(ctx, dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{api: largest(0, 1)}}))
	e, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "A"})
	require.NoError(t, err)
	st, err := e.Pass(ctx, store, p)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Applied)
	for range 3 {
		st, err = e.Pass(ctx, store, p)
		require.NoError(t, err)
		assert.Equal(t, dnsplan.PassStats{Generation: 1, Current: 1, Highest: 1}, st)
	}
}

// udpOnlyFront relays UDP datagrams to the server at addr, and closes
// every TCP connection to its own port at once: a server that truncates
// large answers over UDP and cannot be reached over TCP. It returns its
// address; it stops when the test ends.
func udpOnlyFront(t *testing.T, addr string) string {
	t.Helper()
	var udp net.PacketConn
	var tcp net.Listener
	for try := 0; udp == nil; try++ {
		require.Less(t, try, 10, "no port free for both UDP and TCP")
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		if l, err := net.Listen("tcp", u.LocalAddr().String()); err == nil {
			udp, tcp = u, l
		} else {
			u.Close()
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, dns.MaxMsgSize)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			up, err := net.Dial("udp", addr)
			if err != nil {
				continue
			}
			_ = up.SetDeadline(time.Now().Add(time.Second))
			if _, err := up.Write(buf[:n]); err == nil {
				if n, err = up.Read(buf); err == nil {
					_, _ = udp.WriteTo(buf[:n], from)
				}
			}
			up.Close()
		}
	}()
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
		wg.Wait()
	})
	return udp.LocalAddr().String()
}

// TestTruncatedAnswerIsNeverAnEmptyEndpoint: when an answer comes back
// truncated over UDP and TCP fails, Read returns ErrTruncated — never
// the endpoint without targets (or without weights) that the truncated
// answer, which holds no records, would read as.
func TestTruncatedAnswerIsNeverAnEmptyEndpoint(t *testing.T) {
	s := bindtest.Start(t)
	direct := newProvider(t, s)
	front, err := rfc2136.New(rfc2136.Config{Server: udpOnlyFront(t, s.Addr()), Zone: bindtest.Zone, KeyName: bindtest.KeyName, Secret: s.Secret()})
	require.NoError(t, err)

	small := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 2), tg("2001:db8::1", 3)}}
	require.NoError(t, direct.Apply(ctx, "small.dnsplan.test", dnsplan.Records{}, small))
	rec, plain := read(t, front, "small.dnsplan.test") // answers that fit UDP need no TCP
	assert.Equal(t, small, plain)
	err = front.Apply(ctx, "small.dnsplan.test", rec, dnsplan.Records{Generation: 2, Targets: small.Targets})
	require.Error(t, err, "UPDATE goes over TCP, whatever its size")

	for _, tc := range []struct {
		name string
		v4   int
	}{{"mixed", dnsplan.DefaultMaxTargets / 2}, {"ipv6", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ep := tc.name + ".dnsplan.test"
			require.NoError(t, direct.Apply(ctx, ep, dnsplan.Records{}, dnsplan.Records{Generation: 1, Targets: largest(tc.v4, 1)}))
			rec, err := front.Read(ctx, ep)
			require.ErrorIs(t, err, rfc2136.ErrTruncated)
			assert.Contains(t, err.Error(), "over udp, and the retry failed")
			assert.Equal(t, dnsplan.Records{}, rec)
		})
	}
}
