package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/stormguard/stormguard/fence"
	"github.com/stretchr/testify/require"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stormguard/stormguard/contrib/etcd/internal/etcdtest"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/dnsplan/dnsplantest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var planPrefixes atomic.Int64

// newPlanStore returns a PlanStore under a prefix of its own on client.
func newPlanStore(t testing.TB, client *clientv3.Client, cfg PlanStoreConfig) *PlanStore {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("plans-%d/", planPrefixes.Add(1))
	}
	s, err := NewPlanStore(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformancePlanStore: PlanStore keeps every promise of dnsplan.Store
// and dnsplan.Watcher, on a real etcd.
func TestConformancePlanStore(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store { return newPlanStore(t, client, PlanStoreConfig{}) })
}

// TestConformancePlanStoreSmallChunks: the same with plans split into
// many chunks.
func TestConformancePlanStoreSmallChunks(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	dnsplantest.TestStore(t, func(t *testing.T) dnsplan.Store {
		return newPlanStore(t, client, PlanStoreConfig{ChunkBytes: MinChunkBytes})
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// bigPlan returns a plan of n endpoints with targets targets each, with
// realistic names and addresses, the same for the same arguments.
func bigPlan(g fence.Token, n, targets int) dnsplan.Plan {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(targets)))
	p := dnsplan.Plan{Generation: g, Endpoints: make(map[string][]dnsplan.Target, n)}
	for i := range n {
		ts := make([]dnsplan.Target, 0, targets)
		seen := map[netip.Addr]bool{}
		for len(ts) < targets {
			a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			if !seen[a] {
				seen[a] = true
				ts = append(ts, dnsplan.Target{Addr: a, Weight: uint32(1 + rng.IntN(100))})
			}
		}
		p.Endpoints[fmt.Sprintf("svc-%05d.cell-%02d.us-east-1.example.internal", i, i%37)] = ts
	}
	return p
}

// TestPlanStoreLargePlan: a plan of 10,000 endpoints with 4 targets each
// goes through etcd's default 1.5 MiB request limit, in one chunk and in
// many, and comes back whole; so does a plan of the longest names.
func TestPlanStoreLargePlan(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	p := bigPlan(1, 10_000, 4)
	raw, data, err := encode(p)
	require.NoError(t, err)
	t.Logf("10,000 endpoints x 4 targets: %d bytes of JSON, %d compressed (%.1f%%)", raw, len(data), 100*float64(len(data))/float64(raw))
	require.Greater(t, raw, 1572864, "the plan must not fit one request uncompressed, or this test proves nothing")
	for _, chunk := range []int{0, 64 << 10} {
		s := newPlanStore(t, client, PlanStoreConfig{ChunkBytes: chunk})
		require.NoError(t, s.Put(ctx, p))
		got, err := s.Get(ctx, 1)
		require.NoError(t, err)
		require.Empty(t, dnsplantest.DiffPlans(got, p))
		resp, err := client.Get(ctx, s.chunkDir(1), clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		t.Logf("ChunkBytes %d: %d chunks", chunk, resp.Count)
	}
	// The longest names, 64 targets each: odd, but valid.
	long := dnsplan.Plan{Generation: 2, Endpoints: map[string][]dnsplan.Target{}}
	for i := range 200 {
		name := fmt.Sprintf("%03d-", i) + strings.Repeat("a", 59) + "." + strings.Repeat("b_-9", 15) + "bbb." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
		require.Len(t, name, dnsplan.MaxEndpointBytes)
		long.Endpoints[name] = bigPlan(1, 1, 64).Endpoints["svc-00000.cell-00.us-east-1.example.internal"]
	}
	require.NoError(t, dnsplan.Validate(long, dnsplan.Limits{}))
	s := newPlanStore(t, client, PlanStoreConfig{ChunkBytes: MinChunkBytes})
	require.NoError(t, s.Put(ctx, long))
	got, err := s.Get(ctx, 2)
	require.NoError(t, err)
	require.Empty(t, dnsplantest.DiffPlans(got, long))
}

// TestPlanStoreBadInput: a nil client, bad configuration, a nil or zero
// store and invalid plans are refused with typed errors, never a panic.
func TestPlanStoreBadInput(t *testing.T) {
	_, err := NewPlanStore(nil, PlanStoreConfig{})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	require.ErrorContains(t, err, "client is nil")
	_, err = NewPlanStore(&clientv3.Client{}, PlanStoreConfig{})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	_, err = NewPlanStore(nil, PlanStoreConfig{MaxPlans: -1, ChunkBytes: 10, Limits: dnsplan.Limits{MaxTargets: -3}, Prefix: strings.Repeat("p", fence.MaxKeyBytes-10)})
	require.ErrorIs(t, err, dnsplan.ErrInvalidConfig)
	for _, want := range []string{"client is nil", "MaxPlans -1", "ChunkBytes 10 is below 1024", "etcd.PlanStoreConfig.Limits.MaxTargets -3 is negative", "Prefix is 1014 bytes"} {
		require.ErrorContains(t, err, want)
	}

	ctx := context.Background()
	var nilCtx context.Context
	for name, s := range map[string]*PlanStore{"nil": nil, "zero": {}} {
		calls := map[string]error{}
		calls["Put"] = s.Put(ctx, dnsplantest.PlanFor(1, 1))
		_, calls["Get"] = s.Get(ctx, 1)
		_, calls["Latest"] = s.Latest(ctx)
		calls["Delete"] = s.Delete(ctx, 1)
		_, calls["List"] = s.List(ctx)
		_, calls["WaitNewer"] = s.WaitNewer(ctx, 1)
		_, calls["NextGeneration"] = s.NextGeneration(ctx)
		_, calls["Publish"] = s.Publish(ctx, dnsplantest.PlanFor(1, 1))
		_, calls["CollectOrphans"] = s.CollectOrphans(ctx)
		for call, err := range calls {
			require.ErrorIs(t, err, dnsplan.ErrInvalidArgument, "%s PlanStore.%s", name, call)
			require.ErrorContains(t, err, "PlanStore."+call, "%s PlanStore", name)
		}
		// Through the interfaces, as an Enactor holds it.
		var st dnsplan.Store = s
		_, err := st.Latest(ctx)
		require.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
	}

	srv := etcdtest.Start(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{})
	_, err = s.NextGeneration(nilCtx)
	require.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
	_, err = s.CollectOrphans(nilCtx)
	require.ErrorIs(t, err, dnsplan.ErrInvalidArgument)
	_, err = s.Publish(ctx, dnsplan.Plan{})
	require.ErrorIs(t, err, dnsplan.ErrInvalidPlan)
	g, err := s.NextGeneration(ctx)
	require.NoError(t, err)
	require.Equal(t, fence.Token(1), g, "an invalid plan published used up no generation")
}

// TestPlanStoreCorrupt: damaged manifests, chunks and records are reported
// as ErrCorruptPlan, never a panic nor a wrong plan, and Delete still
// removes a damaged plan.
func TestPlanStoreCorrupt(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	big := bigPlan(1, 2000, 2)
	tests := []struct {
		name   string
		damage func(s *PlanStore, m manifest)
		want   string
	}{
		{"manifest not JSON", func(s *PlanStore, m manifest) { put(t, client, s.manifestKey(1), "garbage") }, "does not parse"},
		{"manifest of another generation", func(s *PlanStore, m manifest) { m.Generation = 2; putJSON(t, client, s.manifestKey(1), m) }, "names generation 2"},
		{"manifest nonce with a slash", func(s *PlanStore, m manifest) { m.Nonce = "0123456789/bcdef"; putJSON(t, client, s.manifestKey(1), m) }, "nonce"},
		{"a chunk missing", func(s *PlanStore, m manifest) { del(t, client, s.attemptDir(1, m.Nonce)+chunkName(1)) }, "chunks found"},
		{"an extra chunk", func(s *PlanStore, m manifest) { put(t, client, s.attemptDir(1, m.Nonce)+"99999", "x") }, "chunks found"},
		{"a chunk renamed", func(s *PlanStore, m manifest) {
			d := s.attemptDir(1, m.Nonce)
			v := get(t, client, d+chunkName(m.Chunks-1))
			del(t, client, d+chunkName(m.Chunks-1))
			put(t, client, d+"77777", v)
		}, "missing"},
		{"a chunk truncated", func(s *PlanStore, m manifest) {
			k := s.attemptDir(1, m.Nonce) + chunkName(0)
			put(t, client, k, get(t, client, k)[:100])
		}, "bytes"},
		{"a bit flipped", func(s *PlanStore, m manifest) {
			k := s.attemptDir(1, m.Nonce) + chunkName(0)
			v := []byte(get(t, client, k))
			v[500] ^= 1
			put(t, client, k, string(v))
		}, "checksum"},
		{"a decompression bomb", func(s *PlanStore, m manifest) { m.Raw = m.Bytes * 2000; putJSON(t, client, s.manifestKey(1), m) }, "impossible"},
		{"raw size lies", func(s *PlanStore, m manifest) { m.Raw--; putJSON(t, client, s.manifestKey(1), m) }, "decompresses to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPlanStore(t, client, PlanStoreConfig{ChunkBytes: 16 << 10})
			require.NoError(t, s.Put(ctx, big))
			var m manifest
			require.NoError(t, json.Unmarshal([]byte(get(t, client, s.manifestKey(1))), &m))
			require.Greater(t, m.Chunks, 2)
			tt.damage(s, m)
			_, err := s.Get(ctx, 1)
			require.ErrorIs(t, err, ErrCorruptPlan)
			require.ErrorContains(t, err, tt.want)
			_, err = s.Latest(ctx)
			require.ErrorIs(t, err, ErrCorruptPlan)
			require.NoError(t, s.Delete(ctx, 1))
			_, err = s.Get(ctx, 1)
			require.ErrorIs(t, err, dnsplan.ErrNotFound)
			resp, err := client.Get(ctx, s.chunkDir(1), clientv3.WithPrefix(), clientv3.WithCountOnly())
			require.NoError(t, err)
			require.Zero(t, resp.Count, "Delete left chunks")
		})
	}
	t.Run("highest record", func(t *testing.T) {
		s := newPlanStore(t, client, PlanStoreConfig{})
		put(t, client, s.highestKey(), "12")
		require.ErrorIs(t, s.Put(ctx, big), ErrCorruptPlan)
		_, err := s.WaitNewer(ctx, 0)
		require.ErrorIs(t, err, ErrCorruptPlan)
		_, err = s.CollectOrphans(ctx)
		require.ErrorIs(t, err, ErrCorruptPlan)
	})
	t.Run("manifest key", func(t *testing.T) {
		s := newPlanStore(t, client, PlanStoreConfig{})
		put(t, client, s.prefix+manifestsDir+"x", "{}")
		_, err := s.List(ctx)
		require.ErrorIs(t, err, ErrCorruptPlan)
		_, err = s.Latest(ctx)
		require.ErrorIs(t, err, ErrCorruptPlan)
	})
}

func put(t testing.TB, c *clientv3.Client, k, v string) {
	t.Helper()
	_, err := c.Put(context.Background(), k, v)
	require.NoError(t, err)
}

func putJSON(t testing.TB, c *clientv3.Client, k string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	put(t, c, k, string(b))
}

func get(t testing.TB, c *clientv3.Client, k string) string {
	t.Helper()
	resp, err := c.Get(context.Background(), k)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1, "key %q", k)
	return string(resp.Kvs[0].Value)
}

