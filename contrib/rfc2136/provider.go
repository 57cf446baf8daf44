package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

// Defaults of Config.
const (
	// DefaultTTL is the TTL of the records written.
	DefaultTTL = 30
	// DefaultTimeout bounds one DNS exchange.
	DefaultTimeout = 2 * time.Second
	// DefaultMetaPrefix is the label in front of an endpoint's name that
	// names its generation TXT record.
	DefaultMetaPrefix = "_dnsplan"
	// DefaultAlgorithm is the TSIG algorithm.
	DefaultAlgorithm = dns.HmacSHA256
	// ednsUDPSize is the largest UDP answer a query asks for: the size
	// DNS Flag Day 2020 settled on, which crosses real networks without
	// IP fragmentation. A larger answer comes back truncated and is asked
	// again over TCP.
	ednsUDPSize = 1232
	// maxTargetsLimit is the largest valid Config.MaxTargets; see there.
	maxTargetsLimit = 768
	// maxReadAttempts bounds the retries of a read torn by a concurrent
	// update.
	maxReadAttempts = 4
)

var (
	// ErrInvalidConfig is matched by every error New returns for an
	// invalid Config.
	ErrInvalidConfig = errors.New("rfc2136: invalid config")
	// errNilContext is returned for a nil context, before any I/O.
	errNilContext = fmt.Errorf("%w: nil context", dnsplan.ErrInvalidArgument)
	// ErrInvalidName is matched by the refusal of an endpoint that is not
	// a valid DNS name inside the zone. It also matches
	// dnsplan.ErrInvalidRecords.
	ErrInvalidName = fmt.Errorf("%w: endpoint is not a name in the zone", dnsplan.ErrInvalidRecords)
	// ErrServer is matched when the server answers with an error code
	// other than a failed prerequisite (REFUSED, NOTAUTH for a bad TSIG
	// key, SERVFAIL, ...); the error names the code.
	ErrServer = errors.New("rfc2136: server error")
	// ErrTruncated is matched when an answer came back truncated and could
	// not be had whole: the retry over TCP failed (the error wraps that
	// failure too), or the server truncated the answer over TCP as well.
	// A truncated answer is never read as data.
	ErrTruncated = errors.New("rfc2136: answer truncated")
	// ErrCorrupt is matched when the metadata TXT records of an endpoint
	// cannot be parsed.
	ErrCorrupt = errors.New("rfc2136: corrupt metadata")
)

// Config configures a Provider. Server and Zone are required; every other
// zero field means its default.
type Config struct {
	// Server is the address of the primary server, "host:port".
	Server string
	// Zone is the zone the endpoints live in, e.g. "example.com." (the
	// trailing dot is optional). Every endpoint must be a name in it.
	Zone string
	// KeyName, Secret and Algorithm are the TSIG key that signs every
	// message: the key's name, its base64 secret, and its algorithm (zero:
	// DefaultAlgorithm, hmac-sha256). Without KeyName messages are not
	// signed, which a server should only accept on a trusted network.
	KeyName, Secret, Algorithm string
	// TTL of the records written. Zero means DefaultTTL.
	TTL uint32
	// Timeout bounds one exchange with the server, below the context's
	// deadline. Zero means DefaultTimeout; negative is invalid.
	Timeout time.Duration
	// Net is the transport of queries: "udp" (the default), where an
	// answer that comes back truncated is asked again over TCP, or "tcp".
	// UPDATE messages always go over TCP.
	Net string
	// MetaPrefix is the label prepended to an endpoint's name to name its
	// generation TXT record (zero: DefaultMetaPrefix); the weights TXT is
	// at MetaPrefix+"-weights". It must be a single label.
	MetaPrefix string
	// MaxTargets bounds the targets of one endpoint. Zero means
	// dnsplan.DefaultMaxTargets; negative or above 768 is invalid: the
	// UPDATE that writes 768 targets, with the longest names, addresses
	// and weights, fills most of the 65535 bytes of a DNS message.
	MaxTargets int
}

// Provider is a dnsplan.Provider for a DNS server that accepts RFC 2136
// dynamic updates. See the package documentation for the record layout.
// It is safe for concurrent use: every call is an independent exchange.
type Provider struct {
	cfg Config
	// queries carries queries over Config.Net; stream is the TCP client
	// of every UPDATE and of the queries whose UDP answer came back
	// truncated. With Config.Net "tcp" they are the same client.
	queries, stream *dns.Client
}

