package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testZone = "dnsplan.test."

// updateServer serves UPDATEs over TCP on loopback with h, unsigned, and
// returns its address. It stops when the test ends.
func updateServer(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{Listener: l, Handler: h, MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return l.Addr().String()
}

// members returns the endpoints whose generation TXT an UPDATE names in
// its update section, in order.
func members(m *dns.Msg) []string {
	var eps []string
	for _, rr := range m.Ns {
		if txt, ok := rr.(*dns.TXT); ok && len(txt.Txt) > 0 && len(txt.Txt[0]) > len(generationKey) && txt.Txt[0][:len(generationKey)] == generationKey {
			eps = append(eps, dns.CanonicalName(txt.Hdr.Name)[len(DefaultMetaPrefix)+1:])
		}
	}
	return eps
}

// queuedCalls returns the number of calls waiting in p's queue.
func queuedCalls(p *Provider) int {
	p.batch.mu.Lock()
	defer p.batch.mu.Unlock()
	return len(p.batch.queue)
}

// waitQueued waits until n calls wait in p's queue.
func waitQueued(t *testing.T, p *Provider, n int) {
	t.Helper()
	for queuedCalls(p) != n {
		time.Sleep(time.Millisecond)
	}
}

func epName(i int) string { return fmt.Sprintf("ep%d.dnsplan.test", i) }

func recs(i int) dnsplan.Records {
	return dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Weight: 1}}}
}

// TestAppliesArrivingInFlightShareOneUpdate: a lone Apply is sent at
// once, alone; the eight that arrive while it is in flight go together
// in the next UPDATE, in the order they came; every caller is answered
// success.
func TestAppliesArrivingInFlightShareOneUpdate(t *testing.T) {
	release := make(chan struct{})
	var (
		mu   sync.Mutex
		seen [][]string
	)
	addr := updateServer(t, func(w dns.ResponseWriter, m *dns.Msg) {
		mu.Lock()
		seen = append(seen, members(m))
		first := len(seen) == 1
		mu.Unlock()
		if first {
			<-release
		}
		r := new(dns.Msg)
		r.SetReply(m)
		_ = w.WriteMsg(r)
	})
	p, err := New(Config{Server: addr, Zone: testZone})
	require.NoError(t, err)
	errs := make(chan error, 9)
	go func() { errs <- p.Apply(context.Background(), epName(0), dnsplan.Records{}, recs(0)) }()
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 8; i++ {
		go func() { errs <- p.Apply(context.Background(), epName(i), dnsplan.Records{}, recs(i)) }()
		waitQueued(t, p, i)
	}
	close(release)
	for range 9 {
		require.NoError(t, <-errs)
	}
	mu.Lock()
	defer mu.Unlock()
	var want []string
	for i := 1; i <= 8; i++ {
		want = append(want, epName(i)+".")
	}
	assert.Equal(t, [][]string{{epName(0) + "."}, want}, seen)
}

