package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/miekg/dns"
)

// errBatchRefused is the answer to a member of a batched UPDATE that the
// server refused as a whole (any code but NOERROR): nothing of it was
// applied, and the member is sent again alone for its own answer.
var errBatchRefused = errors.New("rfc2136: batched update refused")

// States of a call.
const (
	queued   = iota // in batcher.queue
	inflight        // in the UPDATE being sent
	answered        // its answer is in done, or its caller gave up
)

// call is one Apply waiting for, or in, a batched UPDATE.
type call struct {
	ctx  context.Context
	n    names
	m    *dns.Msg // its own UPDATE, unsigned
	size int      // the bytes its prerequisites and updates take in m
	// done receives its answer: the server's answer to an UPDATE of
	// its own, none if its batch was applied, or the error of the
	// exchange.
	done  chan answer
	state int       // guarded by batcher.mu
	b     *inFlight // the UPDATE it is in, once inflight
}

// inFlight is one batched UPDATE being sent.
type inFlight struct {
	live   int // members whose callers still wait, guarded by batcher.mu
	cancel context.CancelFunc
}

// batcher coalesces the Applies that arrive while an UPDATE is in flight
// into the next UPDATE (group commit). Its zero value is ready.
type batcher struct {
	mu      sync.Mutex
	queue   []*call
	running bool // a flush goroutine is running
	// base is the size of an UPDATE with no prerequisite and no update:
	// header and zone; set by the first batched call.
	base int
}

// answer is the outcome of a call: resp is the server's answer if the
// call's UPDATE was sent alone; a batched UPDATE applied answers
// neither.
type answer struct {
	resp *dns.Msg
	err  error
}

// batched sends m, the UPDATE of one Apply to n, in an UPDATE with the
// other Applies waiting meanwhile, and returns the server's answer if m
// was sent alone (also when the server refused the batch it was in: it
// is then sent again alone, before any call queued behind it), nothing
// if the batch was applied, or the error of the exchange
// (matching ErrTransient if the context ended). If no UPDATE is in
// flight, m is sent at once.
func (p *Provider) batched(ctx context.Context, n names, m *dns.Msg) answer {
	b := &p.batch
	c := &call{ctx: ctx, n: n, m: m, done: make(chan answer, 1)}
	b.mu.Lock()
	if b.base == 0 {
		e := new(dns.Msg)
		e.SetUpdate(p.cfg.Zone)
		e.Compress = true
		b.base = e.Len()
	}
	c.size = m.Len() - b.base
	b.queue = append(b.queue, c)
	if !b.running {
		b.running = true
		go p.flush()
	}
	b.mu.Unlock()
	select {
	case a := <-c.done:
		return a
	case <-ctx.Done():
	}
	b.mu.Lock()
	switch c.state {
	case answered:
		b.mu.Unlock()
		return <-c.done
	case queued:
		b.queue = slices.DeleteFunc(b.queue, func(q *call) bool { return q == c })
		c.state = answered
		b.mu.Unlock()
		return answer{err: notSent(ctx)}
	}
	c.state = answered
	if c.b.live--; c.b.live == 0 {
		c.b.cancel() // no caller waits for its answer any more
	}
	b.mu.Unlock()
	return answer{err: transient(fmt.Errorf("rfc2136: %w while the UPDATE was in flight: it may or may not have been applied", context.Cause(ctx)))}
}

// notSent is the error of a call whose context ended before it was sent.
func notSent(ctx context.Context) error {
	return transient(fmt.Errorf("rfc2136: %w before the UPDATE was sent: nothing was written", context.Cause(ctx)))
}

// flush sends the calls queued, in UPDATEs of up to Config.MaxBatch
// calls and maxBatchBytes, one after another over one TCP connection,
// until none is left.
func (p *Provider) flush() {
	b := &p.batch
	var conn *dns.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	for {
		b.mu.Lock()
		calls := p.take()
		if len(calls) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		f := &inFlight{live: len(calls), cancel: cancel}
		for _, c := range calls {
			c.state, c.b = inflight, f
		}
		b.mu.Unlock()

		a := p.send(ctx, calls, &conn)
		if errors.Is(a.err, errBatchRefused) {
			// Nothing of it was applied: each member is sent again
			// alone, for its own answer, before any call queued
			// behind it, so that two Applies to one endpoint still go
			// in the order they came.
			for _, c := range calls {
				b.mu.Lock()
				waits := c.state == inflight
				b.mu.Unlock()
				if !waits {
					continue // its caller gave up
				}
				r, err := p.exchangeOn(ctx, p.stream, c.m, &conn)
				b.mu.Lock()
				if c.state == inflight {
					c.state = answered
					c.done <- answer{resp: r, err: err}
					// It no longer waits: when the others give up,
					// the resend in flight ends.
					f.live--
				}
				b.mu.Unlock()
			}
		}
		cancel()

		b.mu.Lock()
		for _, c := range calls {
			if c.state == inflight {
				c.state = answered
				c.done <- a
			}
		}
		b.mu.Unlock()
	}
}

// take removes from the queue and returns the calls of the next UPDATE:
// the oldest first, then every other one in order that fits, with no
// name in common with a call before it in the queue (two writes to one
// endpoint in one UPDATE would both be checked against the records
// before either, and the second would overwrite the first
// unconditioned; and two writes to one endpoint are sent in the order
// they came). A call whose
// context has ended is answered, never sent. b.mu must be held.
func (p *Provider) take() []*call {
	b := &p.batch
	var (
		calls []*call
		size  int
		used  = map[string]bool{}
	)
	b.queue = slices.DeleteFunc(b.queue, func(c *call) bool {
		if err := c.ctx.Err(); err != nil {
			c.state = answered
			c.done <- answer{err: notSent(c.ctx)}
			return true
		}
		skip := len(calls) == p.cfg.MaxBatch || len(calls) > 0 && size+c.size > maxBatchBytes ||
			used[c.n.owner] || used[c.n.gen] || used[c.n.weights]
		// A call left in the queue keeps its names from the calls
		// behind it: two Applies to one endpoint are sent in the order
		// they came.
		used[c.n.owner], used[c.n.gen], used[c.n.weights] = true, true, true
		if skip {
			return false
		}
		calls = append(calls, c)
		size += c.size
		return true
	})
	return calls
}

// send sends the UPDATE of calls over *conn and returns the answer of
// each: the server's answer for one call alone; for several, nothing if
// the server applied it, errBatchRefused if it refused it; or the error
// of the exchange.
func (p *Provider) send(ctx context.Context, calls []*call, conn **dns.Conn) answer {
	if len(calls) == 1 {
		r, err := p.exchangeOn(ctx, p.stream, calls[0].m, conn)
		return answer{resp: r, err: err}
	}
	m := new(dns.Msg)
	m.SetUpdate(p.cfg.Zone)
	m.Compress = true
	for _, c := range calls {
		m.Answer = append(m.Answer, c.m.Answer...)
		m.Ns = append(m.Ns, c.m.Ns...)
	}
	r, err := p.exchangeOn(ctx, p.stream, m, conn)
	switch {
	case err != nil:
		// Never sent again: if it was applied, the resend would be
		// refused as stale by its own write.
		return answer{err: fmt.Errorf("%d updates sent together, outcome unknown (all applied or none: read again): %w", len(calls), err)}
	case r.Rcode != dns.RcodeSuccess:
		return answer{err: fmt.Errorf("%w: %d updates answered %s", errBatchRefused, len(calls), dns.RcodeToString[r.Rcode])}
	}
	return answer{}
}