var _ dnsplan.Provider = (*Provider)(nil)

// New returns a Provider, or an error matching ErrInvalidConfig that names
// every invalid field. It does not contact the server.
func New(cfg Config) (*Provider, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		bad("Config.Server %q is not host:port: %v", cfg.Server, err)
	}
	if cfg.Zone == "" {
		bad("Config.Zone is empty")
	} else if _, ok := dns.IsDomainName(cfg.Zone); !ok {
		bad("Config.Zone %q is not a domain name", cfg.Zone)
	}
	cfg.Zone = dns.CanonicalName(cfg.Zone)
	if cfg.Algorithm == "" {
		cfg.Algorithm = DefaultAlgorithm
	}
	cfg.Algorithm = dns.CanonicalName(cfg.Algorithm)
	switch {
	case cfg.KeyName == "" && cfg.Secret != "":
		bad("Config.Secret is set without a Config.KeyName")
	case cfg.KeyName != "":
		if _, ok := dns.IsDomainName(cfg.KeyName); !ok {
			bad("Config.KeyName %q is not a domain name", cfg.KeyName)
		}
		if cfg.Secret == "" {
			bad("Config.KeyName %q has no Config.Secret", cfg.KeyName)
		}
		switch cfg.Algorithm {
		case dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512:
		default:
			bad("Config.Algorithm %q is not a supported TSIG HMAC", cfg.Algorithm)
		}
		cfg.KeyName = dns.CanonicalName(cfg.KeyName)
	}
	if cfg.Timeout < 0 {
		bad("Config.Timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch cfg.Net {
	case "":
		cfg.Net = "udp"
	case "udp", "tcp":
	default:
		bad("Config.Net %q is neither udp nor tcp", cfg.Net)
	}
	if cfg.MetaPrefix == "" {
		cfg.MetaPrefix = DefaultMetaPrefix
	}
	if strings.Contains(cfg.MetaPrefix, ".") || len(cfg.MetaPrefix) > 50 {
		bad("Config.MetaPrefix %q is not a single label of at most 50 bytes", cfg.MetaPrefix)
	}
	if cfg.MaxTargets < 0 || cfg.MaxTargets > maxTargetsLimit {
		bad("Config.MaxTargets %d is outside [0, %d]", cfg.MaxTargets, maxTargetsLimit)
	}
	if cfg.MaxTargets == 0 {
		cfg.MaxTargets = dnsplan.DefaultMaxTargets
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	client := func(network string) *dns.Client {
		c := &dns.Client{Net: network, Timeout: cfg.Timeout}
		if cfg.KeyName != "" {
			c.TsigSecret = map[string]string{cfg.KeyName: cfg.Secret}
		}
		return c
	}
	p := &Provider{cfg: cfg, stream: client("tcp")}
	p.queries = p.stream
	if cfg.Net == "udp" {
		p.queries = client("udp")
	}
	return p, nil
}

// names returns the endpoint's owner name and the names of its generation
// and weights TXT records, or an error matching ErrInvalidName.
func (p *Provider) names(endpoint string) (owner, gen, weights string, err error) {
	if err := dnsplan.ValidateEndpoint(endpoint); err != nil {
		return "", "", "", fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	owner = dns.CanonicalName(endpoint)
	if _, ok := dns.IsDomainName(owner); !ok || !dns.IsSubDomain(p.cfg.Zone, owner) || owner == p.cfg.Zone {
		return "", "", "", fmt.Errorf("%w: %q in zone %q", ErrInvalidName, endpoint, p.cfg.Zone)
	}
	gen = p.cfg.MetaPrefix + "." + owner
	weights = p.cfg.MetaPrefix + "-weights." + owner
	if _, ok := dns.IsDomainName(gen); !ok || len(weights) > 254 {
		return "", "", "", fmt.Errorf("%w: %q is too long for its metadata names", ErrInvalidName, endpoint)
	}
	return owner, gen, weights, nil
}

// exchange sends m over c, signed if a key is configured, within the
// context and the per-exchange timeout.
func (p *Provider) exchange(ctx context.Context, c *dns.Client, m *dns.Msg) (*dns.Msg, error) {
	if p.cfg.KeyName != "" {
		// A message sent again (a query retried over TCP) gets a fresh
		// TSIG placeholder, never a second one.
		if m.IsTsig() != nil {
			m.Extra = m.Extra[:len(m.Extra)-1]
		}
		m.SetTsig(p.cfg.KeyName, p.cfg.Algorithm, 300, time.Now().Unix())
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, p.cfg.Server)
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("rfc2136: exchange with %s over %s: %w (%v)", p.cfg.Server, c.Net, cerr, err)
		}
		return nil, fmt.Errorf("rfc2136: exchange with %s over %s: %w", p.cfg.Server, c.Net, err)
	}
	return r, nil
}

