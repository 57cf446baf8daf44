package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// strayAddr is the address the operator's step adds to the regional
// endpoint: one no plan ever names.
const strayAddr = "192.0.2.66"

// damageRegional is an operator's mistake, made by hand with an RFC 2136
// update: it adds strayAddr to the regional endpoint's addresses, leaving
// its generation record as it is, so that the endpoint still answers with
// addresses but no longer holds the plan of its generation. The update is
// conditioned on the generation record read just before, so the damage is
// at a known generation, which it returns.
func damageRegional(ctx context.Context, server, secret string) (uint64, error) {
	client := &dns.Client{Net: "tcp", Timeout: opTimeout, TsigSecret: map[string]string{keyName: secret}}
	q := new(dns.Msg)
	q.SetQuestion(genName, dns.TypeTXT)
	r, _, err := client.ExchangeContext(ctx, q, server)
	if err != nil {
		return 0, fmt.Errorf("reading the regional endpoint's generation: %w", err)
	}
	var gen uint64
	var head []dns.RR
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			head = append(head, rr)
			for _, s := range txt.Txt {
				if v, ok := strings.CutPrefix(s, "dnsplan-generation="); ok {
					gen, _ = strconv.ParseUint(v, 10, 64)
				}
			}
		}
	}
	if gen == 0 {
		return 0, fmt.Errorf("the regional endpoint has no generation record (%d TXT records)", len(head))
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.Used(head) // the generation record as read, value for value
	m.Insert([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(regional), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(strayAddr)}})
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	r, _, err = client.ExchangeContext(ctx, m, server)
	if err != nil {
		return 0, fmt.Errorf("the operator's update: %w", err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return 0, fmt.Errorf("the operator's update at generation %d answered %s", gen, dns.RcodeToString[r.Rcode])
	}
	return gen, nil
}
