package rfc2136_test

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
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

// operator sends one UPDATE signed with the zone's key, as an operator's
// tool would: remove deletes whole RRsets (name and type of each RR),
// insert adds RRs. The server must accept it.
func operator(t *testing.T, s *bindtest.Server, remove, insert []string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(bindtest.Zone)
	parse := func(ss []string) []dns.RR {
		var rrs []dns.RR
		for _, x := range ss {
			rr, err := dns.NewRR(x)
			require.NoError(t, err, x)
			rrs = append(rrs, rr)
		}
		return rrs
	}
	if rrs := parse(remove); len(rrs) > 0 {
		m.RemoveRRset(rrs)
	}
	if rrs := parse(insert); len(rrs) > 0 {
		m.Insert(rrs)
	}
	m.SetTsig(bindtest.KeyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{bindtest.KeyName: s.Secret()}}
	r, _, err := c.Exchange(m, s.Addr())
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode, "operator's update answered %s", dns.RcodeToString[r.Rcode])
}

// zone returns every record of the zone, SOA (and so its serial) included,
// by AXFR, sorted.
func zone(t *testing.T, s *bindtest.Server) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr(bindtest.Zone)
	m.SetTsig(bindtest.KeyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{bindtest.KeyName: s.Secret()}}
	ch, err := tr.In(m, s.Addr())
	require.NoError(t, err)
	var out []string
	for env := range ch {
		require.NoError(t, env.Error)
		for _, rr := range env.RR {
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	out = slices.Compact(out) // the SOA opens and closes the transfer
	require.NotEmpty(t, out)
	return out
}

// nonCanonical are endpoint names that are not in the canonical form
// dnsplan accepts — lowercase letters, digits, '-', '_' and '.', no empty
// label — though DNS could read most of them as some name in the zone.
var nonCanonical = []string{
	`\065bc.dnsplan.test`,                     // "Abc" by escape
	`\097bc.dnsplan.test`,                     // "abc" by escape
	`a\.bc.dnsplan.test`,                      // a dot inside a label
	"ABC.dnsplan.test",                        // uppercase
	"Abc.Dnsplan.Test",                        // mixed case
	"abc.dnsplan.test.",                       // trailing dot: an alias of abc.dnsplan.test
	".abc.dnsplan.test",                       // leading dot
	"abc..dnsplan.test",                       // empty label
	"a b.dnsplan.test",                        // space
	"a*b.dnsplan.test",                        // wildcard character
	"*.dnsplan.test",                          // a wildcard
	"abc.dnsplan.test\x00",                    // NUL
	"\u00e4bc.dnsplan.test",                   // non-ASCII
	"@.dnsplan.test",                          // not a host character
	strings.Repeat("a", 64) + ".dnsplan.test", // label too long
}

// TestNonCanonicalNamesRefusedBeforeIO: every endpoint name not in
// canonical form is refused by Read and Apply with ErrInvalidName before
// any I/O — the server is unreachable, so any exchange would fail
// otherwise — and against a real BIND the zone is unchanged afterwards.
// Before, `\065bc.dnsplan.test` was written as abc.dnsplan.test and then
// read back as never written, on every pass.
func TestNonCanonicalNamesRefusedBeforeIO(t *testing.T) {
	unreachable, err := rfc2136.New(rfc2136.Config{Server: "192.0.2.1:53", Zone: bindtest.Zone, Timeout: time.Millisecond})
	require.NoError(t, err)
	s := bindtest.Start(t)
	p := newProvider(t, s)
	before := zone(t, s)
	r := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}
	for _, name := range nonCanonical {
		for _, p := range []*rfc2136.Provider{unreachable, p} {
			err := p.Apply(ctx, name, dnsplan.Records{}, r)
			assert.ErrorIs(t, err, rfc2136.ErrInvalidName, "Apply %q", name)
			assert.ErrorIs(t, err, dnsplan.ErrInvalidRecords, "Apply %q", name)
			assert.NotErrorIs(t, err, rfc2136.ErrTransient, "Apply %q", name)
			rec, err := p.Read(ctx, name)
			assert.ErrorIs(t, err, rfc2136.ErrInvalidName, "Read %q", name)
			assert.Equal(t, dnsplan.Records{}, rec, "Read %q", name)
		}
	}
	assert.Equal(t, before, zone(t, s), "nothing was written")

	// The canonical name works, and reads back what was written.
	require.NoError(t, p.Apply(ctx, "abc.dnsplan.test", dnsplan.Records{}, r))
	rec, err := p.Read(ctx, "abc.dnsplan.test")
	require.NoError(t, err)
	assert.Equal(t, r.Targets, rec.Targets)
	assert.Equal(t, fence.Token(1), rec.Generation)
	_, err = p.Read(ctx, "abc.dnsplan.test.")
	assert.ErrorIs(t, err, rfc2136.ErrInvalidName, "no alias with a trailing dot")
}