// query returns the answer RRs of type t at name. An answer truncated
// over UDP is asked again over TCP, and a truncated answer is never
// returned: BIND, for one, sends a truncated answer with no records at
// all, which would read as an endpoint without targets or weights.
func (p *Provider) query(ctx context.Context, name string, t uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.RecursionDesired = false
	m.SetEdns0(ednsUDPSize, false)
	r, err := p.exchange(ctx, p.queries, m)
	if err == nil && r.Truncated && p.queries != p.stream {
		r, err = p.exchange(ctx, p.stream, m)
		if err != nil {
			return nil, fmt.Errorf("%w: query %s %s over udp, and the retry failed: %w", ErrTruncated, name, dns.TypeToString[t], err)
		}
	}
	if err != nil {
		return nil, err
	}
	if r.Truncated {
		return nil, fmt.Errorf("%w: query %s %s over tcp", ErrTruncated, name, dns.TypeToString[t])
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%w: query %s %s answered %s", ErrServer, name, dns.TypeToString[t], dns.RcodeToString[r.Rcode])
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == t && strings.EqualFold(rr.Header().Name, name) {
			out = append(out, rr)
		}
	}
	return out, nil
}

// generationText is the single string of the generation TXT record.
func generationText(g fence.Token) string { return "dnsplan-generation=" + g.String() }

// readGeneration returns the endpoint's applied generation (zero if it has
// no generation TXT record).
func (p *Provider) readGeneration(ctx context.Context, name string) (fence.Token, error) {
	rrs, err := p.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return 0, err
	}
	switch len(rrs) {
	case 0:
		return 0, nil
	case 1:
		txt := rrs[0].(*dns.TXT).Txt
		if len(txt) == 1 {
			if v, ok := strings.CutPrefix(txt[0], "dnsplan-generation="); ok {
				if g, err := fence.ParseToken(v); err == nil && g != 0 {
					return g, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: %s TXT %q is not dnsplan-generation=N", ErrCorrupt, name, txt)
	}
	return 0, fmt.Errorf("%w: %s has %d TXT records, want 1", ErrCorrupt, name, len(rrs))
}

// Read returns the endpoint's applied generation and targets. It reads the
// generation TXT, the A, AAAA and weights records, and the generation TXT
// again, and starts over if an update landed in between, so the Records
// it returns are the state of one instant. A target without a weight in
// the weights TXT (written by hand, say) has weight 1.
func (p *Provider) Read(ctx context.Context, endpoint string) (dnsplan.Records, error) {
	if ctx == nil {
		return dnsplan.Records{}, errNilContext
	}
	owner, genName, weightsName, err := p.names(endpoint)
	if err != nil {
		return dnsplan.Records{}, err
	}
	for attempt := 1; ; attempt++ {
		before, err := p.readGeneration(ctx, genName)
		if err != nil {
			return dnsplan.Records{}, err
		}
		var addrs []netip.Addr
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			rrs, err := p.query(ctx, owner, t)
			if err != nil {
				return dnsplan.Records{}, err
			}
			for _, rr := range rrs {
				var ip net.IP
				switch rr := rr.(type) {
				case *dns.A:
					ip = rr.A
				case *dns.AAAA:
					ip = rr.AAAA
				}
				if a, ok := netip.AddrFromSlice(ip); ok {
					if t == dns.TypeA {
						a = a.Unmap()
					}
					addrs = append(addrs, a)
				}
			}
		}
		weights, err := p.readWeights(ctx, weightsName)
		if err != nil {
			return dnsplan.Records{}, err
		}
		after, err := p.readGeneration(ctx, genName)
		if err != nil {
			return dnsplan.Records{}, err
		}
		if before != after {
			if attempt >= maxReadAttempts {
				return dnsplan.Records{}, fmt.Errorf("rfc2136: read of %q torn by %d concurrent updates: %w", endpoint, attempt, fence.ErrContended)
			}
			continue
		}
		r := dnsplan.Records{Generation: after}
		for _, a := range addrs {
			w := weights[a]
			if w == 0 {
				w = 1
			}
			r.Targets = append(r.Targets, dnsplan.Target{Addr: a, Weight: w})
		}
		dnsplan.SortTargets(r.Targets)
		return r, nil
	}
}

// readWeights parses the weights TXT: one string "address=weight" per
// target.
func (p *Provider) readWeights(ctx context.Context, name string) (map[netip.Addr]uint32, error) {
	rrs, err := p.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	w := map[netip.Addr]uint32{}
	for _, rr := range rrs {
		for _, s := range rr.(*dns.TXT).Txt {
			a, n, ok := strings.Cut(s, "=")
			addr, err1 := netip.ParseAddr(a)
			v, err2 := strconv.ParseUint(n, 10, 32)
			if !ok || err1 != nil || err2 != nil || v == 0 {
				return nil, fmt.Errorf("%w: %s weight %q is not address=weight", ErrCorrupt, name, s)
			}
			w[addr] = uint32(v)
		}
	}
	return w, nil
}

// Apply replaces the endpoint's A and AAAA records, its generation TXT and
// its weights TXT with r in one UPDATE message whose prerequisite is the
// generation TXT's current value: "dnsplan-generation=<expect>" present
// (RFC 2136 §2.4.2, RRset exists, value dependent), or, for expect zero,
// no generation TXT at all (§2.4.3). The server checks the prerequisite
// and applies the update as one transaction, so a refusal — NXRRSET or
// YXRRSET — means the endpoint changed; Apply then reads the generation
// and returns a *fence.StaleError with it as Have. Records that
// dnsplan.ValidateRecords refuses, empty ones above all, are refused
// before any I/O.
func (p *Provider) Apply(ctx context.Context, endpoint string, expectRecords dnsplan.Records, r dnsplan.Records) error {
	expect := expectRecords.Generation // TODO(rfc2136 helper): condition on expectRecords.Version too
	if ctx == nil {
		return errNilContext
	}
	if err := dnsplan.ValidateRecords(endpoint, r, p.cfg.MaxTargets); err != nil {
		return err
	}
	owner, genName, weightsName, err := p.names(endpoint)
	if err != nil {
		return err
	}
	// UPDATE always goes over TCP: see the package documentation.
	resp, err := p.exchange(ctx, p.stream, p.update(owner, genName, weightsName, expect, r))
	if err != nil {
		return err
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNXRrset, dns.RcodeYXRrset:
		have, err := p.readGeneration(ctx, genName)
		if err != nil {
			return fmt.Errorf("rfc2136: update of %q refused (%s), then: %w", endpoint, dns.RcodeToString[resp.Rcode], err)
		}
		return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: endpoint, Have: have, Want: expect}
	}
	return fmt.Errorf("%w: update of %q answered %s", ErrServer, endpoint, dns.RcodeToString[resp.Rcode])
}

