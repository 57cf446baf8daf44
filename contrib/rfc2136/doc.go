// Package rfc2136 is a dnsplan.Provider for any DNS server that accepts
// RFC 2136 dynamic updates (BIND, Knot, PowerDNS, Windows DNS, ...),
// authenticated with TSIG, built on github.com/miekg/dns.
//
// In October 2025 a delayed DNS enactor wrote an old plan over a newer one
// because its "is my plan newer?" check was made long before its write.
// This provider makes the DNS server itself refuse such a write: every
// Apply is one UPDATE message whose prerequisite section names the
// generation the enactor read, and the server checks the prerequisite and
// applies the update in the same transaction (RFC 2136 §3.2, §3.4). A
// stale enactor's update fails with NXRRSET, and nothing of it is applied.
//
// # Record layout
//
// For an endpoint "api.example.com." in zone "example.com." the provider
// owns four RRsets, all replaced together by every Apply:
//
//	api.example.com.                  A, AAAA  the targets' addresses
//	_dnsplan.api.example.com.         TXT      "dnsplan-generation=42"
//	_dnsplan-weights.api.example.com. TXT      "10.0.0.1=3" "10.0.0.2=1" ...
//
// The generation TXT holds a single string so that the update's
// prerequisite "RRset exists (value dependent)" can name it exactly;
// keeping the weights at their own name keeps them out of that
// comparison. For an endpoint never written, the prerequisite is "RRset
// does not exist" on the generation TXT. The label "_dnsplan" is
// Config.MetaPrefix.
//
// # Weights
//
// Plain DNS has no weights: a resolver gets every A/AAAA record of the
// endpoint and clients spread over them about evenly. This provider does
// not fake weights by repeating records (a server collapses duplicate
// records). It writes every target once, so traffic is split evenly
// whatever the weights, and records each target's weight in the weights
// TXT, so that Read returns the plan exactly, the Enactor can tell a
// current endpoint from a damaged one, and a weight-aware front (a server
// plugin, a client library) can use them. An address without a weight —
// added by hand — reads as weight 1. If you need weighted answers, use a
// provider for a DNS service with weighted routing.
//
// # Consistency
//
// Apply is atomic on the server. Read is several queries (generation TXT,
// A, AAAA, weights TXT, generation TXT again) and starts over if the
// generation changed in between, so it returns the state of one instant;
// even a torn read could not cause a wrong write, since every write is
// conditioned on the generation. Queries go to Config.Server, which must
// be the primary (a secondary may lag, and would make an enactor's reads
// stale — still safe, but slower to converge).
//
// # Transport
//
// Queries go over UDP (Config.Net) and ask for answers of at most 1232
// bytes, the size that crosses real networks without IP fragmentation.
// An endpoint with a few dozen targets outgrows it: its A, AAAA or
// weights answer comes back truncated (BIND then sends no records at
// all), and the query is asked again over TCP, at the cost of one more
// exchange. A truncated answer is never read as data — it would read as
// an endpoint without targets or weights, which an Enactor would rewrite
// on every pass — so if the retry fails, so does Read.
//
// UPDATE messages always go over TCP, which every DNS server accepts
// (RFC 7766). The UPDATE of 64 IPv6 targets is several kilobytes, more
// than one unfragmented UDP datagram carries; over TCP every plan the
// provider accepts is delivered whole or fails with an error, rather
// than a lost fragment leaving the outcome unknown until a timeout; and
// a network that blocks TCP port 53 fails the first Apply, not the first
// Read of an endpoint that has grown — during an incident, perhaps. It
// costs one TCP handshake per Apply: about 0.1 ms against a local BIND,
// where an Apply takes 1 to 2 ms, and one round trip over a network.
//
// # Errors
//
// A failed prerequisite is a *fence.StaleError (fence.ErrStale) whose Have
// is the generation read right after the refusal. Empty or invalid
// records are refused before any I/O (dnsplan.ErrEmptyRecords,
// dnsplan.ErrInvalidRecords, ErrInvalidName); any other error code from
// the server (NOTAUTH for a bad key, REFUSED, SERVFAIL) matches ErrServer;
// an answer truncated over UDP whose retry over TCP failed matches
// ErrTruncated; unparsable metadata matches ErrCorrupt.
package rfc2136
