package main

import (
	"slices"
	"sync"
	"time"
)

// Learned call timeouts: each zone's timeout is timeoutFactor times the
// p99 of its last timeoutSamples successful calls, within [timeoutFloor,
// the ceiling]. The ceiling is ceilingShare of the client's timeout: an
// answer later than that reaches no client.
const (
	timeoutSamples = 100
	timeoutFactor  = 3
	timeoutFloor   = 100 * time.Millisecond
	ceilingShare   = 0.8
)

// ceiling is the longest call timeout for a client timeout of clientWait.
func ceiling(clientWait time.Duration) time.Duration {
	return max(timeoutFloor, time.Duration(ceilingShare*float64(clientWait)))
}

// learnedTimeout is one zone's call timeout, learned from the latencies
// of its own successful calls.
//
// Only a success feeds it, and a success took at most the timeout it ran
// under, so one sample raises the timeout by at most timeoutFactor, and a
// zone that hangs (no answer within the timeout) adds no sample at all:
// its timeout stays where the zone's last answers left it. To notice that
// a zone became slower but still answers, one call per zone at a time is
// a probe that runs under the ceiling; a probe that succeeds is a sample
// like any other, one that fails teaches nothing. The ceiling bounds the
// timeout whatever the samples.
type learnedTimeout struct {
	floor, ceil time.Duration

	mu      sync.Mutex
	ring    [timeoutSamples]time.Duration
	n, next int
	cur     time.Duration
	probing bool
	sorted  []time.Duration
}

func newLearnedTimeout(ceil time.Duration) *learnedTimeout {
	return &learnedTimeout{floor: timeoutFloor, ceil: ceil, cur: timeoutFloor, sorted: make([]time.Duration, 0, timeoutSamples)}
}

// nextCall returns the timeout for the next call, and the function to
// report its latency and success with.
func (l *learnedTimeout) nextCall() (time.Duration, func(time.Duration, bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.probing {
		l.probing = true
		return l.ceil, func(rtt time.Duration, ok bool) { l.done(true, rtt, ok) }
	}
	return l.cur, func(rtt time.Duration, ok bool) { l.done(false, rtt, ok) }
}

func (l *learnedTimeout) done(probe bool, rtt time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if probe {
		l.probing = false
	}
	if !ok {
		return
	}
	l.ring[l.next] = rtt
	l.next = (l.next + 1) % timeoutSamples
	l.n = min(l.n+1, timeoutSamples)
	l.sorted = append(l.sorted[:0], l.ring[:l.n]...)
	slices.Sort(l.sorted)
	p99 := l.sorted[min(l.n-1, l.n*99/100)]
	l.cur = min(max(timeoutFactor*p99, l.floor), l.ceil)
}

// current returns the timeout of an ordinary (non-probe) call.
func (l *learnedTimeout) current() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}