// TestTwoWritersOfOneGeneration: two writers rewrite generation 5 with
// different targets, both having read the same state. The first lands
// and renews the version; the second, conditioned on what it read, is
// refused with a *dnsplan.VersionConflictError, and the first's targets
// stay.
func TestTwoWritersOfOneGeneration(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}))
	read, err := p.Read(ctx, api)
	require.NoError(t, err)
	require.Equal(t, fence.Token(5), read.Generation)
	require.NotEmpty(t, read.Version, "every write has a version")

	first := dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg("10.0.0.2", 2)}}
	second := dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg("10.0.0.3", 3)}}
	require.NoError(t, p.Apply(ctx, api, read, first))
	err = p.Apply(ctx, api, read, second)
	var conflict *dnsplan.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	assert.ErrorIs(t, err, fence.ErrStale)
	var stale *fence.StaleError
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, fence.Token(5), stale.Have)
	assert.Equal(t, fence.Token(5), stale.Want)
	assert.Equal(t, api, conflict.Endpoint)
	assert.Equal(t, fence.Token(5), conflict.Generation)
	assert.Equal(t, read.Version, conflict.Want)

	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, first.Targets, rec.Targets)
	assert.Equal(t, conflict.Have, rec.Version, "the refusal names the version found")
	assert.NotEqual(t, read.Version, rec.Version, "a rewrite of the same generation renews the version")

	// The same generation, the same targets: a new version all the same.
	require.NoError(t, p.Apply(ctx, api, rec, first))
	again, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.NotEqual(t, rec.Version, again.Version)

	// A condition naming no version is a condition on the old format,
	// which the endpoint no longer has.
	err = p.Apply(ctx, api, dnsplan.Records{Generation: 5}, second)
	require.ErrorAs(t, err, &conflict)
	assert.Equal(t, "", conflict.Want)
	assert.Equal(t, again.Version, conflict.Have)
}

// TestOldGenerationFormat: an endpoint written before versions existed,
// whose generation TXT holds "dnsplan-generation=N" alone (here written
// by hand, with owner names in capitals), reads with Version "", and an
// Apply conditioned on that replaces it; anything else in the generation
// TXT is corrupt.
func TestOldGenerationFormat(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	// Written by hand, in capitals: the server may answer with the owner
	// names as written, which name the same records.
	operator(t, s, nil, []string{
		"API.dnsplan.test. 30 IN A 10.0.0.1",
		`_DNSPLAN.Api.DNSPLAN.test. 30 IN TXT "dnsplan-generation=3"`,
		`_dnsplan-WEIGHTS.api.dnsplan.TEST. 30 IN TXT "10.0.0.1=4"`,
	})
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{Generation: 3, Targets: []dnsplan.Target{tg("10.0.0.1", 4)}}, rec)

	next := dnsplan.Records{Generation: 4, Targets: []dnsplan.Target{tg("10.0.0.9", 1)}}
	require.NoError(t, p.Apply(ctx, api, rec, next))
	rec, err = p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, next.Targets, rec.Targets)
	assert.Equal(t, fence.Token(4), rec.Generation)
	assert.NotEmpty(t, rec.Version)

	for _, bad := range []string{
		`"dnsplan-generation=4" "dnsplan-version=zz"`,
		`"dnsplan-generation=4" "dnsplan-version="`,
		`"dnsplan-generation=4" "dnsplan-version=` + strings.Repeat("a", 32) + `" "x"`,
		`"dnsplan-version=` + strings.Repeat("a", 32) + `" "dnsplan-generation=4"`,
		`"dnsplan-generation=4 dnsplan-version=` + strings.Repeat("a", 32) + `"`,
		`"dnsplan-generation=0"`,
		`"dnsplan-generation=05"`, // a prerequisite naming 5 would never match it
		`"dnsplan-generation=+5"`,
		`"dnsplan-generation=-1"`,
		`"note"`,
	} {
		operator(t, s, []string{"_dnsplan.api.dnsplan.test. 0 IN TXT \"\""}, []string{"_dnsplan.api.dnsplan.test. 30 IN TXT " + bad})
		rec, err := p.Read(ctx, api)
		assert.ErrorIs(t, err, rfc2136.ErrCorrupt, bad)
		assert.NotErrorIs(t, err, dnsplan.ErrCorruptRecords, "%s: the generation itself is damaged: not repairable under a condition", bad)
		assert.NotErrorIs(t, err, rfc2136.ErrTransient, bad)
		assert.Equal(t, dnsplan.Records{}, rec, bad)
	}
}

