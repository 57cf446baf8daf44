package main

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// prober resolves the regional endpoint against BIND over UDP, qps times
// a second, as clients do, and asks for its applied generation (the
// TXT record contrib/rfc2136 keeps beside it) as often.
type prober struct {
	addr  string
	qps   int
	start time.Time
	quit  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	seconds []second // by second since start
	samples []sample // every generation read
	changes []change // when the answers changed between kinds
}

// change is a change of the kind of answer: addresses, empty (NOERROR
// without addresses or NXDOMAIN), or error.
type change struct {
	at   time.Duration
	kind int
}

// The kinds of answer.
const (
	kindAddresses = iota + 1
	kindNoData
	kindNXDomain
	kindError
)

// emptyKind folds NOERROR-without-addresses and NXDOMAIN into one kind.
func emptyKind(k int) int {
	if k == kindNXDomain {
		return kindNoData
	}
	return k
}

// second is what the prober saw in one second of the run.
type second struct {
	Queries   int    `json:"queries"`
	Addresses int    `json:"answers_with_addresses"`
	NoData    int    `json:"empty_noerror"`
	NXDomain  int    `json:"nxdomain"`
	Errors    int    `json:"errors"`
	Gen       uint64 `json:"generation"` // the last read in the second
}

type sample struct {
	at  time.Duration
	gen uint64
}

func newProber(addr string, qps int, start time.Time) *prober {
	return &prober{addr: addr, qps: qps, start: start, quit: make(chan struct{}), done: make(chan struct{})}
}

// probeTimeout is how long the prober waits for an answer, as a stub
// resolver would.
const probeTimeout = time.Second

func (p *prober) run() {
	go func() {
		defer close(p.done)
		c := &dns.Client{Net: "udp", Timeout: probeTimeout}
		t := time.NewTicker(time.Second / time.Duration(p.qps))
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
			}
			p.probe(c)
		}
	}()
}

func (p *prober) stop() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
}

func (p *prober) probe(c *dns.Client) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(regional), dns.TypeA)
	r, _, err := c.Exchange(m, p.addr)
	at := time.Since(p.start)
	var kind int
	switch {
	case err != nil || r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError:
		kind = kindError
	case r.Rcode == dns.RcodeNameError:
		kind = kindNXDomain
	default:
		kind = kindNoData
		for _, rr := range r.Answer {
			if _, ok := rr.(*dns.A); ok {
				kind = kindAddresses
			}
		}
	}
	var gen uint64
	gm := new(dns.Msg)
	gm.SetQuestion(genName, dns.TypeTXT)
	gr, _, gerr := c.Exchange(gm, p.addr)
	if gerr == nil {
		for _, rr := range gr.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				for _, s := range txt.Txt {
					if v, ok := strings.CutPrefix(s, "dnsplan-generation="); ok {
						gen, _ = strconv.ParseUint(v, 10, 64)
					}
				}
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	i := int(at / time.Second)
	for len(p.seconds) <= i {
		p.seconds = append(p.seconds, second{})
	}
	s := &p.seconds[i]
	s.Queries++
	switch kind {
	case kindAddresses:
		s.Addresses++
	case kindNoData:
		s.NoData++
	case kindNXDomain:
		s.NXDomain++
	default:
		s.Errors++
	}
	if n := len(p.changes); n == 0 || p.changes[n-1].kind != emptyKind(kind) {
		p.changes = append(p.changes, change{at: at, kind: emptyKind(kind)})
	}
	if gen > 0 {
		s.Gen = gen
		p.samples = append(p.samples, sample{at: at, gen: gen})
	}
}

// results returns what the prober saw.
func (p *prober) results() ([]second, []sample, []change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]second(nil), p.seconds...), append([]sample(nil), p.samples...), append([]change(nil), p.changes...)
}