func del(t testing.TB, c *clientv3.Client, k string) {
	t.Helper()
	resp, err := c.Delete(context.Background(), k)
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.Deleted, "key %q", k)
}

// TestPlanStoreGenerations: NextGeneration and Publish hand out generations
// above every one handed out or put before, by this store or another on
// the same prefix, and after a restart; MaxUint64 exhausts them.
func TestPlanStoreGenerations(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{})
	g, err := s.Publish(ctx, dnsplantest.PlanFor(99, 1))
	require.NoError(t, err)
	require.Equal(t, fence.Token(1), g)
	got, err := s.Latest(ctx)
	require.NoError(t, err)
	require.Empty(t, dnsplantest.DiffPlans(got, dnsplantest.PlanFor(1, 1)))
	// A plan put directly, above the sequence: the sequence follows.
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(40, 2)))
	g, err = s.NextGeneration(ctx)
	require.NoError(t, err)
	require.Equal(t, fence.Token(41), g)
	// A generation handed out but never put is not handed out again, by a
	// new store (a restarted planner) on a new client either.
	srv.Kill()
	srv.Restart()
	s2 := newPlanStore(t, srv.Client(t), PlanStoreConfig{Prefix: s.prefix})
	g, err = s2.Publish(ctx, dnsplantest.PlanFor(0, 3))
	require.NoError(t, err)
	require.Equal(t, fence.Token(42), g)
	require.ErrorIs(t, s.Put(ctx, dnsplantest.PlanFor(41, 2)), fence.ErrStale, "the generation handed out is below one put since")
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(fence.MaxToken, 4)))
	_, err = s.NextGeneration(ctx)
	require.ErrorIs(t, err, fence.ErrExhausted)
	_, err = s2.Publish(ctx, dnsplantest.PlanFor(0, 3))
	require.ErrorIs(t, err, fence.ErrExhausted)
}