// TestCorruptWeightsAreRepairable: an operator's note in the weights TXT
// makes Read fail with ErrCorrupt and dnsplan.ErrCorruptRecords, and
// return the generation and version it did read, under which an Apply
// replaces the damaged TXT.
func TestCorruptWeightsAreRepairable(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	want := dnsplan.Records{Generation: 7, Targets: []dnsplan.Target{tg("10.0.0.1", 2), tg("2001:db8::1", 3)}}
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, want))
	good, err := p.Read(ctx, api)
	require.NoError(t, err)

	for _, note := range []string{`"do not touch - ops"`, `"10.0.0.1=0"`, `"10.0.0.1=x"`, `"nonsense=1"`} {
		operator(t, s, nil, []string{"_dnsplan-weights.api.dnsplan.test. 30 IN TXT " + note})
		rec, err := p.Read(ctx, api)
		require.ErrorIs(t, err, rfc2136.ErrCorrupt, note)
		require.ErrorIs(t, err, dnsplan.ErrCorruptRecords, note)
		assert.NotErrorIs(t, err, rfc2136.ErrTransient, note)
		assert.Contains(t, err.Error(), "_dnsplan-weights.api.dnsplan.test")
		assert.Equal(t, dnsplan.Records{Generation: 7, Version: good.Version}, rec, note)

		require.NoError(t, p.Apply(ctx, api, rec, want), "rewritten under the generation and version read")
		good, err = p.Read(ctx, api)
		require.NoError(t, err, note)
		assert.Equal(t, want.Targets, good.Targets)
		assert.Equal(t, want.Generation, good.Generation)
	}
}

// TestForeignRecordsAtTheName: a CNAME at the endpoint (with which BIND
// silently drops the addresses of an update), a CNAME at its generation
// or weights TXT name, a DNAME above it, a delegation above it: Read and
// Apply refuse with dnsplan.ErrNameInUse naming the foreign record, Apply
// writes nothing, and the foreign record stays.
func TestForeignRecordsAtTheName(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	r := dnsplan.Records{Generation: 5, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}
	for _, tc := range []struct {
		endpoint, record, want string
	}{
		{"cname.dnsplan.test", "cname.dnsplan.test. 60 IN CNAME elsewhere.example.", "CNAME elsewhere.example."},
		{"incname.dnsplan.test", "incname.dnsplan.test. 60 IN CNAME ns.dnsplan.test.", "CNAME ns.dnsplan.test."},
		{"gencname.dnsplan.test", "_dnsplan.gencname.dnsplan.test. 60 IN CNAME elsewhere.example.", "_dnsplan.gencname.dnsplan.test"},
		{"wcname.dnsplan.test", "_dnsplan-weights.wcname.dnsplan.test. 60 IN CNAME elsewhere.example.", "_dnsplan-weights.wcname.dnsplan.test"},
		{"api.dname.dnsplan.test", "dname.dnsplan.test. 60 IN DNAME elsewhere.example.", "DNAME elsewhere.example."},
		{"dnamed.dnsplan.test", "dnamed.dnsplan.test. 60 IN DNAME elsewhere.example.", "DNAME elsewhere.example."},
		{"api.deleg.dnsplan.test", "deleg.dnsplan.test. 60 IN NS ns.elsewhere.example.", "NS ns.elsewhere.example."},
		{"cut.dnsplan.test", "cut.dnsplan.test. 60 IN NS ns.elsewhere.example.", "cut.dnsplan.test. NS ns.elsewhere.example."},
		{"a.b.c.deep.dnsplan.test", "c.deep.dnsplan.test. 60 IN DNAME elsewhere.example.", "c.deep.dnsplan.test. DNAME elsewhere.example."},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			operator(t, s, nil, []string{tc.record})
			before := zone(t, s)

			rec, err := p.Read(ctx, tc.endpoint)
			require.ErrorIs(t, err, dnsplan.ErrNameInUse, "Read")
			assert.Contains(t, err.Error(), tc.want)
			assert.NotErrorIs(t, err, rfc2136.ErrTransient)
			assert.Equal(t, dnsplan.Records{}, rec)

			for _, expect := range []dnsplan.Records{{}, {Generation: 4}} {
				err = p.Apply(ctx, tc.endpoint, expect, r)
				require.ErrorIs(t, err, dnsplan.ErrNameInUse, "Apply if %d", expect.Generation)
				assert.Contains(t, err.Error(), tc.want)
				assert.NotErrorIs(t, err, fence.ErrStale)
				assert.NotErrorIs(t, err, rfc2136.ErrTransient)
			}
			assert.Equal(t, before, zone(t, s), "nothing written, nothing deleted")
		})
	}
}

