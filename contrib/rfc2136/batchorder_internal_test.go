package rfc2136

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefusedBatchKeepsTheOrderOfOneEndpoint: two Applies to one
// endpoint go in the order they came even when the first is in a batch
// the server refuses: its resend alone reaches the server before the
// second Apply, which waited behind it.
func TestRefusedBatchKeepsTheOrderOfOneEndpoint(t *testing.T) {
	release := make(chan struct{})
	var (
		mu   sync.Mutex
		seen []string // the generation TXTs of every UPDATE, joined
	)
	addr := updateServer(t, func(w dns.ResponseWriter, m *dns.Msg) {
		var s string
		for _, rr := range m.Ns {
			if txt, ok := rr.(*dns.TXT); ok && len(txt.Txt) > 0 && len(txt.Txt[0]) > len(generationKey) && txt.Txt[0][:len(generationKey)] == generationKey {
				s += dns.CanonicalName(txt.Hdr.Name)[len(DefaultMetaPrefix)+1:] + txt.Txt[0][len(generationKey):] + " "
			}
		}
		mu.Lock()
		seen = append(seen, s)
		first := len(seen) == 1
		mu.Unlock()
		if first {
			<-release
		}
		r := new(dns.Msg)
		if len(members(m)) > 1 {
			r.SetRcode(m, dns.RcodeServerFailure)
		} else {
			r.SetReply(m)
		}
		_ = w.WriteMsg(r)
	})
	p, err := New(Config{Server: addr, Zone: testZone})
	require.NoError(t, err)
	errs := make(chan error, 4)
	apply := func(ep int, g uint64) {
		r := recs(ep)
		r.Generation = fence.Token(g)
		errs <- p.Apply(context.Background(), epName(ep), dnsplan.Records{}, r)
	}
	go apply(0, 1)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go apply(1, 1)
	waitQueued(t, p, 1)
	go apply(2, 1)
	waitQueued(t, p, 2)
	go apply(1, 2)
	waitQueued(t, p, 3)
	close(release)
	for range 4 {
		require.NoError(t, <-errs)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 5)
	assert.Equal(t, []string{"ep0.dnsplan.test.1 ", "ep1.dnsplan.test.1 ep2.dnsplan.test.1 "}, seen[:2])
	i1, i2 := -1, -1
	for i, s := range seen[2:] {
		switch s {
		case "ep1.dnsplan.test.1 ":
			i1 = i
		case "ep1.dnsplan.test.2 ":
			i2 = i
		}
	}
	assert.True(t, i1 >= 0 && i1 < i2, "ep1's first Apply, resent alone, before its second: %q", seen)
}

// TestGivingUpOnAResendEndsIt: when the last caller still waiting on the
// resends of a refused batch gives up, the resend in flight ends at once
// (not after the hour of Config.Timeout), and the Applies queued behind
// it go on.
func TestGivingUpOnAResendEndsIt(t *testing.T) {
	hung := make(chan struct{})
	var (
		mu   sync.Mutex
		seen int
	)
	release := make(chan struct{})
	addr := updateServer(t, func(w dns.ResponseWriter, m *dns.Msg) {
		mu.Lock()
		seen++
		first := seen == 1
		mu.Unlock()
		eps := members(m)
		r := new(dns.Msg)
		switch {
		case first:
			<-release
			r.SetReply(m)
		case len(eps) > 1:
			r.SetRcode(m, dns.RcodeServerFailure)
		case eps[0] == epName(2)+".":
			<-hung // never answered
			return
		default:
			r.SetReply(m)
		}
		_ = w.WriteMsg(r)
	})
	t.Cleanup(func() { close(hung) }) // before updateServer's, which waits for the handler
	p, err := New(Config{Server: addr, Zone: testZone, Timeout: time.Hour})
	require.NoError(t, err)
	errs := make(chan error, 3)
	go func() { errs <- p.Apply(context.Background(), epName(0), dnsplan.Records{}, recs(0)) }()
	for {
		mu.Lock()
		n := seen
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cctx, cancel := context.WithCancel(context.Background())
	go func() { errs <- p.Apply(context.Background(), epName(1), dnsplan.Records{}, recs(1)) }()
	waitQueued(t, p, 1)
	two := make(chan error, 1)
	go func() { two <- p.Apply(cctx, epName(2), dnsplan.Records{}, recs(2)) }()
	waitQueued(t, p, 2)
	close(release)
	require.NoError(t, <-errs) // ep0
	require.NoError(t, <-errs) // ep1, resent alone
	for {
		mu.Lock()
		n := seen
		mu.Unlock()
		if n == 4 { // ep0, the batch, ep1 alone, ep2 alone (hung)
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	require.ErrorIs(t, <-two, ErrTransient)
	go func() { errs <- p.Apply(context.Background(), epName(3), dnsplan.Records{}, recs(3)) }()
	require.NoError(t, <-errs, "the Apply behind the abandoned resend")
}
