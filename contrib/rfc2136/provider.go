package rfc2136

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// DefaultMaxRecordsPerType is the most A, and the most AAAA,
	// records an endpoint may have: BIND's default max-records-per-type
	// (9.18.28 and later), above which it answers an update SERVFAIL.
	DefaultMaxRecordsPerType = 100
	// maxTargetsLimit is the largest valid Config.MaxTargets; see there.
	maxTargetsLimit = 768
	// maxReadAttempts bounds the retries of a read torn by a concurrent
	// update.
	maxReadAttempts = 4
	// DefaultMaxBatch is the most Applies one UPDATE message carries.
	DefaultMaxBatch = 64
	// maxBatchLimit is the largest valid Config.MaxBatch.
	maxBatchLimit = 1024
	// maxBatchBytes bounds the size of a batched UPDATE (before its TSIG
	// record): half of the 65535 bytes of a DNS message over TCP. An
	// Apply whose UPDATE alone is larger is sent alone.
	maxBatchBytes = 32 << 10
)

var (
	// ErrInvalidConfig is matched by every error New returns for an
	// invalid Config.
	ErrInvalidConfig = errors.New("rfc2136: invalid config")
	// errNilContext is returned for a nil context, before any I/O.
	errNilContext = fmt.Errorf("%w: nil context", dnsplan.ErrInvalidArgument)
	// ErrInvalidName is matched by the refusal, before any I/O, of an
	// endpoint that is not a canonical name inside the zone: 1 to 253
	// bytes of lowercase ASCII letters, digits, '-', '_' and '.', labels
	// of 1 to 63 bytes, no leading or trailing dot, no escape. A name DNS
	// would read differently from the way it is written (`\065bc`,
	// "ABC", "abc.") is refused rather than written under one name and
	// read under another. It also matches dnsplan.ErrInvalidRecords.
	ErrInvalidName = fmt.Errorf("%w: endpoint is not a canonical name in the zone", dnsplan.ErrInvalidRecords)
	// ErrServer is matched when the server answers with an error code
	// other than a failed prerequisite (REFUSED, NOTAUTH for a bad TSIG
	// key, SERVFAIL, ...), or with an answer that is not authoritative;
	// the error names the code. It is also matched by an answer that is
	// not the server's word on the message sent: one without a TSIG
	// signature when a key is configured (miekg/dns checks a signature
	// only if there is one), or one to another question or opcode. Of
	// these only SERVFAIL also matches ErrTransient.
	ErrServer = errors.New("rfc2136: server error")
	// ErrTruncated is matched when an answer came back truncated and could
	// not be had whole: the retry over TCP failed (the error wraps that
	// failure too), or the server truncated the answer over TCP as well.
	// A truncated answer is never read as data.
	ErrTruncated = errors.New("rfc2136: answer truncated")
	// ErrCorrupt is matched when the metadata TXT records of an endpoint
	// cannot be parsed. If the generation TXT is intact and only the
	// weights TXT is damaged, the error also matches
	// dnsplan.ErrCorruptRecords and Read returns the generation and
	// version along with it, so that an Apply conditioned on them
	// replaces the damage. A damaged generation TXT cannot be named in
	// an update's prerequisite, so it is not repairable under a
	// condition: an operator must fix or delete it.
	ErrCorrupt = errors.New("rfc2136: corrupt metadata")
	// ErrTransient is matched by failures that may pass by themselves, so
	// that trying again later is the right response: an exchange that
	// timed out or failed on the network (the server down, restarting,
	// unreachable), a SERVFAIL, a read torn by concurrent updates
	// (fence.ErrContended), a context that ended. Every other error is
	// permanent until someone changes the server, the zone or the call:
	// ErrInvalidName, ErrCorrupt, dnsplan.ErrNameInUse, ErrServer for
	// REFUSED, NOTAUTH or any code but SERVFAIL, a TSIG failure, invalid
	// records or arguments. A stale condition (fence.ErrStale) is neither:
	// read again and decide again.
	ErrTransient = errors.New("rfc2136: transient failure")
)