// TestPlanStoreFull: MaxPlans bounds the plans held, also under
// concurrent Puts, and Delete makes room.
func TestPlanStoreFull(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{MaxPlans: 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); s.Put(ctx, dnsplantest.PlanFor(fence.Token(g+1), 1)) }()
	}
	wg.Wait()
	gens, err := s.List(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, len(gens), 3)
	for len(gens) < 3 {
		require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(gens[len(gens)-1]+1, 1)))
		gens, err = s.List(ctx)
		require.NoError(t, err)
	}
	err = s.Put(ctx, dnsplantest.PlanFor(100, 1))
	require.ErrorIs(t, err, dnsplan.ErrFull)
	require.ErrorContains(t, err, "3 plans held, limit 3")
	require.NoError(t, s.Delete(ctx, gens[0]))
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(100, 1)))
	// The refused put left no chunks behind.
	n, err := s.CollectOrphans(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestPlanStoreEtcdDown: with etcd unreachable every call fails with an
// error matching ErrUnknownOutcome (WaitNewer: its deadline), and works
// again once etcd is back.
func TestPlanStoreEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{})
	ctx := ctxT(t)
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
	srv.Kill()
	calls := map[string]func(context.Context) error{
		"Put":            func(ctx context.Context) error { return s.Put(ctx, dnsplantest.PlanFor(2, 1)) },
		"Get":            func(ctx context.Context) error { _, err := s.Get(ctx, 1); return err },
		"Latest":         func(ctx context.Context) error { _, err := s.Latest(ctx); return err },
		"Delete":         func(ctx context.Context) error { return s.Delete(ctx, 1) },
		"List":           func(ctx context.Context) error { _, err := s.List(ctx); return err },
		"WaitNewer":      func(ctx context.Context) error { _, err := s.WaitNewer(ctx, 1); return err },
		"Publish":        func(ctx context.Context) error { _, err := s.Publish(ctx, dnsplantest.PlanFor(2, 1)); return err },
		"CollectOrphans": func(ctx context.Context) error { _, err := s.CollectOrphans(ctx); return err },
	}
	for name, call := range calls {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := call(cctx)
		cancel()
		if name == "WaitNewer" {
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
			continue
		}
		// A call may meet the connection breaking ("Unavailable: EOF")
		// or wait for etcd until its deadline: an outcome unknown
		// either way.
		require.ErrorIs(t, err, ErrUnknownOutcome, name)
	}
	srv.Restart()
	got, err := s.Latest(ctx)
	require.NoError(t, err)
	require.Empty(t, dnsplantest.DiffPlans(got, dnsplantest.PlanFor(1, 1)))
}

