package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

// run2025 runs an enactor written the 2025 way, as the postmortem
// describes it: it loads the newest plan and checks once, before it
// starts, that the plan is newer than the one applied to the regional
// endpoint; then, endpoint by endpoint, it builds a transaction that
// replaces the endpoint's live plan with its own — the transaction needs
// the live plan, so an endpoint whose live plan is gone stops the
// enactor (the inconsistent state) — and retries a blocked transaction
// until it goes through, whatever has been applied meanwhile. After a
// pass it deletes the plans more than Retention generations older than
// its own and, as in 2025, deleting a plan removes the records of every
// endpoint it is live on.
func run2025(ctx context.Context, cfg childConfig, store dnsplan.Store, provider dnsplan.Provider, f *faults, em *emitter) error {
	e := &enactor2025{cfg: cfg, store: store, provider: provider, f: f, em: em}
	em.emit(event{Kind: "ready"})
	var last fence.Token
	for ctx.Err() == nil {
		last = max(last, e.pass(ctx))
		waitNewer(ctx, store, last)
		f.beforePass(ctx)
	}
	return nil
}

type enactor2025 struct {
	cfg      childConfig
	store    dnsplan.Store
	provider dnsplan.Provider
	f        *faults
	em       *emitter
}

func (e *enactor2025) fail(what string, err error) {
	e.em.emit(event{Kind: "error", Msg: what + ": " + err.Error()})
}

// maxTries bounds the retries of one endpoint's transaction in a pass.
const maxTries = 8

// pass makes one pass and returns the generation of the plan it loaded.
func (e *enactor2025) pass(ctx context.Context) fence.Token {
	c, cancel := context.WithTimeout(ctx, opTimeout)
	plan, err := e.store.Latest(c)
	cancel()
	if err != nil {
		if !errors.Is(err, dnsplan.ErrNotFound) {
			e.fail("loading the newest plan", err)
		}
		return 0
	}
	c, cancel = context.WithTimeout(ctx, opTimeout)
	applied, err := e.provider.Read(c, regional)
	cancel()
	if err != nil {
		e.fail("reading the applied generation", err)
		return plan.Generation
	}
	// The one-time check.
	if plan.Generation <= applied.Generation {
		e.em.emit(event{Kind: "pass_done", Gen: uint64(plan.Generation)})
		return plan.Generation
	}
	written := 0
	for _, ep := range plan.EndpointNames() {
		e.f.beforeWrite(ctx, ep, plan.Generation, applied.Generation)
		ok, stop := e.write(ctx, plan, ep)
		if stop {
			return plan.Generation
		}
		if ok {
			written++
			e.f.afterWrite(ctx, plan.Generation, written)
		}
	}
	e.f.beforeCleanup(ctx, plan.Generation)
	e.cleanup(ctx, plan)
	e.em.emit(event{Kind: "pass_done", Gen: uint64(plan.Generation), N: written})
	return plan.Generation
}

// write replaces endpoint ep's live plan with plan, retrying a blocked
// transaction; stop reports the inconsistent state (live plan missing)
// or a failure that ends the pass.
func (e *enactor2025) write(ctx context.Context, plan dnsplan.Plan, ep string) (ok, stop bool) {
	for try := 0; try < maxTries && ctx.Err() == nil; try++ {
		c, cancel := context.WithTimeout(ctx, opTimeout)
		cur, err := e.provider.Read(c, ep)
		cancel()
		if err != nil {
			e.fail("reading "+ep, err)
			return false, true
		}
		if cur.Generation != 0 {
			c, cancel = context.WithTimeout(ctx, opTimeout)
			_, err := e.store.Get(c, cur.Generation)
			cancel()
			if errors.Is(err, dnsplan.ErrNotFound) {
				e.em.emit(event{Kind: "stuck", Endpoint: ep, Gen: uint64(cur.Generation), Have: uint64(plan.Generation)})
				return false, true
			}
			if err != nil {
				e.fail("loading the live plan of "+ep, err)
				return false, true
			}
		}
		c, cancel = context.WithTimeout(ctx, opTimeout)
		err = e.provider.Apply(c, ep, cur, dnsplan.Records{Generation: plan.Generation, Targets: plan.Endpoints[ep]})
		cancel()
		switch {
		case err == nil:
			e.em.emit(event{Kind: "applied", Endpoint: ep, Gen: uint64(plan.Generation), Have: uint64(cur.Generation)})
			return true, false
		case errors.Is(err, fence.ErrStale):
			// Blocked by another enactor's transaction: retry.
			var se *fence.StaleError
			have := cur.Generation
			if errors.As(err, &se) {
				have = se.Have
			}
			e.em.emit(event{Kind: "refused", Endpoint: ep, Gen: uint64(plan.Generation), Have: uint64(have)})
		default:
			e.fail("applying to "+ep, err)
			return false, true
		}
	}
	return false, false
}

// cleanup deletes the plans more than Retention generations older than
// plan, and with each the records of the endpoints it is live on.
func (e *enactor2025) cleanup(ctx context.Context, plan dnsplan.Plan) {
	c, cancel := context.WithTimeout(ctx, opTimeout)
	gens, err := e.store.List(c)
	cancel()
	if err != nil {
		e.fail("listing plans", err)
		return
	}
	for _, g := range gens {
		if g+fence.Token(e.cfg.Retention) >= plan.Generation {
			break
		}
		c, cancel := context.WithTimeout(ctx, opTimeout)
		err := e.store.Delete(c, g)
		cancel()
		if errors.Is(err, dnsplan.ErrNotFound) {
			continue
		}
		if err != nil {
			e.fail(fmt.Sprintf("deleting plan %d", g), err)
			return
		}
		e.em.emit(event{Kind: "deleted", Gen: uint64(g)})
		for _, ep := range plan.EndpointNames() {
			c, cancel := context.WithTimeout(ctx, opTimeout)
			cur, err := e.provider.Read(c, ep)
			cancel()
			if err != nil || cur.Generation != g {
				continue
			}
			if err := removeAddresses(ctx, e.cfg, ep); err != nil {
				e.fail("removing the records of "+ep, err)
				continue
			}
			e.em.emit(event{Kind: "emptied", Endpoint: ep, Gen: uint64(g)})
		}
	}
}

// removeAddresses deletes the address records of ep (and contrib/rfc2136's
// weights record) with one RFC 2136 update, leaving its generation record:
// the endpoint answers NOERROR with no address, and reads as generation g
// with no targets.
func removeAddresses(ctx context.Context, cfg childConfig, ep string) error {
	name := dns.Fqdn(ep)
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.RemoveRRset([]dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET}},
		&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}},
		&dns.TXT{Hdr: dns.RR_Header{Name: "_dnsplan-weights." + name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}},
	})
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	client := &dns.Client{Net: "tcp", Timeout: opTimeout, TsigSecret: map[string]string{keyName: cfg.Secret}}
	r, _, err := client.ExchangeContext(ctx, m, cfg.DNS)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("update answered %s", dns.RcodeToString[r.Rcode])
	}
	return nil
}