// Config configures a Provider. Server and Zone are required; every other
// zero field means its default.
type Config struct {
	// Server is the address of the primary server, "host:port", the
	// port a number (53, usually).
	Server string
	// Zone is the zone the endpoints live in, e.g. "example.com." (the
	// trailing dot is optional, case does not matter; no escapes). Every
	// endpoint must be a name in it.
	Zone string
	// KeyName, Secret and Algorithm are the TSIG key that signs every
	// message: the key's name, its secret (standard base64, as
	// tsig-keygen prints it), and its algorithm (zero:
	// DefaultAlgorithm, hmac-sha256). Without KeyName messages are not
	// signed, which a server should only accept on a trusted network.
	KeyName, Secret, Algorithm string
	// TTL of the records written. Zero means DefaultTTL; above
	// 2147483647 is invalid: resolvers read a TTL with its top bit set
	// as 0 (RFC 2181 §8).
	TTL uint32
	// Timeout bounds one exchange with the server, below the context's
	// deadline; a context cancelled mid-exchange ends it at once. Zero
	// means DefaultTimeout; negative is invalid.
	Timeout time.Duration
	// Net is the transport of queries: "udp" (the default), where an
	// answer that comes back truncated is asked again over TCP, or "tcp".
	// UPDATE messages always go over TCP.
	Net string
	// MetaPrefix is the label prepended to an endpoint's name to name its
	// generation TXT record (zero: DefaultMetaPrefix); the weights TXT is
	// at MetaPrefix+"-weights". It must be a single label of at most 50
	// letters, digits, '-' and '_'; case does not matter.
	MetaPrefix string
	// MaxTargets bounds the targets of one endpoint. Zero means
	// dnsplan.DefaultMaxTargets; negative or above 768 is invalid: the
	// UPDATE that writes 768 targets, with the longest names, addresses
	// and weights, fills most of the 65535 bytes of a DNS message.
	MaxTargets int
	// MaxBatch bounds the Applies that one UPDATE message carries. Zero
	// means DefaultMaxBatch (64); 1 sends every Apply in an UPDATE of its
	// own; negative or above 1024 is invalid. See the package
	// documentation, "Group commit".
	MaxBatch int
	// MaxRecordsPerType bounds the IPv4 targets of one endpoint, and
	// its IPv6 targets: the records of one type at one name that the
	// server accepts. Zero means DefaultMaxRecordsPerType (100, BIND's
	// default max-records-per-type since 9.18.28, which answers an
	// update beyond it SERVFAIL, a failure that would never pass by
	// itself); negative or above 768 is invalid. Apply refuses an
	// endpoint beyond it before any I/O (dnsplan.ErrInvalidRecords).
	// Raise it only with the server's limit.
	MaxRecordsPerType int
}

// Provider is a dnsplan.Provider for a DNS server that accepts RFC 2136
// dynamic updates. See the package documentation for the record layout.
// It is safe for concurrent use: every Read is an independent exchange,
// and concurrent Applies share UPDATE messages (see Group commit in the
// package documentation).
type Provider struct {
	cfg Config
	// queries carries queries over Config.Net; stream is the TCP client
	// of every UPDATE and of the queries whose UDP answer came back
	// truncated. With Config.Net "tcp" they are the same client.
	queries, stream *dns.Client
	// batch holds the Applies waiting for an UPDATE.
	batch batcher
}

var _ dnsplan.Provider = (*Provider)(nil)