// TestRefusalNeverContradictsItself: whatever the refusal, its text never
// says it expected what it found.
func TestRefusalNeverContradictsItself(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	r := dnsplan.Records{Generation: 2, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, r))
	err := p.Apply(ctx, api, dnsplan.Records{}, r)
	var stale *fence.StaleError
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, fence.Token(2), stale.Have)
	assert.Equal(t, fence.Token(0), stale.Want)
	assert.NotContains(t, err.Error(), "found no token")
}

// fakeServer answers every query and update on loopback with rcode, or
// not at all for rcode -1. It stops when the test ends.
func fakeServer(t *testing.T, rcode int) string {
	return fakeHandler(t, func(w dns.ResponseWriter, m *dns.Msg) {
		if rcode < 0 {
			return
		}
		r := new(dns.Msg)
		r.SetRcode(m, rcode)
		_ = w.WriteMsg(r)
	})
}

// fakeHandler serves h over UDP and TCP on one loopback port, unsigned
// (no TSIG key: a signed request is handed to h unverified). It stops
// when the test ends.
func fakeHandler(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fakeHandler(t, h) // that TCP port was taken; try another pair
	}
	var wg sync.WaitGroup
	// Accept UPDATE too: miekg/dns answers NOTIMP to it by default.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	servers := []*dns.Server{{PacketConn: pc, Handler: h, MsgAcceptFunc: accept}, {Listener: l, Handler: h, MsgAcceptFunc: accept}}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.ActivateAndServe()
		}()
		<-started
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// TestTransientAndPermanentErrors: a timeout, a server that is not
// listening, SERVFAIL match ErrTransient; REFUSED and NOTAUTH match
// ErrServer and not ErrTransient.
func TestTransientAndPermanentErrors(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	r := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}
	for _, tc := range []struct {
		name      string
		addr      string
		transient bool
		text      string
	}{
		{"silent", fakeServer(t, -1), true, "timeout"},
		{"closed", closed, true, "refused"},
		{"servfail", fakeServer(t, dns.RcodeServerFailure), true, "SERVFAIL"},
		{"refused", fakeServer(t, dns.RcodeRefused), false, "REFUSED"},
		{"notauth", fakeServer(t, dns.RcodeNotAuth), false, "NOTAUTH"},
		{"notimp", fakeServer(t, dns.RcodeNotImplemented), false, "NOTIMP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				p, err := rfc2136.New(rfc2136.Config{Server: tc.addr, Zone: bindtest.Zone, Net: network, Timeout: 50 * time.Millisecond})
				require.NoError(t, err)
				_, rerr := p.Read(ctx, api)
				aerr := p.Apply(ctx, api, dnsplan.Records{}, r)
				for _, err := range []error{rerr, aerr} {
					require.Error(t, err)
					assert.Equal(t, tc.transient, errors.Is(err, rfc2136.ErrTransient), "%s: %v", network, err)
					assert.Contains(t, err.Error(), tc.text, network)
					assert.NotErrorIs(t, err, fence.ErrStale)
					if tc.text == tc.name || strings.EqualFold(tc.text, tc.name) {
						assert.ErrorIs(t, err, rfc2136.ErrServer)
					}
				}
			}
		})
	}
}