// TestPlanStoreStalledReader: a reader that found a manifest and stalls
// while the plan is deleted still reads the whole plan (at the manifest's
// revision: the plan as it was when it was held); if etcd has compacted
// that revision meanwhile, it reads again and finds the plan gone — never
// half a plan.
func TestPlanStoreStalledReader(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	p1, p2 := bigPlan(1, 3000, 2), bigPlan(2, 3000, 3)
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			s := newPlanStore(t, client, PlanStoreConfig{ChunkBytes: 8 << 10})
			require.NoError(t, s.Put(ctx, p1))
			require.NoError(t, s.Put(ctx, p2))
			stall := func(g fence.Token) func() {
				return func() {
					s.afterManifest = nil
					require.NoError(t, s.Delete(ctx, g))
					if compact {
						resp, err := client.Get(ctx, "any")
						require.NoError(t, err)
						_, err = client.Compact(ctx, resp.Header.Revision)
						require.NoError(t, err)
					}
				}
			}
			s.afterManifest = stall(2)
			got, err := s.Latest(ctx)
			require.NoError(t, err)
			if compact {
				require.Empty(t, dnsplantest.DiffPlans(got, p1), "read again after the compaction: plan 1 is the latest")
			} else {
				require.Empty(t, dnsplantest.DiffPlans(got, p2), "read at the manifest's revision")
			}
			s.afterManifest = stall(1)
			got, err = s.Get(ctx, 1)
			if compact {
				require.ErrorIs(t, err, dnsplan.ErrNotFound)
			} else {
				require.NoError(t, err)
				require.Empty(t, dnsplantest.DiffPlans(got, p1))
			}
		})
	}
}