// New returns a Provider, or an error matching ErrInvalidConfig that names
// every invalid field. It does not contact the server.
func New(cfg Config) (*Provider, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if _, port, err := net.SplitHostPort(cfg.Server); err != nil {
		bad("Config.Server %q is not host:port: %v", cfg.Server, err)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		bad("Config.Server %q has port %q, want a number from 1 to 65535", cfg.Server, port)
	}
	if cfg.Zone == "" {
		bad("Config.Zone is empty")
	} else if z := strings.ToLower(strings.TrimSuffix(cfg.Zone, ".")); checkName(z) != "" {
		bad("Config.Zone %q is not a domain name of letters, digits, '-', '_' and '.': %s", cfg.Zone, checkName(z))
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
		} else if _, err := base64.StdEncoding.DecodeString(cfg.Secret); err != nil {
			bad("Config.Secret is not base64 (%v): no message could be signed with it", err)
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
	cfg.MetaPrefix = strings.ToLower(cfg.MetaPrefix)
	if strings.Contains(cfg.MetaPrefix, ".") || len(cfg.MetaPrefix) > 50 || checkName(cfg.MetaPrefix) != "" {
		bad("Config.MetaPrefix %q is not a single label of at most 50 letters, digits, '-' and '_'", cfg.MetaPrefix)
	}
	if cfg.MaxTargets < 0 || cfg.MaxTargets > maxTargetsLimit {
		bad("Config.MaxTargets %d is outside [0, %d]", cfg.MaxTargets, maxTargetsLimit)
	}
	if cfg.MaxTargets == 0 {
		cfg.MaxTargets = dnsplan.DefaultMaxTargets
	}
	if cfg.TTL > math.MaxInt32 {
		bad("Config.TTL %d is above %d, which resolvers read as 0 (RFC 2181 §8)", cfg.TTL, math.MaxInt32)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxBatch < 0 || cfg.MaxBatch > maxBatchLimit {
		bad("Config.MaxBatch %d is outside [0, %d]", cfg.MaxBatch, maxBatchLimit)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxRecordsPerType < 0 || cfg.MaxRecordsPerType > maxTargetsLimit {
		bad("Config.MaxRecordsPerType %d is outside [0, %d]", cfg.MaxRecordsPerType, maxTargetsLimit)
	}
	if cfg.MaxRecordsPerType == 0 {
		cfg.MaxRecordsPerType = DefaultMaxRecordsPerType
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

// checkName returns why name is not in canonical form — 1 to 253 bytes
// of lowercase ASCII letters, digits, '-', '_' and '.', labels of 1 to 63
// bytes, no leading or trailing dot — or "" if it is.
func checkName(name string) string {
	if name == "" || len(name) > 253 {
		return fmt.Sprintf("%d bytes, want 1 to 253", len(name))
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return fmt.Sprintf("empty label at byte %d", i)
			}
			label = 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			if label++; label > 63 {
				return fmt.Sprintf("label longer than 63 bytes at byte %d", i)
			}
		default:
			return fmt.Sprintf("byte %q at %d is not a lowercase letter, digit, '-', '_' or '.'", c, i)
		}
	}
	if label == 0 {
		return "trailing dot"
	}
	return ""
}

// names are the owner names of one endpoint's records, canonical and
// fully qualified.
type names struct {
	endpoint, owner, gen, weights string
}

// check refuses a nil or zero Provider, and a nil context.
func (p *Provider) check(ctx context.Context, method string) error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: %s on a nil *Provider", dnsplan.ErrInvalidArgument, method)
	case p.stream == nil:
		return fmt.Errorf("%w: %s on a Provider not made by New", dnsplan.ErrInvalidArgument, method)
	case ctx == nil:
		return errNilContext
	}
	return nil
}

// names returns the endpoint's owner name and the names of its generation
// and weights TXT records, or an error matching ErrInvalidName. The
// endpoint must be canonical (see ErrInvalidName), so that the names
// written are the names asked for and the names answered, byte for byte.
func (p *Provider) names(endpoint string) (names, error) {
	if why := checkName(endpoint); why != "" {
		return names{}, fmt.Errorf("%w: %q: %s", ErrInvalidName, endpoint, why)
	}
	if err := dnsplan.ValidateEndpoint(endpoint); err != nil {
		return names{}, fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	n := names{endpoint: endpoint, owner: endpoint + "."}
	if !strings.HasSuffix(n.owner, "."+p.cfg.Zone) {
		return names{}, fmt.Errorf("%w: %q is not below zone %q", ErrInvalidName, endpoint, p.cfg.Zone)
	}
	n.gen = p.cfg.MetaPrefix + "." + n.owner
	n.weights = p.cfg.MetaPrefix + "-weights." + n.owner
	if len(n.weights) > 254 {
		return names{}, fmt.Errorf("%w: %q is too long for its metadata names (%s is %d bytes, limit 254)", ErrInvalidName, endpoint, n.weights, len(n.weights))
	}
	return n, nil
}

// transient marks err as matching ErrTransient.
func transient(err error) error { return fmt.Errorf("%w: %w", ErrTransient, err) }

// exchange sends m over c, signed if a key is configured, within the
// context and the per-exchange timeout. Network failures, timeouts and
// an ended context match ErrTransient; a TSIG failure does not.
func (p *Provider) exchange(ctx context.Context, c *dns.Client, m *dns.Msg) (*dns.Msg, error) {
	return p.exchangeOn(ctx, c, m, nil)
}

// exchangeOn is exchange over *keep if keep is not nil: over the
// connection it holds, or a new one it then holds; after a failure the
// connection is closed and *keep is nil.
func (p *Provider) exchangeOn(ctx context.Context, c *dns.Client, m *dns.Msg, keep **dns.Conn) (*dns.Msg, error) {
	if p.cfg.KeyName != "" {
		// A message sent again (a query retried over TCP) gets a fresh
		// TSIG placeholder, never a second one.
		if m.IsTsig() != nil {
			m.Extra = m.Extra[:len(m.Extra)-1]
		}
		m.SetTsig(p.cfg.KeyName, p.cfg.Algorithm, 300, time.Now().Unix())
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	r, err := p.exchangeConn(parent, ctx, c, m, keep)
	if err != nil {
		var netErr net.Error
		// The caller's context first: ending it closes the connection
		// (exchangeConn), which may fail the exchange before the end
		// reaches ctx, its child.
		ended := parent
		if parent.Err() == nil {
			ended = ctx
		}
		passes := errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || ended.Err() != nil
		if cerr := context.Cause(ended); cerr != nil && ended.Err() != nil {
			err = fmt.Errorf("rfc2136: exchange with %s over %s: %w (%v)", p.cfg.Server, c.Net, cerr, err)
		} else {
			err = fmt.Errorf("rfc2136: exchange with %s over %s: %w", p.cfg.Server, c.Net, err)
		}
		if passes {
			err = transient(err)
		}
		return nil, err
	}
	if err := p.answers(m, r); err != nil {
		return nil, fmt.Errorf("%w: exchange with %s over %s: %w", ErrServer, p.cfg.Server, c.Net, err)
	}
	return r, nil
}

// exchangeConn is c.ExchangeContext within ctx, but ends as soon as
// parent (the caller's context, of which ctx is the per-exchange
// timeout) ends: miekg/dns obeys only a context's deadline once
// connected, so a cancelled context would leave a silent server holding
// the exchange until Config.Timeout. Closing the connection ends its read
// and write at once; the timeout itself ends them by deadline, as an
// i/o timeout.
//
// With keep not nil, the exchange goes over *keep if it holds a
// connection, and leaves the connection in *keep if it succeeded; any
// failure closes it and sets *keep to nil, so that no answer to an
// abandoned message is ever read as the answer to another.
func (p *Provider) exchangeConn(parent, ctx context.Context, c *dns.Client, m *dns.Msg, keep **dns.Conn) (*dns.Msg, error) {
	var conn *dns.Conn
	if keep != nil && *keep != nil {
		// A dns.Conn signs every message after the first as the next
		// of a zone transfer's (with the MAC of the one before), which
		// a server refuses as a bad signature: every message gets a
		// dns.Conn of its own over the same TCP connection.
		conn = &dns.Conn{Conn: (*keep).Conn}
	} else {
		var err error
		if conn, err = c.DialContext(ctx, p.cfg.Server); err != nil {
			return nil, err
		}
	}
	open := conn // conn is set to nil below, maybe before this runs
	stop := context.AfterFunc(parent, func() { _ = open.Close() })
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if !stop() || err != nil || keep == nil {
		_ = conn.Close()
		conn = nil
	}
	if keep != nil {
		*keep = conn
	}
	return r, err
}

// answers returns why r is not the server's answer to m, or nil: it
// must be a response to m's opcode and question (the zone, for an
// UPDATE), and signed if m was. Without these checks a stray or forged
// answer, or a server answering another question, would read as "no
// such records" or "update applied". An error answer may leave out the
// question (a server sends FORMERR for a message it could not parse).
func (p *Provider) answers(m, r *dns.Msg) error {
	if !r.Response || r.Opcode != m.Opcode {
		return fmt.Errorf("the answer to %s is not a response to it (QR %t, opcode %s)", m.Question[0].Name, r.Response, dns.OpcodeToString[r.Opcode])
	}
	q := m.Question[0]
	switch {
	case len(r.Question) == 0 && r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError && r.Rcode != dns.RcodeNXRrset && r.Rcode != dns.RcodeYXRrset:
	case len(r.Question) != 1 || r.Question[0].Qtype != q.Qtype || r.Question[0].Qclass != q.Qclass ||
		dns.CanonicalName(r.Question[0].Name) != dns.CanonicalName(q.Name):
		got := "no question"
		if len(r.Question) > 0 {
			got = fmt.Sprintf("%d questions, the first %s %s %s", len(r.Question), r.Question[0].Name,
				dns.ClassToString[r.Question[0].Qclass], dns.TypeToString[r.Question[0].Qtype])
		}
		return fmt.Errorf("the answer to %s %s %s (%s) is to another question: %s", q.Name, dns.ClassToString[q.Qclass], dns.TypeToString[q.Qtype], dns.OpcodeToString[m.Opcode], got)
	}
	if p.cfg.KeyName != "" && r.IsTsig() == nil {
		return fmt.Errorf("the answer to %s %s (%s, %s) is not signed, though the request was signed with key %s: it is not the server's word",
			q.Name, dns.TypeToString[q.Qtype], dns.OpcodeToString[m.Opcode], dns.RcodeToString[r.Rcode], p.cfg.KeyName)
	}
	return nil
}

// rcodeError is the error of an answer with an error code: it matches
// ErrServer, and ErrTransient if the code is SERVFAIL.
func rcodeError(rcode int, format string, args ...any) error {
	err := fmt.Errorf("%w: "+format+" answered %s", append(append([]any{ErrServer}, args...), dns.RcodeToString[rcode])...)
	if rcode == dns.RcodeServerFailure {
		err = transient(err)
	}
	return err
}

// nameInUse is the error for a record the provider does not own that
// keeps it from serving or writing the name asked for.
func nameInUse(rr dns.RR, why string) error {
	h := rr.Header()
	var data string
	switch rr := rr.(type) {
	case *dns.CNAME:
		data = rr.Target
	case *dns.DNAME:
		data = rr.Target
	case *dns.NS:
		data = rr.Ns
	}
	return fmt.Errorf("%w: %s %s %s (%s; this provider never deletes it: remove it to let the endpoint be written)",
		dnsplan.ErrNameInUse, h.Name, dns.TypeToString[h.Rrtype], data, why)
}

// query returns the answer RRs of type t at name, which is canonical. An
// answer truncated over UDP is asked again over TCP, and a truncated
// answer is never returned: BIND, for one, sends a truncated answer with
// no records at all, which would read as an endpoint without targets or
// weights. An answer that a CNAME at name (not one synthesized from a
// wildcard), a DNAME above it or a delegation above it redirects is an
// error matching dnsplan.ErrNameInUse, never an empty answer.
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
		return nil, rcodeError(r.Rcode, "query %s %s", name, dns.TypeToString[t])
	}
	// A DNAME first: the CNAME it synthesizes says less.
	for _, rr := range r.Answer {
		if d, ok := rr.(*dns.DNAME); ok && dns.IsSubDomain(dns.CanonicalName(d.Hdr.Name), name) {
			return nil, nameInUse(rr, "a DNAME redirects every name below it")
		}
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		h := rr.Header()
		if dns.CanonicalName(h.Name) != name {
			continue // the target of a CNAME, say
		}
		switch {
		case h.Rrtype == t:
			out = append(out, rr)
		case h.Rrtype == dns.TypeCNAME:
			synthesized, err := p.fromWildcard(ctx, name, dns.TypeCNAME)
			if err != nil {
				return nil, fmt.Errorf("rfc2136: query %s %s answered a CNAME, and asking whether a wildcard's failed: %w", name, dns.TypeToString[t], err)
			}
			if !synthesized {
				return nil, nameInUse(rr, "no other record can exist beside a CNAME")
			}
			// A wildcard CNAME answers for a name with no records yet:
			// nothing is at the name, and an update will create it.
			return nil, nil
		}
	}
	if !r.Authoritative {
		for _, rr := range r.Ns {
			if ns, ok := rr.(*dns.NS); ok && dns.CanonicalName(ns.Hdr.Name) != p.cfg.Zone && dns.IsSubDomain(dns.CanonicalName(ns.Hdr.Name), name) {
				return nil, nameInUse(rr, "the name is delegated to another zone")
			}
		}
		return nil, fmt.Errorf("%w: query %s %s answered without authority: is %s the primary of %s?", ErrServer, name, dns.TypeToString[t], p.cfg.Server, p.cfg.Zone)
	}
	return out, nil
}

// fromWildcard reports whether the RRset of type t answered for name
// was synthesized from a wildcard, with an UPDATE whose only content is
// the prerequisite "an RRset of type t exists at name" (RFC 2136
// §2.4.1): servers check prerequisites against the records at the name
// itself, never a wildcard, and an update without updates changes
// nothing. If the server refuses to say (no update rights), the RRset is
// taken as real. Only a CNAME, metadata that does not parse and the
// addresses of an endpoint without a generation TXT are checked, so
// reading an endpoint once written costs nothing more.
func (p *Provider) fromWildcard(ctx context.Context, name string, t uint16) (bool, error) {
	m := new(dns.Msg)
	m.SetUpdate(p.cfg.Zone)
	m.RRsetUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET}}})
	r, err := p.exchange(ctx, p.stream, m)
	if err != nil {
		return false, err
	}
	if r.Rcode == dns.RcodeServerFailure {
		return false, rcodeError(r.Rcode, "update checking for %s at %s", dns.TypeToString[t], name)
	}
	return r.Rcode == dns.RcodeNXRrset, nil
}