// TestCancelQueuedAndInFlight: a caller whose context ends while its
// Apply waits in the queue gets the context's error (ErrTransient,
// "nothing was written") and its update is never sent; one whose context
// ends while its UPDATE is in flight returns at once with the context's
// error, outcome unknown, while the others batched with it get the
// server's answer; when every caller of an UPDATE in flight has given
// up, its exchange ends at once (not after the hour of Config.Timeout).
func TestCancelQueuedAndInFlight(t *testing.T) {
	release := make(chan struct{})
	var (
		mu   sync.Mutex
		seen [][]string
	)
	hold := make(chan struct{})
	addr := updateServer(t, func(w dns.ResponseWriter, m *dns.Msg) {
		mu.Lock()
		seen = append(seen, members(m))
		n := len(seen)
		mu.Unlock()
		switch n {
		case 1, 2:
			<-release
		case 3:
			<-hold // never answered
			return
		}
		r := new(dns.Msg)
		r.SetReply(m)
		_ = w.WriteMsg(r)
	})
	p, err := New(Config{Server: addr, Zone: testZone, Timeout: time.Hour})
	require.NoError(t, err)
	cause := errors.New("caller gave up")
	apply := func(c context.Context, i int) chan error {
		ch := make(chan error, 1)
		go func() { ch <- p.Apply(c, epName(i), dnsplan.Records{}, recs(i)) }()
		return ch
	}
	first := apply(context.Background(), 0)
	waitSeen := func(n int) {
		for {
			mu.Lock()
			k := len(seen)
			mu.Unlock()
			if k == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitSeen(1)
	c1, cancel1 := context.WithCancelCause(context.Background())
	c2, cancel2 := context.WithCancelCause(context.Background())
	queuedThenGone := apply(c1, 1)
	waitQueued(t, p, 1)
	stays := apply(context.Background(), 2)
	waitQueued(t, p, 2)
	inFlightGone := apply(c2, 3)
	waitQueued(t, p, 3)

	cancel1(cause)
	err = <-queuedThenGone
	require.ErrorIs(t, err, cause)
	assert.ErrorIs(t, err, ErrTransient)
	assert.Contains(t, err.Error(), "nothing was written")
	assert.Equal(t, 2, queuedCalls(p))

	release <- struct{}{} // the first UPDATE is answered
	require.NoError(t, <-first)
	waitSeen(2)
	cancel2(cause)
	err = <-inFlightGone
	require.ErrorIs(t, err, cause)
	assert.ErrorIs(t, err, ErrTransient)
	assert.Contains(t, err.Error(), "may or may not have been applied")
	close(release) // the second UPDATE is answered
	require.NoError(t, <-stays)

	// Alone in flight, a caller that gives up ends the exchange.
	c3, cancel3 := context.WithCancelCause(context.Background())
	lone := apply(c3, 4)
	waitSeen(3)
	cancel3(cause)
	require.ErrorIs(t, <-lone, cause)
	for { // the exchange ends: nothing is left to send
		p.batch.mu.Lock()
		running := p.batch.running
		p.batch.mu.Unlock()
		if !running {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, [][]string{{epName(0) + "."}, {epName(2) + ".", epName(3) + "."}, {epName(4) + "."}}, seen,
		"the update of a caller that gave up while queued is never sent")
}

// TestDroppedConnectionMidBatch: a server that closes the connection on
// a batched UPDATE fails every caller in it with ErrTransient, outcome
// unknown (never sent again blindly); the next
// Apply goes over a new connection and succeeds.
func TestDroppedConnectionMidBatch(t *testing.T) {
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		count int
	)
	addr := updateServer(t, func(w dns.ResponseWriter, m *dns.Msg) {
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		switch n {
		case 1:
			<-release
		case 2:
			_ = w.Close()
			return
		}
		r := new(dns.Msg)
		r.SetReply(m)
		_ = w.WriteMsg(r)
	})
	p, err := New(Config{Server: addr, Zone: testZone})
	require.NoError(t, err)
	errs := make(chan error, 4)
	go func() { errs <- p.Apply(context.Background(), epName(0), dnsplan.Records{}, recs(0)) }()
	for {
		mu.Lock()
		n := count
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 3; i++ {
		go func() { errs <- p.Apply(context.Background(), epName(i), dnsplan.Records{}, recs(i)) }()
		waitQueued(t, p, i)
	}
	close(release)
	var ok, dropped int
	for range 4 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrTransient):
			dropped++
			assert.ErrorContains(t, err, "3 updates sent together, outcome unknown")
		default:
			t.Error(err)
		}
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, 3, dropped)
	require.NoError(t, p.Apply(context.Background(), epName(9), dnsplan.Records{}, recs(9)))
}

