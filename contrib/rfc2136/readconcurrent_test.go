package rfc2136_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/contrib/rfc2136/internal/bindtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadAsksItsRecordsAtOnce: between its two reads of the generation
// TXT, Read asks for the A, AAAA and weights records at once, not one
// after another: a server that answers none of the three until it has
// been asked all three still answers a Read (asked one after another,
// the first would time out).
func TestReadAsksItsRecordsAtOnce(t *testing.T) {
	var (
		mu    sync.Mutex
		asked = map[string]bool{}
		all   = make(chan struct{})
		done  = make(chan struct{})
	)
	addr := fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(m)
		r.Authoritative = true
		q := m.Question[0]
		if strings.HasPrefix(q.Name, "_dnsplan.") {
			r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 30}, Txt: []string{"dnsplan-generation=3"}})
		} else {
			mu.Lock()
			asked[q.Name+dns.TypeToString[q.Qtype]] = true
			if len(asked) == 3 {
				select {
				case <-all:
				default:
					close(all)
				}
			}
			mu.Unlock()
			select {
			case <-all:
			case <-done:
				return
			}
		}
		_ = w.WriteMsg(r)
	})
	t.Cleanup(func() { close(done) }) // before fakeHandler's, which waits for the handlers
	p, err := rfc2136.New(rfc2136.Config{Server: addr, Zone: bindtest.Zone, Timeout: time.Second})
	require.NoError(t, err)
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{Generation: 3}, rec)
}