// TestPlanStoreWatchCompacted: a watch whose start revision etcd compacted
// before it began reads again and returns the plan put meanwhile.
func TestPlanStoreWatchCompacted(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	s := newPlanStore(t, client, PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(5, 1)))
	s.beforeWatch = func() {
		s.beforeWatch = nil
		require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(6, 1)))
		require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(7, 1)))
		resp, err := client.Get(ctx, "any")
		require.NoError(t, err)
		_, err = client.Compact(ctx, resp.Header.Revision)
		require.NoError(t, err)
	}
	h, err := s.WaitNewer(ctx, 5)
	require.NoError(t, err)
	require.Equal(t, fence.Token(7), h)
}

// TestPlanStoreWatchAcrossRestart: a WaitNewer waiting while etcd is
// killed and restarted returns the plan put after the restart (or an error
// of the outage, which the test then retries as a caller would).
func TestPlanStoreWatchAcrossRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	s := newPlanStore(t, client, PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
	watching := make(chan struct{})
	s.beforeWatch = func() { close(watching); s.beforeWatch = nil }
	type result struct {
		h      fence.Token
		errors int
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for {
			h, err := s.WaitNewer(ctx, 1)
			if err == nil || ctx.Err() != nil {
				r.h = h
				done <- r
				return
			}
			r.errors++
			time.Sleep(50 * time.Millisecond) // as the contract asks of a caller
		}
	}()
	<-watching
	srv.Kill()
	srv.Restart()
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(2, 1)))
	r := <-done
	require.Equal(t, fence.Token(2), r.h)
	t.Logf("WaitNewer returned %d errors during the outage", r.errors)
}

// TestPlanStoreOrphans: the chunks of a writer that died before its commit
// are left alone while its generation is above the highest (it may still
// commit), and collected once it cannot; those of a plan held are never.
func TestPlanStoreOrphans(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	s := newPlanStore(t, client, PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(2, 1)))
	var m manifest
	require.NoError(t, json.Unmarshal([]byte(get(t, client, s.manifestKey(2))), &m))
	dead := func(g fence.Token) {
		put(t, client, s.attemptDir(g, newNonce())+chunkName(0), "chunk of a writer that died")
	}
	dead(2) // a second attempt at 2, refused
	dead(3) // in flight: 3 is above the highest
	dead(1)
	n, err := s.CollectOrphans(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(4, 1)))
	n, err = s.CollectOrphans(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "3 can no longer commit")
	mustHold(t, s, 2, 4)
	resp, err := client.Get(ctx, s.prefix+chunksDir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 2, "the chunks of plans 2 and 4")
}

// mustHold checks that s holds exactly gens, each whole.
func mustHold(t testing.TB, s *PlanStore, gens ...fence.Token) {
	t.Helper()
	got, err := s.List(context.Background())
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(gens), fmt.Sprint(got))
	for _, g := range gens {
		_, err := s.Get(context.Background(), g)
		require.NoError(t, err, "plan %d", g)
	}
}

// lossyKV loses the answer of the next Txn commit: after it was applied
// (applied) or without sending it (!applied), it fails as a timeout would.
type lossyKV struct {
	clientv3.KV
	lose    atomic.Int32 // commits to let through before losing one; -1: none
	applied bool
}