// TestTakeBoundsBatches: take forms batches in queue order of at most
// MaxBatch calls and maxBatchBytes (a call larger than that goes alone),
// never two calls that share a name, two calls to one endpoint in the
// order they came, and answers a call whose context
// ended without sending it.
func TestTakeBoundsBatches(t *testing.T) {
	for _, maxBatch := range []int{1, 2, 3, 64} {
		p, err := New(Config{Server: "127.0.0.1:53", Zone: testZone, MaxBatch: maxBatch})
		require.NoError(t, err)
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		sizes := []int{100, maxBatchBytes - 50, 100, maxBatchBytes + 1, 10, 10, 10, 10, 10}
		var all []*call
		for i, size := range sizes {
			n, err := p.names(epName(i % 7)) // 7 and 8 share names with 0 and 1
			require.NoError(t, err)
			c := &call{ctx: context.Background(), n: n, size: size, done: make(chan answer, 1)}
			if i == 5 {
				c.ctx = ended
			}
			all = append(all, c)
		}
		p.batch.queue = append([]*call(nil), all...)
		var batches [][]int
		for {
			calls := p.take()
			if len(calls) == 0 {
				break
			}
			var ids []int
			size, names := 0, map[string]bool{}
			for _, c := range calls {
				ids = append(ids, slicesIndex(all, c))
				size += c.size
				for _, name := range []string{c.n.owner, c.n.gen, c.n.weights} {
					assert.False(t, names[name], "two calls of one batch share %s", name)
					names[name] = true
				}
			}
			assert.LessOrEqual(t, len(calls), maxBatch)
			if len(calls) > 1 {
				assert.LessOrEqual(t, size, maxBatchBytes)
			}
			batches = append(batches, ids)
		}
		a := <-all[5].done
		assert.ErrorIs(t, a.err, context.Canceled, "a call whose context ended is answered")
		var order []int
		for _, b := range batches {
			order = append(order, b...)
		}
		pos := map[int]int{}
		for k, i := range order {
			pos[i] = k
		}
		assert.Less(t, pos[0], pos[7], "two Applies to one endpoint are sent in the order they came: %v", batches)
		assert.Less(t, pos[1], pos[8], "two Applies to one endpoint are sent in the order they came: %v", batches)
		assert.ElementsMatch(t, []int{0, 1, 2, 3, 4, 6, 7, 8}, order, "MaxBatch %d: every live call sent once: %v", maxBatch, batches)
		t.Logf("MaxBatch %d: %v", maxBatch, batches)
	}
}

func slicesIndex(all []*call, c *call) int {
	for i, x := range all {
		if x == c {
			return i
		}
	}
	return -1
}

// TestMaxBatchIsValidated: MaxBatch outside [0, 1024] is refused, naming
// the value and the bounds; zero is DefaultMaxBatch.
func TestMaxBatchIsValidated(t *testing.T) {
	for _, v := range []int{-1, maxBatchLimit + 1, int(^uint(0) >> 1)} {
		_, err := New(Config{Server: "127.0.0.1:53", Zone: testZone, MaxBatch: v})
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.Contains(t, err.Error(), fmt.Sprintf("Config.MaxBatch %d is outside [0, %d]", v, maxBatchLimit))
	}
	p, err := New(Config{Server: "127.0.0.1:53", Zone: testZone})
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxBatch, p.cfg.MaxBatch)
}

// TestBatchAnsweredWithAnErrorIsRetriedAlone: a batched UPDATE answered
// with any code but NOERROR (SERVFAIL, FORMERR, REFUSED: none applies
// anything) is sent again member by member, and each caller gets its
// own UPDATE's answer.
func TestBatchAnsweredWithAnErrorIsRetriedAlone(t *testing.T) {
	for _, rcode := range []int{dns.RcodeServerFailure, dns.RcodeFormatError, dns.RcodeRefused} {
		var (
			mu   sync.Mutex
			seen [][]string
		)
		addr := updateServer(t, func(w dns.ResponseWriter, m *dns.Msg) {
			eps := members(m)
			mu.Lock()
			seen = append(seen, eps)
			mu.Unlock()
			r := new(dns.Msg)
			switch {
			case len(eps) > 1:
				r.SetRcode(m, rcode)
			case eps[0] == epName(2)+".":
				r.SetRcode(m, dns.RcodeNXRrset) // refused alone: read to say why
			default:
				r.SetReply(m)
			}
			_ = w.WriteMsg(r)
		})
		p, err := New(Config{Server: addr, Zone: testZone})
		require.NoError(t, err)
		errs := together(t, p, 4, func(i int) error { return p.Apply(context.Background(), epName(i), dnsplan.Records{}, recs(i)) })
		for i, err := range errs {
			if i == 2 {
				assert.Error(t, err, "%s: its own UPDATE was refused", dns.RcodeToString[rcode])
				continue
			}
			assert.NoError(t, err, "%s: endpoint %d", dns.RcodeToString[rcode], i)
		}
		mu.Lock()
		require.Len(t, seen, 5, "%s: one batch, then each alone", dns.RcodeToString[rcode])
		assert.Len(t, seen[0], 4)
		mu.Unlock()
	}
}