// update returns the UPDATE message of Apply, unsigned.
func (p *Provider) update(owner, genName, weightsName string, expect fence.Token, r dnsplan.Records) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(p.cfg.Zone)
	// Every address record repeats the owner name: compressed, a record
	// takes 28 bytes or less whatever the name's length, which is what
	// lets maxTargetsLimit be as high as 768.
	m.Compress = true
	if expect == 0 {
		m.RRsetNotUsed([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: genName, Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	} else {
		m.Used([]dns.RR{p.txt(genName, generationText(expect))})
	}
	m.RemoveRRset([]dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET}},
		&dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}},
		&dns.TXT{Hdr: dns.RR_Header{Name: genName, Rrtype: dns.TypeTXT, Class: dns.ClassINET}},
		&dns.TXT{Hdr: dns.RR_Header{Name: weightsName, Rrtype: dns.TypeTXT, Class: dns.ClassINET}},
	})
	rrs := make([]dns.RR, 0, len(r.Targets)+2)
	weights := make([]string, 0, len(r.Targets))
	for _, t := range r.Targets {
		h := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: p.cfg.TTL}
		if t.Addr.Is4() {
			h.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: h, A: t.Addr.AsSlice()})
		} else {
			h.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: h, AAAA: t.Addr.AsSlice()})
		}
		weights = append(weights, t.Addr.String()+"="+strconv.FormatUint(uint64(t.Weight), 10))
	}
	rrs = append(rrs, p.txt(genName, generationText(r.Generation)), p.txt(weightsName, weights...))
	m.Insert(rrs)
	return m
}

func (p *Provider) txt(name string, s ...string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: p.cfg.TTL}, Txt: s}
}