// TestWildcardCNAMEIsNotAtTheName: a wildcard CNAME in the zone answers
// for every name not written yet, but no CNAME is at the endpoint: the
// endpoint reads as never written (and the check writes nothing), is
// written, and then reads back; a CNAME written at a name under the same
// wildcard is still refused.
func TestWildcardCNAMEIsNotAtTheName(t *testing.T) {
	s := bindtest.Start(t)
	p := newProvider(t, s)
	operator(t, s, nil, []string{"*.dnsplan.test. 60 IN CNAME lb.elsewhere.example."})
	before := zone(t, s)
	rec, err := p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, dnsplan.Records{}, rec)
	assert.Equal(t, before, zone(t, s), "telling a wildcard from a CNAME writes nothing")

	want := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 2)}}
	require.NoError(t, p.Apply(ctx, api, rec, want))
	rec, err = p.Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, want.Targets, rec.Targets)

	operator(t, s, nil, []string{"real.dnsplan.test. 60 IN CNAME lb.elsewhere.example."})
	_, err = p.Read(ctx, "real.dnsplan.test")
	assert.ErrorIs(t, err, dnsplan.ErrNameInUse)
	assert.ErrorIs(t, p.Apply(ctx, "real.dnsplan.test", dnsplan.Records{}, want), dnsplan.ErrNameInUse)
}

// TestMisuseIsRefusedBeforeIO: a nil or zero *Provider, and an expected
// version this provider could not have written, are refused with
// dnsplan.ErrInvalidArgument, never a panic or an exchange.
func TestMisuseIsRefusedBeforeIO(t *testing.T) {
	r := dnsplan.Records{Generation: 2, Targets: []dnsplan.Target{tg("10.0.0.1", 1)}}
	for _, p := range []*rfc2136.Provider{nil, {}} {
		_, err := p.Read(ctx, api)
		assert.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
		assert.ErrorIs(t, p.Apply(ctx, api, dnsplan.Records{}, r), dnsplan.ErrInvalidArgument)
	}
	p, err := rfc2136.New(rfc2136.Config{Server: "192.0.2.1:53", Zone: bindtest.Zone, Timeout: time.Millisecond})
	require.NoError(t, err)
	for _, expect := range []dnsplan.Records{
		{Version: strings.Repeat("a", 32)}, // a version without a generation
		{Generation: 1, Version: "7"},      // MemoryProvider's
		{Generation: 1, Version: strings.Repeat("A", 32)},
		{Generation: 1, Version: strings.Repeat("a", 300)},
		{Generation: 1, Version: "\"x\" \"y\""},
	} {
		err := p.Apply(ctx, api, expect, r)
		assert.ErrorIs(t, err, dnsplan.ErrInvalidArgument, "%+v", expect)
		assert.NotErrorIs(t, err, rfc2136.ErrTransient, "%+v", expect)
	}
}

// TestConfigNamesAreCanonicalized: the zone and the metadata label may be
// written in any case; escapes in them are refused.
func TestConfigNamesAreCanonicalized(t *testing.T) {
	s := bindtest.Start(t)
	p, err := rfc2136.New(rfc2136.Config{Server: s.Addr(), Zone: "DNSPLAN.Test", MetaPrefix: "_DNSPLAN", KeyName: bindtest.KeyName, Secret: s.Secret()})
	require.NoError(t, err)
	want := dnsplan.Records{Generation: 1, Targets: []dnsplan.Target{tg("10.0.0.1", 2)}}
	require.NoError(t, p.Apply(ctx, api, dnsplan.Records{}, want))
	rec, err := newProvider(t, s).Read(ctx, api)
	require.NoError(t, err)
	assert.Equal(t, want.Targets, rec.Targets, "the same records as with the canonical config")
	for _, cfg := range []rfc2136.Config{
		{Server: s.Addr(), Zone: `\100nsplan.test`},
		{Server: s.Addr(), Zone: "dnsplan.test", MetaPrefix: `_dns\.plan`},
		{Server: s.Addr(), Zone: "dnsplan.test", MetaPrefix: "_dns plan"},
		{Server: s.Addr(), Zone: "."},
	} {
		_, err := rfc2136.New(cfg)
		assert.ErrorIs(t, err, rfc2136.ErrInvalidConfig, "%+v", cfg)
	}
}