// Generation TXT strings: "dnsplan-generation=N" then, for every write
// since versions exist, "dnsplan-version=V", V versionBytes random bytes
// in lowercase hex.
const (
	generationKey = "dnsplan-generation="
	versionKey    = "dnsplan-version="
	versionBytes  = 16
)

// head is what the generation TXT holds.
type head struct {
	gen     fence.Token
	version string
}

// newVersion returns a version never given before, with overwhelming
// probability: 128 random bits.
func newVersion() string {
	b := make([]byte, versionBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// validVersion reports whether v is a version this provider writes.
func validVersion(v string) bool {
	if len(v) != 2*versionBytes {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// text returns the strings of h's generation TXT record: one for a head
// without a version (the format before versions), two otherwise.
func (h head) text() []string {
	if h.version == "" {
		return []string{generationKey + h.gen.String()}
	}
	return []string{generationKey + h.gen.String(), versionKey + h.version}
}

// parseHead parses the strings of a generation TXT record; only exactly
// what text writes is accepted.
func parseHead(txt []string) (head, bool) {
	if len(txt) != 1 && len(txt) != 2 {
		return head{}, false
	}
	v, ok := strings.CutPrefix(txt[0], generationKey)
	g, err := fence.ParseToken(v)
	if !ok || err != nil || g == 0 || g.String() != v {
		return head{}, false
	}
	h := head{gen: g}
	if len(txt) == 2 {
		h.version, ok = strings.CutPrefix(txt[1], versionKey)
		if !ok || !validVersion(h.version) {
			return head{}, false
		}
	}
	return h, true
}

// readHead returns the endpoint's generation and version (zero if it has
// no generation TXT record).
func (p *Provider) readHead(ctx context.Context, name string) (head, error) {
	rrs, err := p.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return head{}, err
	}
	var corrupt error
	switch len(rrs) {
	case 0:
		return head{}, nil
	case 1:
		txt := rrs[0].(*dns.TXT).Txt
		if h, ok := parseHead(txt); ok {
			return h, nil
		}
		corrupt = fmt.Errorf("%w: %s TXT %q is not \"%sN\" \"%sV\"", ErrCorrupt, name, txt, generationKey, versionKey)
	default:
		corrupt = fmt.Errorf("%w: %s has %d TXT records, want 1", ErrCorrupt, name, len(rrs))
	}
	// A wildcard TXT answers for an endpoint never written: nothing is
	// at the name, and no operator could fix it there.
	if synthesized, err := p.fromWildcard(ctx, name, dns.TypeTXT); err != nil {
		return head{}, fmt.Errorf("%w, and asking whether a wildcard's failed: %w", corrupt, err)
	} else if synthesized {
		return head{}, nil
	}
	return head{}, corrupt
}

// Read returns the endpoint's applied generation, version and targets. It
// reads the generation TXT, the A, AAAA and weights records, and the
// generation TXT again, and starts over if an update landed in between,
// so the Records it returns are the state of one instant. A target
// without a weight in the weights TXT (written by hand, say) has weight 1.
//
// If the generation TXT is intact but the weights TXT cannot be parsed,
// Read returns the generation and version, no targets, and an error
// matching ErrCorrupt and dnsplan.ErrCorruptRecords: an Apply conditioned
// on them replaces the damage. A damaged generation TXT is ErrCorrupt
// alone, with zero Records. A CNAME at the endpoint or at its metadata
// names, a DNAME above them, or a delegation above them is an error
// matching dnsplan.ErrNameInUse that names the record, with zero Records.
// An endpoint that is not canonical is refused before any I/O
// (ErrInvalidName), and so are a nil context and a nil or zero Provider
// (dnsplan.ErrInvalidArgument). See ErrTransient for which errors may
// pass.
func (p *Provider) Read(ctx context.Context, endpoint string) (dnsplan.Records, error) {
	if err := p.check(ctx, "Read"); err != nil {
		return dnsplan.Records{}, err
	}
	n, err := p.names(endpoint)
	if err != nil {
		return dnsplan.Records{}, err
	}
	fail := func(err error) (dnsplan.Records, error) {
		return dnsplan.Records{}, fmt.Errorf("rfc2136: read of %q: %w", endpoint, err)
	}
	for attempt := 1; ; attempt++ {
		before, err := p.readHead(ctx, n.gen)
		if err != nil {
			return fail(err)
		}
		// The A, AAAA and weights records are asked at once: all three
		// answers still come between the two reads of the generation
		// TXT, which is all the check below needs.
		var (
			addrs   [2][]netip.Addr
			aerrs   [2]error
			weights map[netip.Addr]uint32
			werr    error
			wg      sync.WaitGroup
		)
		for i, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addrs[i], aerrs[i] = p.readAddrs(ctx, n.owner, t, before.gen == 0)
			}()
		}
		weights, werr = p.readWeights(ctx, n.weights)
		wg.Wait()
		// The errors in the order the queries were once asked one after
		// another.
		for _, err := range aerrs {
			if err != nil {
				return fail(err)
			}
		}
		if werr != nil && !errors.Is(werr, ErrCorrupt) {
			return fail(werr)
		}
		after, err := p.readHead(ctx, n.gen)
		if err != nil {
			return fail(err)
		}
		if before != after {
			if attempt >= maxReadAttempts {
				return fail(transient(fmt.Errorf("torn by %d concurrent updates: %w", attempt, fence.ErrContended)))
			}
			continue
		}
		r := dnsplan.Records{Generation: after.gen, Version: after.version}
		if werr != nil {
			return r, fmt.Errorf("rfc2136: read of %q: %w: %w (generation %d intact: an apply conditioned on it rewrites the endpoint)",
				endpoint, dnsplan.ErrCorruptRecords, werr, uint64(after.gen))
		}
		for _, a := range slices.Concat(addrs[0], addrs[1]) {
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

// readAddrs returns the addresses of type t (A or AAAA) at owner; for
// an endpoint never written (unwritten), none if they were synthesized
// from a wildcard.
func (p *Provider) readAddrs(ctx context.Context, owner string, t uint16, unwritten bool) ([]netip.Addr, error) {
	rrs, err := p.query(ctx, owner, t)
	if err != nil {
		return nil, err
	}
	if len(rrs) > 0 && unwritten {
		// An endpoint never written may be under a wildcard, whose
		// addresses are not at the name. (The read of the generation
		// TXT after this one tells if a write created the name
		// meanwhile.)
		synthesized, err := p.fromWildcard(ctx, owner, t)
		if err != nil {
			return nil, fmt.Errorf("query %s %s answered, and asking whether a wildcard's failed: %w", owner, dns.TypeToString[t], err)
		}
		if synthesized {
			return nil, nil
		}
	}
	var addrs []netip.Addr
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
	return addrs, nil
}

// parseWeights parses the weights TXT at name: one string
// "address=weight" per target, exactly as Apply writes it.
func parseWeights(name string, rrs []dns.RR) (map[netip.Addr]uint32, error) {
	w := map[netip.Addr]uint32{}
	for _, rr := range rrs {
		for _, s := range rr.(*dns.TXT).Txt {
			a, n, ok := strings.Cut(s, "=")
			addr, err1 := netip.ParseAddr(a)
			v, err2 := strconv.ParseUint(n, 10, 32)
			// Only exactly what Apply writes: another spelling, a
			// zone or an IPv4-mapped address names no target, or not
			// the way a target is written.
			if !ok || err1 != nil || err2 != nil || v == 0 || addr.String() != a || addr.Zone() != "" || addr.Is4In6() || strconv.FormatUint(v, 10) != n {
				return nil, fmt.Errorf("%w: %s weight %q is not address=weight", ErrCorrupt, name, s)
			}
			if _, dup := w[addr]; dup {
				return nil, fmt.Errorf("%w: %s names the weight of %s twice", ErrCorrupt, name, a)
			}
			w[addr] = uint32(v)
		}
	}
	return w, nil
}

// readWeights parses the weights TXT, unless it was synthesized from a
// wildcard: then there are no weights.
func (p *Provider) readWeights(ctx context.Context, name string) (map[netip.Addr]uint32, error) {
	rrs, err := p.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	w, corrupt := parseWeights(name, rrs)
	if corrupt == nil {
		return w, nil
	}
	if synthesized, err := p.fromWildcard(ctx, name, dns.TypeTXT); err != nil {
		return nil, fmt.Errorf("%w, and asking whether a wildcard's failed: %w", corrupt, err)
	} else if synthesized {
		return map[netip.Addr]uint32{}, nil
	}
	return nil, corrupt
}

// Apply replaces the endpoint's A and AAAA records, its generation TXT and
// its weights TXT with r, under a new random version, in one UPDATE
// message whose prerequisites are:
//
//   - the generation TXT exactly as expect names it (RFC 2136 §2.4.2,
//     RRset exists, value dependent): "dnsplan-generation=G"
//     "dnsplan-version=V", or "dnsplan-generation=G" alone for an
//     expect.Version of "" (the format before versions); for a zero
//     expect, no generation TXT at all (§2.4.3);
//   - no CNAME at the endpoint or at its metadata names, and no DNAME or
//     NS (a delegation) at the endpoint or above it in the zone (§2.4.3):
//     BIND would otherwise drop the addresses, or write records no query
//     can reach, and answer NOERROR.
//
// The server checks the prerequisites and applies the update as one
// transaction. Applies made while an UPDATE is in flight share the next
// one, each with its own prerequisites, and each gets the answer it
// would have got alone (see Group commit in the package documentation,
// also for what an ended context means). On a refusal (NXRRSET or YXRRSET) Apply reads to say why:
// a *fence.StaleError whose Have is the generation found if it is not
// expect's, a *dnsplan.VersionConflictError if only the version differs,
// an error matching dnsplan.ErrNameInUse naming the foreign record (which
// is never deleted). Records that dnsplan.ValidateRecords refuses, empty
// ones above all, a non-canonical endpoint (ErrInvalidName), and an
// expect whose Version this provider could not have written (or that has
// a Version without a Generation) are refused before any I/O, as are a
// nil context and a nil or zero Provider (dnsplan.ErrInvalidArgument).
func (p *Provider) Apply(ctx context.Context, endpoint string, expect dnsplan.Records, r dnsplan.Records) error {
	if err := p.check(ctx, "Apply"); err != nil {
		return err
	}
	n, err := p.names(endpoint)
	if err != nil {
		return err
	}
	if err := dnsplan.ValidateRecords(endpoint, r, p.cfg.MaxTargets); err != nil {
		return err
	}
	v4, v6 := perType(r.Targets)
	for _, f := range []struct {
		t string
		n int
	}{{"A", v4}, {"AAAA", v6}} {
		if f.n > p.cfg.MaxRecordsPerType {
			return fmt.Errorf("%w: Apply to %q: %d %s records, above Config.MaxRecordsPerType %d (BIND's max-records-per-type, whose excess it answers SERVFAIL)",
				dnsplan.ErrInvalidRecords, endpoint, f.n, f.t, p.cfg.MaxRecordsPerType)
		}
	}
	if expect.Version != "" && (expect.Generation == 0 || !validVersion(expect.Version)) {
		return fmt.Errorf("%w: Apply to %q: expected version %q of generation %d is not one this provider writes (%d hex digits, with a generation)",
			dnsplan.ErrInvalidArgument, endpoint, expect.Version, uint64(expect.Generation), 2*versionBytes)
	}
	want := head{gen: expect.Generation, version: expect.Version}
	m := p.update(n, want, head{gen: r.Generation, version: newVersion()}, r)
	var resp *dns.Msg
	if p.cfg.MaxBatch > 1 {
		a := p.batched(ctx, n, m)
		if a.err != nil && !errors.Is(a.err, errBatchRefused) {
			return fmt.Errorf("rfc2136: update of %q: %w", endpoint, a.err)
		}
		if a.err == nil && a.resp == nil {
			return nil // the batch it was in was applied
		}
		// Else it was sent alone (first, or again after the server
		// refused the batch it was in, which changed nothing): its
		// own answer.
		resp = a.resp
	}
	if resp == nil {
		// UPDATE always goes over TCP: see the package documentation.
		if resp, err = p.exchange(ctx, p.stream, m); err != nil {
			return fmt.Errorf("rfc2136: update of %q: %w", endpoint, err)
		}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNXRrset, dns.RcodeYXRrset:
		return p.refused(ctx, n, want, dns.RcodeToString[resp.Rcode])
	}
	if resp.Rcode == dns.RcodeServerFailure && max(v4, v6) > DefaultMaxRecordsPerType {
		return rcodeError(resp.Rcode, "update of %q with %d A and %d AAAA records (does the server's max-records-per-type allow %d, Config.MaxRecordsPerType?)",
			endpoint, v4, v6, max(v4, v6))
	}
	return rcodeError(resp.Rcode, "update of %q", endpoint)
}

// perType returns the number of IPv4 and IPv6 targets.
func perType(ts []dnsplan.Target) (v4, v6 int) {
	for _, t := range ts {
		if t.Addr.Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}

// refused explains a refused update: a foreign record in the way, or a
// generation TXT not as expected.
func (p *Provider) refused(ctx context.Context, n names, want head, rcode string) error {
	have, err := p.readHead(ctx, n.gen)
	if err != nil {
		return refusedThen(n.endpoint, rcode, err)
	}
	// A foreign record first: it outlasts any retry, a stale condition
	// does not.
	for _, q := range []struct {
		name string
		t    uint16
	}{{n.owner, dns.TypeA}, {n.weights, dns.TypeTXT}} {
		if _, err := p.query(ctx, q.name, q.t); err != nil {
			return refusedThen(n.endpoint, rcode, err)
		}
	}
	switch {
	case have.gen != want.gen:
		return &fence.StaleError{Op: fence.OpCompareAndSwap, Key: n.endpoint, Have: have.gen, Want: want.gen}
	case have.version != want.version:
		return &dnsplan.VersionConflictError{Endpoint: n.endpoint, Generation: have.gen, Have: have.version, Want: want.version}
	}
	return transient(fmt.Errorf("rfc2136: update of %q refused (%s), yet generation %d version %q reads back as expected: changed and changed back since: %w",
		n.endpoint, rcode, uint64(want.gen), want.version, fence.ErrContended))
}

// refusedThen is the error of a refused update whose explanation failed
// with err, or that err explains.
func refusedThen(endpoint, rcode string, err error) error {
	if errors.Is(err, dnsplan.ErrNameInUse) {
		return fmt.Errorf("rfc2136: update of %q refused (%s): %w", endpoint, rcode, err)
	}
	return fmt.Errorf("rfc2136: update of %q refused (%s), then: %w", endpoint, rcode, err)
}

// update returns the UPDATE message of Apply, unsigned: replace the
// endpoint's records with r and the generation TXT with next, if the
// generation TXT is want and no foreign record is in the way.
func (p *Provider) update(n names, want, next head, r dnsplan.Records) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(p.cfg.Zone)
	// Every address record repeats the owner name: compressed, a record
	// takes 28 bytes or less whatever the name's length, which is what
	// lets maxTargetsLimit be as high as 768.
	m.Compress = true
	none := func(name string, t uint16) dns.RR {
		return &dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET}}
	}
	if want.gen == 0 {
		m.RRsetNotUsed([]dns.RR{none(n.gen, dns.TypeTXT)})
	} else {
		m.Used([]dns.RR{p.txt(n.gen, want.text()...)})
	}
	absent := []dns.RR{none(n.owner, dns.TypeCNAME), none(n.gen, dns.TypeCNAME), none(n.weights, dns.TypeCNAME)}
	for name := n.owner; name != p.cfg.Zone; name = name[strings.IndexByte(name, '.')+1:] {
		absent = append(absent, none(name, dns.TypeDNAME), none(name, dns.TypeNS))
	}
	absent = append(absent, none(p.cfg.Zone, dns.TypeDNAME))
	m.RRsetNotUsed(absent)
	m.RemoveRRset([]dns.RR{
		none(n.owner, dns.TypeA),
		none(n.owner, dns.TypeAAAA),
		none(n.gen, dns.TypeTXT),
		none(n.weights, dns.TypeTXT),
	})
	rrs := make([]dns.RR, 0, len(r.Targets)+2)
	weights := make([]string, 0, len(r.Targets))
	for _, t := range r.Targets {
		h := dns.RR_Header{Name: n.owner, Class: dns.ClassINET, Ttl: p.cfg.TTL}
		if t.Addr.Is4() {
			h.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: h, A: t.Addr.AsSlice()})
		} else {
			h.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: h, AAAA: t.Addr.AsSlice()})
		}
		weights = append(weights, t.Addr.String()+"="+strconv.FormatUint(uint64(t.Weight), 10))
	}
	rrs = append(rrs, p.txt(n.gen, next.text()...), p.txt(n.weights, weights...))
	m.Insert(rrs)
	return m
}

func (p *Provider) txt(name string, s ...string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: p.cfg.TTL}, Txt: s}
}
