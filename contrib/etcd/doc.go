// Package etcd implements stormguard's fence.Store, lease.Store and
// dnsplan.Store (PlanStore) on etcd v3, the engine to use once the writers
// that must be fenced off from each other — DNS enactors in three zones,
// lease holders on many hosts — outgrow one process.
//
// Connect a client, make a Store on a key prefix, and use it wherever a
// fence.Store goes (NewLeaseTable and NewPlanStore, likewise, for a
// lease.Store and a dnsplan.Store); endpoints are etcd's client URLs:
//
//	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer client.Close()
//	store, err := etcd.NewStore(etcd.StoreConfig{Client: client, Prefix: "stormguard/dns/"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	ctx := context.Background()
//
//	// The planner: generations survive restarts of this process and of etcd.
//	planner, err := fence.NewSequencer(fence.SequencerConfig{Store: store, Key: "plans/generation"})
//
// LeaseTable is the lease table on etcd: each term is an etcd lease
// (grant with TTL, keep-alive, revoke) holding the resource's holder record,
// and each grant is one transaction conditioned on "no holder record",
// whose epoch is etcd's revision at that transaction. Two processes
// contending for a resource through etcd get the in-memory table's
// guarantees: at most one holder with an unexpired lease, and epochs that
// strictly increase, across etcd restarts (the tests SIGKILL etcd while
// keepers contend) and however many resources come and go — etcd deletes
// a resource's record when its lease ends, and the table keeps nothing
// else.
//
// # Guarantees
//
// Store is linearizable, as etcd is: every operation but WriteIfNewer is
// a single etcd request, and every write is a single transaction (Txn)
// whose comparison on the key's stored token and whose write are applied
// by etcd as one atomic step. So the check that a plan is newer than the applied one is
// made by etcd at the moment of the write, not by the writer beforehand;
// a writer delayed for an hour between reading and writing is judged by
// what is in etcd when its write arrives.
//
//   - CompareAndSwap(key, expect, value, next) is
//     Txn(If token(key) = expect, Then Put, Else Get); expect zero compares
//     the key's create revision with zero (the key is absent).
//   - WriteIfNewer(key, value, t) is Txn(If the key is absent, Then Put,
//     Else Get), and, if what it read is a record older than t,
//     Txn(If the key's mod revision is the one read, Then Put, Else Get),
//     again while other writers change the key in between (at most
//     DefaultWriteAttempts times): each write is conditioned on the exact
//     state that was judged older, so it is still made by etcd at the
//     moment of the write. Each request carries the value once.
//   - Delete(key, expect) is Txn(If token(key) = expect, Then Delete, Else Get).
//
// A refusal returns the Else branch's read of the key in the same
// response, so the *fence.StaleError carries the key's token at the
// instant of the refusal without a second request. Acknowledged writes are
// durable as etcd makes them (a write is acknowledged only once the raft log
// entry is committed and fsynced); the package's tests kill etcd with
// SIGKILL in the middle of concurrent writes and check that no acknowledged
// write is lost and no stale write was accepted. A fence.Sequencer on a
// Store hands out tokens that survive restarts of the client and of etcd.
// Restoring etcd from a snapshot or an old copy of its data directory
// undoes every write made since — records and Sequencer counters go back
// with it, and tokens would be handed out again — so restore only with
// every writer stopped, and write each Sequencer's key (with
// CompareAndSwap) past every token it may have handed out since the copy
// was made.
//
// An error that is not a refusal, invalid input or a corrupt record (a
// timeout, a lost connection, etcd down) matches ErrUnknownOutcome, and
// also context.DeadlineExceeded if the request timed out, whether the
// client or etcd said so: the outcome of a write is unknown, and etcd may
// have applied it. Txn requests are never retried by the etcd client once
// sent, so a write is applied at most once. A call whose context has
// already ended sends nothing and fails with the context's error alone.
// Give every call a context with
// a deadline: while etcd is unreachable a call waits for it until the
// context ends.
//
// # Record format
//
// Each key is stored under StoreConfig.Prefix + key, concatenated as raw
// bytes: the prefix is not a path, so a Store with prefix "p" also sees
// (lists, loads and writes) the keys of a Store with prefix "p/" — end
// prefixes with a separator, as in "stormguard/fence/", and let no
// prefix be the beginning of another. Its value is the token in 20
// decimal digits, a colon, and the caller's bytes:
//
//	00000000000000000042:lb-7=100,lb-8=100
//
// Fixed-width digits compare as the numbers do, so the records of token t
// are exactly the values from digits(t)+":" up to, not including,
// digits(t)+";" (the byte after the colon), and "token = t" is a pair of
// etcd value comparisons in two nested transactions (etcd has no "≥"):
// Txn(If value < digits(t)+":" Then Get Else Txn(If value < digits(t)+";"
// Then write Else Get)). etcd compares the generation itself, no mod
// revision has to be read first. Records stay readable with etcdctl. A
// value under the prefix that is not a record (written by hand, say, or
// the digits without the colon, or token zero) is never misread as one:
// Load, and every conditional write that finds it, report an error
// matching ErrCorrupt and leave it alone.
//
// # Plan store
//
// PlanStore is a dnsplan.Store and dnsplan.Watcher for a planner and
// enactors in separate processes:
//
//	plans, err := etcd.NewPlanStore(client, etcd.PlanStoreConfig{Prefix: "stormguard/dnsplan/"})
//
// The planner publishes with Publish, which gives each plan a generation
// from a fence.Sequencer in the same etcd; each enactor runs a
// dnsplan.Enactor on the store (see ExamplePlanStore).
//
// Its keys, under PlanStoreConfig.Prefix ("stormguard/dnsplan/"):
//
//	highest                      the highest generation ever put, 20 digits
//	sequencer                    NextGeneration's fence.Sequencer record
//	plans/<g, 20 digits>         plan g's manifest: JSON with the chunks'
//	                             count, sizes, SHA-256 and nonce
//	chunks/<g>/<nonce>/<00000>   the plan's encoding, in chunks
//
// A plan is stored whole, compressed, split only if it must be: its JSON
// (maps sorted, so deterministic) through DEFLATE at BestSpeed, in chunks of
// at most PlanStoreConfig.ChunkBytes (1 MiB). A plan of 10,000 endpoints
// with 4 targets each is 1,955,380 bytes of JSON — more than etcd's default
// request limit of 1.5 MiB — and 407,796 bytes compressed, one chunk,
// compressed in 11 ms (the default level saves 15% more for 25 times the
// time). Chunks carry the larger plans (up to MaxChunks). Storing a plan
// by endpoint instead would take 10,000 keys per plan — more than one
// transaction may hold (--max-txn-ops, 128), so a publish could not be
// atomic — and 10,000 reads or a range per plan; a plan's chunks are
// written once and never changed.
//
// Every write that decides anything is one transaction:
//
//   - Put refuses an invalid plan, then reads the highest record and the
//     number of plans at one revision, refuses a generation not above it
//     (*fence.StaleError) or a full store (dnsplan.ErrFull); writes the
//     chunks, each in its own request, under a nonce of this attempt
//     alone; and commits with Txn(If mod_revision(highest) is as read,
//     Then put the manifest, put highest = g, raise the sequencer to g).
//     etcd checks at the commit that no generation was put since the read,
//     so "g is above every generation ever held" holds when the manifest
//     appears, and the bound is exact. A plan exists from its manifest's
//     commit, after its last chunk: never readable half-written. A refused
//     put deletes its chunks; a commit that lost its condition to another
//     put reads again (at most DefaultPutAttempts times).
//   - Get and Latest read the manifest, then its chunks at the manifest's
//     revision, so a plan deleted in between is still read whole, as it was
//     held; if etcd compacted that revision meanwhile, they read again.
//     A missing, extra or damaged chunk, a checksum or size that does not
//     match, or a plan that does not decode or validate, is ErrCorruptPlan.
//     Latest does not fall back to an older readable plan: a damaged
//     newest plan fails every enactor pass loudly (Enactor.Run retries)
//     rather than leaving enactors silently on an older one. It blocks
//     neither Publish (which reads only the highest record) nor Delete:
//     the planner's next plan, or a Delete of the damaged one, ends it.
//   - Delete is Txn(If create_revision(manifest) > 0, Then delete the
//     manifest and every chunk of g): a plan is all there or all gone.
//     The manifest of g can exist only once (the highest record never goes
//     down), so its existence is the whole condition, and a deleted plan
//     never comes back.
//   - WaitNewer reads the highest record and, if it is not above g,
//     watches it from the revision after the read: no polling. The etcd
//     client resumes a broken watch from the last revision it delivered; a
//     compacted start revision, or a watch the client ends, makes it read
//     again and watch from there.
//   - NextGeneration is a fence.Sequencer on the key "sequencer", which
//     every Put raises to its generation in its commit: a restarted planner
//     publishes above everything it, or anyone, published or was handed.
//     Each generation it hands out is checked against the highest record,
//     and the sequencer raised to it if it was deleted or written back
//     below (one read more): a wound-back sequencer never hands out a
//     generation at or below one put.
//   - CollectOrphans deletes the chunks of puts that never committed (the
//     writer died, or its answer was lost): those of a generation at or
//     below the highest that no manifest names. No manifest for such a
//     generation can ever appear, so no commit can need them; the chunks of
//     a put still in flight, above the highest, are left alone. Each set is
//     deleted in one transaction conditioned on the highest record being
//     at or above its generation and the manifest being as read. Nothing
//     calls it for you: a Put refused as stale or full deletes its own
//     chunks, and Delete deletes every chunk of its generation, so orphans
//     come only from a Put that failed mid-way (ErrUnknownOutcome, its
//     context ended, its process died). The planner should call it after
//     such a failure once a newer plan is put, and at start-up (the
//     dnsfleet example does); it reads every chunk key, so not on every
//     Publish.
//
// The tests run dnsplantest.TestStore (the conformance suite) on a real
// etcd, check concurrent histories of publishers, readers and two
// clean-ups with porcupine, run dnsplan.Enactor with one enactor stalled
// between its read and its write, and kill etcd with SIGKILL twice in the
// middle of a clean-up of 120 plans while the planner publishes: every plan
// not acknowledged deleted reads whole, none deleted comes back, no
// generation is reused, and orphans are collected. Errors: etcd
// unreachable matches ErrUnknownOutcome (a Put of unknown outcome retried
// is refused as stale if the first landed: Get tells whether it was
// yours); bad input matches dnsplan.ErrInvalidArgument,
// dnsplan.ErrInvalidConfig or dnsplan.ErrInvalidPlan.
//
// Cost: a Put of a plan in n chunks is 2 reads, n writes and one
// transaction; a Get is 2 reads; a Delete one transaction; List one read
// of keys. On a 2-core VM with a local etcd 3.4 (fsync on), a
// 10,000-endpoint plan takes about 190 ms to put and 130 ms to read, and a
// delete 0.9 ms (median); see bench/RESULTS.md.
//
// # Versions
//
// The module uses go.etcd.io/etcd/client/v3 v3.6.14, the newest client
// whose go.mod still says go 1.25 (v3.6.15 and later require Go 1.26), so
// this module keeps the repository's go 1.25.0. The client talks to etcd
// servers 3.4 to 3.6; the tests run against the 3.4 server Debian ships
// (apt-get install etcd-server), found at /usr/bin/etcd or $ETCD_BIN.
package etcd