func (k *lossyKV) Txn(ctx context.Context) clientv3.Txn {
	return &lossyTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type lossyTxn struct {
	clientv3.Txn
	kv *lossyKV
}

func (t *lossyTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *lossyTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *lossyTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }
func (t *lossyTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.kv.lose.Add(-1) != -1 {
		return t.Txn.Commit()
	}
	if t.kv.applied {
		if _, err := t.Txn.Commit(); err != nil {
			return nil, err
		}
	}
	return nil, context.DeadlineExceeded
}

// TestPlanStorePutRetriedAfterUnknownOutcome: a Put whose commit's answer
// was lost fails with ErrUnknownOutcome; retried, it is refused as stale if
// the first landed (and the plan is whole), or lands; the chunks of the
// attempt that did not commit are dropped or collected.
func TestPlanStorePutRetriedAfterUnknownOutcome(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			s := newPlanStore(t, client, PlanStoreConfig{})
			lossy := &lossyKV{KV: s.kv, applied: applied}
			s.kv = lossy
			p := bigPlan(3, 500, 2)
			lossy.lose.Store(2) // two reads of the highest record, then the commit
			err := s.Put(ctx, p)
			require.ErrorIs(t, err, ErrUnknownOutcome)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			lossy.lose.Store(-1 << 20)
			err = s.Put(ctx, p)
			if applied {
				var se *fence.StaleError
				require.ErrorAs(t, err, &se)
				require.Equal(t, fence.Token(3), se.Have)
			} else {
				require.NoError(t, err)
			}
			got, err := s.Get(ctx, 3)
			require.NoError(t, err)
			require.Empty(t, dnsplantest.DiffPlans(got, p))
			n, err := s.CollectOrphans(ctx)
			require.NoError(t, err)
			if applied {
				require.Zero(t, n, "the refused retry dropped its chunks")
			} else {
				require.Equal(t, 1, n, "the first attempt's chunks")
			}
			mustHold(t, s, 3)
		})
	}
}

// TestPlanStoreChunkTooLarge: a ChunkBytes above etcd's request limit is
// reported as ErrPlanTooLarge, saying what to lower, not as an outcome
// unknown; nothing is stored, and a smaller ChunkBytes then stores the
// plan.
func TestPlanStoreChunkTooLarge(t *testing.T) {
	srv := etcdtest.Start(t)
	client := srv.Client(t)
	ctx := ctxT(t)
	huge := bigPlan(1, 60_000, 4)
	_, data, err := encode(huge)
	require.NoError(t, err)
	require.Greater(t, len(data), 2<<20)
	var prefix string
	// Above the client's message limit (2 MiB), and above etcd's request
	// limit (1.5 MiB) only.
	for _, chunk := range []int{4 << 20, 1900 << 10} {
		s := newPlanStore(t, client, PlanStoreConfig{ChunkBytes: chunk, Prefix: prefix})
		prefix = s.prefix
		err := s.Put(ctx, huge)
		require.ErrorIs(t, err, ErrPlanTooLarge, "ChunkBytes %d", chunk)
		require.NotErrorIs(t, err, ErrUnknownOutcome)
		require.ErrorContains(t, err, "lower PlanStoreConfig.ChunkBytes")
		mustHold(t, s)
	}
	s2 := newPlanStore(t, client, PlanStoreConfig{Prefix: prefix})
	require.NoError(t, s2.Put(ctx, huge))
	mustHold(t, s2, 1)
}

// emptyKV answers every transaction with nothing: no response, no error.
type emptyKV struct{ clientv3.KV }

func (k emptyKV) Txn(ctx context.Context) clientv3.Txn { return emptyTxn{k.KV.Txn(ctx)} }

type emptyTxn struct{ clientv3.Txn }

func (t emptyTxn) If(...clientv3.Cmp) clientv3.Txn        { return t }
func (t emptyTxn) Then(...clientv3.Op) clientv3.Txn       { return t }
func (t emptyTxn) Else(...clientv3.Op) clientv3.Txn       { return t }
func (t emptyTxn) Commit() (*clientv3.TxnResponse, error) { return nil, nil }

// TestPlanStoreMalformedAnswer: a transaction answered with nothing (a
// broken proxy, say) is an outcome unknown, never a panic.
func TestPlanStoreMalformedAnswer(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t)
	s := newPlanStore(t, srv.Client(t), PlanStoreConfig{})
	require.NoError(t, s.Put(ctx, dnsplantest.PlanFor(1, 1)))
	s.kv = emptyKV{s.kv}
	require.ErrorIs(t, s.Put(ctx, dnsplantest.PlanFor(2, 1)), ErrUnknownOutcome)
	require.ErrorIs(t, s.Delete(ctx, 1), ErrUnknownOutcome)
	_, err := s.CollectOrphans(ctx)
	require.ErrorIs(t, err, ErrUnknownOutcome)
}
