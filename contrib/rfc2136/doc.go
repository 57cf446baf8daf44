// Package rfc2136 is a dnsplan.Provider for any DNS server that accepts
// RFC 2136 dynamic updates (BIND, Knot, PowerDNS, Windows DNS, ...),
// authenticated with TSIG, built on github.com/miekg/dns.
//
// Make a Provider for the zone, with the TSIG key the server accepts
// updates signed with, and give it to dnsplan's enactors; server is the
// DNS server's host:port, secret the key's base64 secret (tsig-keygen):
//
//	provider, err := rfc2136.New(rfc2136.Config{
//		Server:  server,
//		Zone:    "dnsplan.test.",
//		KeyName: "dnsplan-key.",
//		Secret:  secret,
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	ctx := context.Background()
//	store := &dnsplan.MemoryStore{} // shared by planner and enactors: contrib/etcd's PlanStore
//	err = store.Put(ctx, dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{
//		"api.dnsplan.test": {{Addr: netip.MustParseAddr("10.0.0.7"), Weight: 100}},
//	}})
//	if err != nil {
//		log.Fatal(err)
//	}
//	enactor, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "us-east-1a"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	if _, err := enactor.Pass(ctx, store, provider); err != nil { // Run repeats passes
//		log.Fatal(err)
//	}
//
// The DNS server itself refuses a stale write: every Apply is one UPDATE
// message whose prerequisite section names the generation the enactor
// read, and the server checks the prerequisite and applies the update in
// the same transaction (RFC 2136 §3.2, §3.4). A stale enactor's update
// fails with NXRRSET, and nothing of it is applied. The prerequisite names
// the version of the write the enactor read as well as its generation, so
// two writers of the same generation cannot overwrite each other unseen
// either. (In October 2025 a delayed DNS enactor wrote an old plan over a
// newer one because its "is my plan newer?" check was made long before its
// write.)
//
// # Record layout
//
// For an endpoint "api.example.com." in zone "example.com." the provider
// owns four RRsets, all replaced together by every Apply:
//
//	api.example.com.                  A, AAAA  the targets' addresses
//	_dnsplan.api.example.com.         TXT      "dnsplan-generation=42" "dnsplan-version=9f3a…"
//	_dnsplan-weights.api.example.com. TXT      "10.0.0.1=3" "10.0.0.2=1" ...
//
// The generation TXT is one record, so that the update's prerequisite
// "RRset exists (value dependent)" can name it exactly: the applied
// generation and the version of the write, 128 random bits in hex that
// every Apply draws anew (dnsplan.Records.Version). A generation TXT
// without a version, written before versions existed, reads with Version
// "" and is replaced as usual. Keeping the weights at their own name
// keeps them out of that comparison. For an endpoint never written, the
// prerequisite is "RRset does not exist" on the generation TXT. The
// label "_dnsplan" is Config.MetaPrefix.
//
// Endpoint names must be canonical: lowercase ASCII letters, digits, '-',
// '_' and '.', with no escape, no empty label and no trailing dot, so
// that the name written is the name asked for and the name answered. A
// name DNS would read otherwise (`\065bc`, "ABC", "abc.") is refused
// before any I/O with ErrInvalidName: written as one name and read as
// another, it would read as never written on every pass.
//
// # Records the provider does not own
//
// Apply replaces whole the four RRsets of the layout above, and deletes
// nothing else: any other record at those names or above them stays. A
// CNAME at the endpoint (or at its metadata names), a DNAME at or above
// it, or a delegation (NS) at or above it would make the server drop or
// hide the records an update adds while answering NOERROR; so every
// update also requires that none of them exists (RFC 2136 §2.4.3), and
// Read and Apply report one with an error matching dnsplan.ErrNameInUse
// that names the record, for an operator to remove. An Enactor counts
// such an endpoint as failed until then. A wildcard record (CNAME, TXT,
// A, AAAA) is not at the name: Read tells the two apart with an UPDATE
// that has only a prerequisite and changes nothing (sent only for a
// CNAME, for metadata that does not parse, and for the addresses of an
// endpoint without a generation TXT), and an endpoint under a wildcard
// reads as never written, until its first Apply creates the name.
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
// Apply is atomic on the server. Read is several queries (generation TXT;
// A, AAAA and weights TXT, asked at once; generation TXT again) and
// starts over if the
// generation or version changed in between, so it returns the state of
// one instant; even a torn read could not cause a wrong write, since every
// write is conditioned on the generation and version. Queries go to Config.Server, which must
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
// Read of an endpoint that has grown — during an incident, perhaps. A
// lone Apply costs one TCP handshake: about 0.1 ms against a local BIND,
// where an Apply takes 1 to 2 ms, and one round trip over a network;
// UPDATEs sent one after another (see Group commit) share a connection.
//
// # Group commit
//
// A server applies the updates of one zone one at a time, each with its
// journal write, so Applies sent at once only queue there. Instead, the
// Applies that arrive while an UPDATE is in flight wait, and go together
// in the next UPDATE, each with its own prerequisites and updates: up to
// Config.MaxBatch of them (DefaultMaxBatch, 64) and 32 KiB of message
// (an Apply larger than that goes alone). A lone Apply is sent at once,
// with no added wait. The server checks every prerequisite of an UPDATE
// before it applies any of its updates, and applies all or nothing, so
// each Apply in it is still conditioned on the endpoint as it is at the
// instant of the write; two Applies to the same endpoint never share an
// UPDATE, and are sent in the order they came. If the server refuses the
// UPDATE (a prerequisite failed, or any other code), nothing of it was
// applied, and each Apply in it is sent again alone, in order and before
// any Apply that waited behind it, for the answer it would have got
// alone: a stale one is refused as stale, the others are
// applied. A failed exchange (a timeout, a dropped connection) fails
// every Apply in it with an error matching ErrTransient, outcome
// unknown. An Apply whose context ends while it waits is never sent, and
// returns the context's error (ErrTransient, "nothing was written"); one
// whose context ends while its UPDATE is in flight returns at once with
// the context's error (ErrTransient, "may or may not have been
// applied"): read again to know. MaxBatch 1 sends every Apply in an
// UPDATE of its own, as before group commit. Reads are not batched.
//
// # Errors
//
// A failed prerequisite is explained by reading right after the refusal:
// a *fence.StaleError (fence.ErrStale) whose Have is the generation found,
// a *dnsplan.VersionConflictError (also fence.ErrStale) if only the
// version differs, or dnsplan.ErrNameInUse for a foreign record. Empty or
// invalid records and non-canonical names are refused before any I/O
// (dnsplan.ErrEmptyRecords, dnsplan.ErrInvalidRecords, ErrInvalidName),
// and so are more IPv4 or IPv6 targets than Config.MaxRecordsPerType
// (default 100: BIND's max-records-per-type, beyond which it answers
// SERVFAIL, a failure that would never pass) (dnsplan.ErrInvalidRecords);
// any other error code from the server (NOTAUTH for a bad key, REFUSED,
// SERVFAIL), and an answer that is unsigned or to another question,
// match ErrServer; an answer truncated over UDP whose retry
// over TCP failed matches ErrTruncated; unparsable metadata matches
// ErrCorrupt. A damaged weights TXT under an intact (or absent) generation
// TXT also matches dnsplan.ErrCorruptRecords, and Read returns the
// generation and version with it, so that an Enactor rewrites the
// endpoint under them; a damaged generation TXT cannot be named in a
// prerequisite, so it is ErrCorrupt alone, for an operator to fix or
// delete.
//
// Errors that may pass by themselves match ErrTransient: timeouts,
// network failures (server down or restarting), SERVFAIL, reads torn by
// concurrent updates, an ended context. Everything else is permanent
// until the server, the zone or the call changes: ErrInvalidName,
// ErrCorrupt, dnsplan.ErrNameInUse, REFUSED, NOTAUTH and other codes, TSIG
// failures. A stale condition is neither: read again and decide again.
package rfc2136
