package etcd

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultPlanPrefix is the prefix of a PlanStore's keys when
// PlanStoreConfig.Prefix is empty.
const DefaultPlanPrefix = "stormguard/dnsplan/"

// DefaultChunkBytes is the largest chunk of a compressed plan written in one
// request when PlanStoreConfig.ChunkBytes is zero: 1 MiB, below etcd's
// default request limit of 1.5 MiB (--max-request-bytes=1572864) with room
// for the key and the request's framing.
const DefaultChunkBytes = 1 << 20

// MinChunkBytes is the smallest PlanStoreConfig.ChunkBytes accepted.
const MinChunkBytes = 1 << 10

// MaxChunks bounds the chunks of one plan: a plan whose compressed
// encoding needs more is refused (ErrPlanTooLarge).
const MaxChunks = 1 << 14

// DefaultPutAttempts bounds the commits of one PlanStore.Put that lose their
// condition to other plans' commits or deletes of the highest record.
const DefaultPutAttempts = 16

// ErrCorruptPlan is matched by the error of a read that found a plan's
// manifest or chunks damaged: a manifest that does not parse, a missing or
// extra chunk, a checksum that does not match, data that does not
// decompress or decode, or a decoded plan that is invalid or of another
// generation. The data is left as it is; Delete still removes it.
var ErrCorruptPlan = errors.New("etcd: corrupt plan")

// ErrPlanTooLarge is matched by Put's refusal of a plan whose compressed
// encoding needs more than MaxChunks chunks, or one of whose chunks etcd
// (--max-request-bytes) or the client refused as too large: lower
// PlanStoreConfig.ChunkBytes then.
var ErrPlanTooLarge = errors.New("etcd: plan too large")

// PlanStoreConfig configures a PlanStore. The zero value is usable.
type PlanStoreConfig struct {
	// Prefix is prepended to every key the store writes. Empty means
	// DefaultPlanPrefix. As with StoreConfig.Prefix it is raw bytes, not
	// a path: end it with a separator and let no PlanStore's (or
	// Store's) prefix begin another's. At most fence.MaxKeyBytes minus 50
	// bytes long (the longest key the store writes under it).
	Prefix string
	// Limits is what Put validates plans against, and what a read
	// validates them against again (a plan that does not pass is
	// reported as ErrCorruptPlan).
	Limits dnsplan.Limits
	// MaxPlans bounds the plans held at once, so that a store whose
	// clean-up has stopped fails loudly (dnsplan.ErrFull) instead of
	// growing without bound. Zero means dnsplan.DefaultMaxPlans; negative
	// is invalid.
	MaxPlans int
	// ChunkBytes is the largest piece of a compressed plan written in one
	// etcd request. Zero means DefaultChunkBytes; otherwise at least
	// MinChunkBytes. Keep it below etcd's --max-request-bytes minus
	// 1 KiB.
	ChunkBytes int
}

// PlanStore is a dnsplan.Store and dnsplan.Watcher on etcd, for a planner
// and enactors in separate processes. See the package documentation
// ("Plan store") for its keys, its transactions and its guarantees. Build
// one with NewPlanStore; every method of a nil or zero PlanStore returns an
// error matching dnsplan.ErrInvalidArgument. A PlanStore is safe for
// concurrent use.
type PlanStore struct {
	client     *clientv3.Client
	kv         clientv3.KV
	prefix     string
	limits     dnsplan.Limits
	maxPlans   int
	chunkBytes int
	seq        *fence.Sequencer
	// Test hooks: after a read found a manifest, before its chunks are
	// read; after WaitNewer's read, before its watch starts.
	afterManifest, beforeWatch func()
}

var (
	_ dnsplan.Store   = (*PlanStore)(nil)
	_ dnsplan.Watcher = (*PlanStore)(nil)
)

// NewPlanStore returns a PlanStore on client configured by cfg, or an error
// matching dnsplan.ErrInvalidConfig that names every invalid field. It does
// no I/O. The store does not close client.
func NewPlanStore(client *clientv3.Client, cfg PlanStoreConfig) (*PlanStore, error) {
	var errs []error
	switch {
	case client == nil:
		errs = append(errs, fmt.Errorf("%w: etcd.NewPlanStore: client is nil", dnsplan.ErrInvalidConfig))
	case client.KV == nil || client.Watcher == nil:
		errs = append(errs, fmt.Errorf("%w: etcd.NewPlanStore: client has no KV or Watcher (not built with clientv3.New)", dnsplan.ErrInvalidConfig))
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPlanPrefix
	}
	// The longest key is prefix + "chunks/" + 20 digits + "/" + nonce +
	// "/" + 5 digits.
	if err := fence.ValidatePrefix(prefix); err != nil {
		errs = append(errs, fmt.Errorf("%w: etcd.PlanStoreConfig.Prefix: %w", dnsplan.ErrInvalidConfig, err))
	} else if n := len(prefix) + maxKeySuffix; n > fence.MaxKeyBytes {
		errs = append(errs, fmt.Errorf("%w: etcd.PlanStoreConfig.Prefix is %d bytes: keys under it would be up to %d bytes, limit %d", dnsplan.ErrInvalidConfig, len(prefix), n, fence.MaxKeyBytes))
	}
	if cfg.MaxPlans < 0 {
		errs = append(errs, fmt.Errorf("%w: etcd.PlanStoreConfig.MaxPlans %d is negative", dnsplan.ErrInvalidConfig, cfg.MaxPlans))
	}
	if cfg.ChunkBytes != 0 && cfg.ChunkBytes < MinChunkBytes {
		errs = append(errs, fmt.Errorf("%w: etcd.PlanStoreConfig.ChunkBytes %d is below %d", dnsplan.ErrInvalidConfig, cfg.ChunkBytes, MinChunkBytes))
	}
	if cfg.Limits.MaxEndpoints < 0 {
		errs = append(errs, fmt.Errorf("%w: etcd.PlanStoreConfig.Limits.MaxEndpoints %d is negative", dnsplan.ErrInvalidConfig, cfg.Limits.MaxEndpoints))
	}
	if cfg.Limits.MaxTargets < 0 {
		errs = append(errs, fmt.Errorf("%w: etcd.PlanStoreConfig.Limits.MaxTargets %d is negative", dnsplan.ErrInvalidConfig, cfg.Limits.MaxTargets))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &PlanStore{client: client, kv: client.KV, prefix: prefix, limits: cfg.Limits, maxPlans: cfg.MaxPlans, chunkBytes: cfg.ChunkBytes}
	if s.maxPlans == 0 {
		s.maxPlans = dnsplan.DefaultMaxPlans
	}
	if s.chunkBytes == 0 {
		s.chunkBytes = DefaultChunkBytes
	}
	fs, err := NewStore(StoreConfig{Client: client, Prefix: prefix})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", dnsplan.ErrInvalidConfig, err)
	}
	if s.seq, err = fence.NewSequencer(fence.SequencerConfig{Store: fs, Key: sequencerKey}); err != nil {
		return nil, fmt.Errorf("%w: %w", dnsplan.ErrInvalidConfig, err)
	}
	return s, nil
}

// The keys under the prefix.
const (
	highestKey    = "highest"   // digits(the highest generation ever put)
	sequencerKey  = "sequencer" // fence.Sequencer record, raised by Put
	manifestsDir  = "plans/"    // plans/digits(g): manifest JSON
	chunksDir     = "chunks/"   // chunks/digits(g)/nonce/digits5(i)
	nonceBytes    = 8
	chunkDigits   = 5
	maxKeySuffix  = len(chunksDir) + tokenDigits + 1 + 2*nonceBytes + 1 + chunkDigits
	manifestV1    = 1
	getAttempts   = 4
	maxRawPerByte = 1 << 10 // deflate expands at most ~1032:1
)

// manifest is the record that makes a plan exist. It names the chunks
// holding the plan's compressed encoding.
type manifest struct {
	Version    int    `json:"v"`
	Generation uint64 `json:"generation"`
	Nonce      string `json:"nonce"`
	Chunks     int    `json:"chunks"`
	Bytes      int    `json:"bytes"` // compressed
	Raw        int    `json:"raw"`   // uncompressed JSON
	SHA256     string `json:"sha256"`
	Endpoints  int    `json:"endpoints"`
}

func (s *PlanStore) highestKey() string   { return s.prefix + highestKey }
func (s *PlanStore) sequencerKey() string { return s.prefix + sequencerKey }
func (s *PlanStore) manifestKey(g fence.Token) string {
	return s.prefix + manifestsDir + digits(g)
}
func (s *PlanStore) chunkDir(g fence.Token) string { return s.prefix + chunksDir + digits(g) + "/" }
func (s *PlanStore) attemptDir(g fence.Token, nonce string) string {
	return s.chunkDir(g) + nonce + "/"
}

// check refuses a nil or zero store and a nil or ended context.
func (s *PlanStore) check(op string, ctx context.Context) error {
	if s == nil || s.kv == nil {
		return fmt.Errorf("%w: etcd.PlanStore.%s: nil or zero *PlanStore (build it with NewPlanStore)", dnsplan.ErrInvalidArgument, op)
	}
	if ctx == nil {
		return fmt.Errorf("%w: etcd.PlanStore.%s: nil context", dnsplan.ErrInvalidArgument, op)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcd: PlanStore.%s not sent: %w", op, err)
	}
	return nil
}

// encode returns p's deterministic encoding, compressed: JSON (map keys
// sorted, targets sorted by Normalize, MadeAt in UTC) through DEFLATE.
func encode(p dnsplan.Plan) (raw int, data []byte, err error) {
	c := p.Clone()
	c.Normalize()
	c.MadeAt = c.MadeAt.UTC()
	for i := range c.Velocity {
		c.Velocity[i].At = c.Velocity[i].At.UTC()
	}
	js, err := json.Marshal(c)
	if err != nil {
		return 0, nil, fmt.Errorf("etcd: encode plan %d: %w", uint64(p.Generation), err)
	}
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(js)
	if err := w.Close(); err != nil {
		return 0, nil, fmt.Errorf("etcd: compress plan %d: %w", uint64(p.Generation), err)
	}
	return len(js), buf.Bytes(), nil
}

func newNonce() string {
	var b [nonceBytes]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NextGeneration hands out a generation for the next plan: newer than
// every generation handed out before and every generation ever put, by any
// process, across restarts of the planner and of etcd. It is a
// fence.Sequencer on the key "sequencer" under the prefix, which every Put
// raises to its generation in the same transaction as the plan's commit.
// Generations may be skipped, never repeated. If the sequencer record was
// deleted or written back below the highest generation ever put (a partial
// restore, say), the generation handed out is checked against the highest
// record, and the sequencer raised above it: the answer is still above
// every generation ever put (though one handed out but never put may be
// handed out again, its record being gone). It costs one read more than
// the sequencer's own compare-and-swap.
func (s *PlanStore) NextGeneration(ctx context.Context) (fence.Token, error) {
	if err := s.check("NextGeneration", ctx); err != nil {
		return 0, err
	}
	return s.next(ctx)
}

// next returns the sequencer's next generation, above the highest record.
func (s *PlanStore) next(ctx context.Context) (fence.Token, error) {
	for attempt := 1; ; attempt++ {
		g, err := s.seq.Next(ctx)
		if err != nil {
			return 0, err
		}
		resp, err := s.kv.Get(ctx, s.highestKey())
		if err != nil {
			return 0, fmt.Errorf("etcd: PlanStore.NextGeneration: read highest: %w", unknownOutcome(ctx, err))
		}
		if resp == nil {
			return 0, fmt.Errorf("etcd: PlanStore.NextGeneration: %w", errMalformed)
		}
		h, _, err := s.parseHighest(resp.Kvs)
		if err != nil {
			return 0, err
		}
		if g > h {
			return g, nil
		}
		if attempt >= DefaultPutAttempts {
			return 0, fmt.Errorf("%w: PlanStore.NextGeneration: the sequencer handed out %d, not above the highest generation put, %d, %d times", fence.ErrContended, uint64(g), uint64(h), attempt)
		}
		// The sequencer was wound back below h: raise it to h, so that
		// its next token is above.
		if _, err := s.kv.Txn(ctx).Then(s.raiseSequencer(h)).Commit(); err != nil {
			return 0, fmt.Errorf("etcd: PlanStore.NextGeneration: raise the sequencer to %d: %w", uint64(h), unknownOutcome(ctx, err))
		}
	}
}

// raiseSequencer is the operation that raises the sequencer record to g if
// it is absent or below.
func (s *PlanStore) raiseSequencer(g fence.Token) clientv3.Op {
	seqRec := record(g, strconv.AppendUint(nil, uint64(g), 10))
	sk := s.sequencerKey()
	return clientv3.OpTxn(
		[]clientv3.Cmp{absent(sk)},
		[]clientv3.Op{clientv3.OpPut(sk, seqRec)},
		[]clientv3.Op{clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(sk), "<", digits(g)+":")},
			[]clientv3.Op{clientv3.OpPut(sk, seqRec)}, nil)},
	)
}

// Publish puts p under a generation from NextGeneration (p's own is
// ignored) and returns that generation. A planner restarted at any point
// publishes its next plan above every plan it published before. A Publish
// that fails with ErrUnknownOutcome may have stored the plan; publishing
// again stores it (again) under a newer generation, which is safe. If a
// second planner's plan, under a newer generation, was put between this
// Publish's NextGeneration and its commit, Publish fails with a
// *fence.StaleError: run one planner at a time.
func (s *PlanStore) Publish(ctx context.Context, p dnsplan.Plan) (fence.Token, error) {
	if err := s.check("Publish", ctx); err != nil {
		return 0, err
	}
	p.Generation = 1 // validated for everything but its generation first
	if err := dnsplan.Validate(p, s.limits); err != nil {
		return 0, err
	}
	g, err := s.next(ctx)
	if err != nil {
		return 0, err
	}
	p.Generation = g
	return g, s.Put(ctx, p)
}

// Put stores p if its generation is newer than every generation the store
// has ever held. See dnsplan.Store. It writes p's compressed encoding in
// chunks, each in its own request under keys of this attempt alone, then
// commits with one transaction: if the highest record is as read (and
// below p's generation), put the manifest, raise the highest record and
// the sequencer. A refusal returns a *fence.StaleError whose Have is the
// highest generation ever put; the attempt's chunks are then deleted. A
// plan read back is p normalized, with MadeAt and the Velocity times in
// UTC (the same instants). A chunk that etcd or the client refuses as too
// large fails the Put with ErrPlanTooLarge, storing no plan (the chunks
// written before it are deleted).
func (s *PlanStore) Put(ctx context.Context, p dnsplan.Plan) error {
	if err := s.check("Put", ctx); err != nil {
		return err
	}
	if err := dnsplan.Validate(p, s.limits); err != nil {
		return err
	}
	g := p.Generation
	// Refuse a stale or over-limit put before writing any chunk.
	h, _, count, err := s.readHighest(ctx, "Put")
	if err != nil {
		return err
	}
	if g <= h {
		return &fence.StaleError{Op: fence.OpWriteIfNewer, Key: s.manifestKey(g), Have: h, Want: g}
	}
	if count >= int64(s.maxPlans) {
		return fmt.Errorf("%w: cannot put plan %d: %d plans held, limit %d", dnsplan.ErrFull, uint64(g), count, s.maxPlans)
	}
	raw, data, err := encode(p)
	if err != nil {
		return err
	}
	n := (len(data) + s.chunkBytes - 1) / s.chunkBytes
	if n > MaxChunks {
		return fmt.Errorf("%w: plan %d compresses to %d bytes, %d chunks of %d bytes, limit %d chunks", ErrPlanTooLarge, uint64(g), len(data), n, s.chunkBytes, MaxChunks)
	}
	sum := sha256.Sum256(data)
	m := manifest{Version: manifestV1, Generation: uint64(g), Nonce: newNonce(), Chunks: n, Bytes: len(data), Raw: raw, SHA256: hex.EncodeToString(sum[:]), Endpoints: len(p.Endpoints)}
	mjs, _ := json.Marshal(m)
	dir := s.attemptDir(g, m.Nonce)
	for i := range n {
		chunk := data[i*s.chunkBytes : min(len(data), (i+1)*s.chunkBytes)]
		if _, err := s.kv.Put(ctx, dir+chunkName(i), string(chunk)); err != nil {
			if tooLarge(err) {
				s.dropAttempt(ctx, dir)
				return fmt.Errorf("%w: plan %d: a chunk of %d bytes was refused as too large (%w): lower PlanStoreConfig.ChunkBytes (%d) below etcd's --max-request-bytes", ErrPlanTooLarge, uint64(g), len(chunk), err, s.chunkBytes)
			}
			return fmt.Errorf("etcd: PlanStore.Put %d: chunk %d of %d: %w", uint64(g), i+1, n, unknownOutcome(ctx, err))
		}
	}
	for attempt := 1; ; attempt++ {
		h, hrev, count, err := s.readHighest(ctx, "Put")
		if err != nil {
			return err
		}
		if g <= h {
			s.dropAttempt(ctx, dir)
			return &fence.StaleError{Op: fence.OpWriteIfNewer, Key: s.manifestKey(g), Have: h, Want: g}
		}
		if count >= int64(s.maxPlans) {
			s.dropAttempt(ctx, dir)
			return fmt.Errorf("%w: cannot put plan %d: %d plans held, limit %d", dnsplan.ErrFull, uint64(g), count, s.maxPlans)
		}
		raiseSeq := s.raiseSequencer(g)
		// Every put changes the highest record, so "unchanged since the
		// read" also means the count read is still an upper bound.
		cond := clientv3.Compare(clientv3.ModRevision(s.highestKey()), "=", hrev)
		resp, err := s.kv.Txn(ctx).If(cond).Then(
			clientv3.OpPut(s.manifestKey(g), string(mjs)),
			clientv3.OpPut(s.highestKey(), digits(g)),
			raiseSeq,
		).Commit()
		if err != nil {
			return fmt.Errorf("etcd: PlanStore.Put %d: commit: %w", uint64(g), unknownOutcome(ctx, err))
		}
		if resp == nil {
			return fmt.Errorf("etcd: PlanStore.Put %d: commit: %w", uint64(g), errMalformed)
		}
		if resp.Succeeded {
			return nil
		}
		if attempt >= DefaultPutAttempts {
			s.dropAttempt(ctx, dir)
			return fmt.Errorf("%w: PlanStore.Put %d gave up after %d commits, other writers changed the highest record in between", fence.ErrContended, uint64(g), attempt)
		}
	}
}

// dropAttempt deletes the chunks of a put refused for sure: no manifest
// names them, and none ever can. Best effort: CollectOrphans deletes what
// it leaves.
func (s *PlanStore) dropAttempt(ctx context.Context, dir string) {
	s.kv.Delete(ctx, dir, clientv3.WithPrefix())
}

// tooLarge reports whether err is the refusal of a request too large for
// etcd (--max-request-bytes) or for the client's gRPC message limit: a
// refusal for sure, nothing was applied.
func tooLarge(err error) bool {
	return errors.Is(err, rpctypes.ErrRequestTooLarge) ||
		rpctypes.ErrorDesc(err) == rpctypes.ErrRequestTooLarge.Error() ||
		status.Code(err) == codes.ResourceExhausted
}

func chunkName(i int) string {
	return fmt.Sprintf("%0*d", chunkDigits, i)
}

// readHighest reads, at one revision, the highest generation ever put, the
// mod revision of its record (zero if absent) and the number of plans held.
func (s *PlanStore) readHighest(ctx context.Context, op string) (fence.Token, int64, int64, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.highestKey()),
		clientv3.OpGet(s.prefix+manifestsDir, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("etcd: PlanStore.%s: read highest: %w", op, unknownOutcome(ctx, err))
	}
	if resp == nil || len(resp.Responses) != 2 || resp.Responses[0].GetResponseRange() == nil || resp.Responses[1].GetResponseRange() == nil {
		return 0, 0, 0, fmt.Errorf("etcd: PlanStore.%s: %w", op, errMalformed)
	}
	h, rev, err := s.parseHighest(resp.Responses[0].GetResponseRange().Kvs)
	if err != nil {
		return 0, 0, 0, err
	}
	return h, rev, resp.Responses[1].GetResponseRange().Count, nil
}

func (s *PlanStore) parseHighest(kvs []*mvccpb.KeyValue) (fence.Token, int64, error) {
	if len(kvs) == 0 {
		return 0, 0, nil
	}
	h, ok := parseDigits(kvs[0].Value)
	if !ok {
		return 0, 0, fmt.Errorf("%w: key %q holds %q, not a generation in %d digits", ErrCorruptPlan, s.highestKey(), clip(kvs[0].Value), tokenDigits)
	}
	return h, kvs[0].ModRevision, nil
}

func parseDigits(b []byte) (fence.Token, bool) {
	if len(b) != tokenDigits {
		return 0, false
	}
	t, ok := parseToken(append(append(make([]byte, 0, tokenDigits+1), b...), ':'))
	return t, ok
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// Get returns plan g, read at one etcd revision. See dnsplan.Store.
func (s *PlanStore) Get(ctx context.Context, g fence.Token) (dnsplan.Plan, error) {
	if err := s.check("Get", ctx); err != nil {
		return dnsplan.Plan{}, err
	}
	return s.read(ctx, "Get", func() clientv3.Op { return clientv3.OpGet(s.manifestKey(g)) }, g)
}

// Latest returns the plan with the highest generation held, read at one
// etcd revision. See dnsplan.Store. If that plan is damaged it fails with
// ErrCorruptPlan; it never falls back to an older plan. A newer plan put,
// or a Delete of the damaged one, ends that.
func (s *PlanStore) Latest(ctx context.Context) (dnsplan.Plan, error) {
	if err := s.check("Latest", ctx); err != nil {
		return dnsplan.Plan{}, err
	}
	return s.read(ctx, "Latest", func() clientv3.Op {
		return clientv3.OpGet(s.prefix+manifestsDir, clientv3.WithLastKey()...)
	}, 0)
}

// read reads a manifest with op, then its chunks at the same revision; if
// etcd has compacted that revision in between, it starts over (the plan
// may have been deleted since: then it is not found).
func (s *PlanStore) read(ctx context.Context, name string, op func() clientv3.Op, g fence.Token) (dnsplan.Plan, error) {
	for attempt := 1; ; attempt++ {
		resp, err := s.kv.Do(ctx, op())
		if err != nil {
			return dnsplan.Plan{}, fmt.Errorf("etcd: PlanStore.%s: %w", name, unknownOutcome(ctx, err))
		}
		kvs := resp.Get().Kvs
		if len(kvs) == 0 {
			if name == "Latest" {
				return dnsplan.Plan{}, fmt.Errorf("%w: the store holds no plan", dnsplan.ErrNotFound)
			}
			return dnsplan.Plan{}, fmt.Errorf("%w: generation %d", dnsplan.ErrNotFound, uint64(g))
		}
		rev := resp.Get().Header.Revision
		if s.afterManifest != nil {
			s.afterManifest()
		}
		p, err := s.load(ctx, kvs[0], rev)
		if errors.Is(err, rpctypes.ErrCompacted) {
			if attempt < getAttempts {
				continue
			}
			return dnsplan.Plan{}, fmt.Errorf("etcd: PlanStore.%s: gave up after %d reads, each plan's revision compacted before its chunks were read: %w", name, attempt, err)
		}
		return p, err
	}
}

// load decodes the plan of manifest kv, reading its chunks at rev.
func (s *PlanStore) load(ctx context.Context, kv *mvccpb.KeyValue, rev int64) (dnsplan.Plan, error) {
	key := string(kv.Key)
	g, ok := parseDigits([]byte(strings.TrimPrefix(key, s.prefix+manifestsDir)))
	if !ok {
		return dnsplan.Plan{}, fmt.Errorf("%w: key %q is not a plan's manifest", ErrCorruptPlan, key)
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: plan %d: %s", ErrCorruptPlan, uint64(g), fmt.Sprintf(format, args...))
	}
	var m manifest
	if err := json.Unmarshal(kv.Value, &m); err != nil {
		return dnsplan.Plan{}, corrupt("manifest %q does not parse: %v", clip(kv.Value), err)
	}
	switch {
	case m.Version != manifestV1:
		return dnsplan.Plan{}, corrupt("manifest version %d, want %d", m.Version, manifestV1)
	case m.Generation != uint64(g):
		return dnsplan.Plan{}, corrupt("manifest names generation %d", m.Generation)
	case len(m.Nonce) != 2*nonceBytes || strings.ContainsAny(m.Nonce, "/"):
		return dnsplan.Plan{}, corrupt("manifest nonce %q is malformed", m.Nonce)
	case m.Chunks < 1 || m.Chunks > MaxChunks || m.Bytes < 1 || m.Raw < 1 || m.Raw > m.Bytes*maxRawPerByte:
		return dnsplan.Plan{}, corrupt("manifest sizes are impossible (%d chunks, %d bytes, %d raw)", m.Chunks, m.Bytes, m.Raw)
	}
	dir := s.attemptDir(g, m.Nonce)
	resp, err := s.kv.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return dnsplan.Plan{}, err
		}
		return dnsplan.Plan{}, fmt.Errorf("etcd: PlanStore: read plan %d: %w", uint64(g), unknownOutcome(ctx, err))
	}
	if len(resp.Kvs) != m.Chunks {
		return dnsplan.Plan{}, corrupt("%d chunks found under %q, manifest says %d", len(resp.Kvs), dir, m.Chunks)
	}
	data := make([]byte, 0, m.Bytes)
	for i, c := range resp.Kvs {
		if string(c.Key) != dir+chunkName(i) {
			return dnsplan.Plan{}, corrupt("chunk %d missing (found key %q)", i, c.Key)
		}
		if len(data)+len(c.Value) > m.Bytes {
			return dnsplan.Plan{}, corrupt("chunks hold more than the manifest's %d bytes", m.Bytes)
		}
		data = append(data, c.Value...)
	}
	if len(data) != m.Bytes {
		return dnsplan.Plan{}, corrupt("chunks hold %d bytes, manifest says %d", len(data), m.Bytes)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m.SHA256 {
		return dnsplan.Plan{}, corrupt("checksum %x does not match the manifest's %s", sum, m.SHA256)
	}
	js, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), int64(m.Raw)+1))
	if err != nil {
		return dnsplan.Plan{}, corrupt("does not decompress: %v", err)
	}
	if len(js) != m.Raw {
		return dnsplan.Plan{}, corrupt("decompresses to %d bytes or more, manifest says %d", len(js), m.Raw)
	}
	var p dnsplan.Plan
	if err := json.Unmarshal(js, &p); err != nil {
		return dnsplan.Plan{}, corrupt("does not decode: %v", err)
	}
	if p.Generation != g {
		return dnsplan.Plan{}, corrupt("encoding holds generation %d", uint64(p.Generation))
	}
	if err := dnsplan.Validate(p, s.limits); err != nil {
		return dnsplan.Plan{}, corrupt("decoded plan is invalid: %v", err)
	}
	return p, nil
}

// Delete removes plan g — its manifest and every chunk stored under its
// generation — in one transaction conditioned on the manifest existing.
// See dnsplan.Store.
func (s *PlanStore) Delete(ctx context.Context, g fence.Token) error {
	if err := s.check("Delete", ctx); err != nil {
		return err
	}
	mk := s.manifestKey(g)
	resp, err := s.kv.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(mk), ">", 0)).Then(
		clientv3.OpDelete(mk),
		clientv3.OpDelete(s.chunkDir(g), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return fmt.Errorf("etcd: PlanStore.Delete %d: %w", uint64(g), unknownOutcome(ctx, err))
	}
	if resp == nil {
		return fmt.Errorf("etcd: PlanStore.Delete %d: %w", uint64(g), errMalformed)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: generation %d", dnsplan.ErrNotFound, uint64(g))
	}
	return nil
}

// List returns the generations held, ascending: one read of the manifests'
// keys. See dnsplan.Store.
func (s *PlanStore) List(ctx context.Context) ([]fence.Token, error) {
	if err := s.check("List", ctx); err != nil {
		return nil, err
	}
	dir := s.prefix + manifestsDir
	resp, err := s.kv.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd: PlanStore.List: %w", unknownOutcome(ctx, err))
	}
	gens := make([]fence.Token, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		g, ok := parseDigits(kv.Key[len(dir):])
		if !ok {
			return nil, fmt.Errorf("%w: key %q is not a plan's manifest", ErrCorruptPlan, kv.Key)
		}
		gens = append(gens, g)
	}
	return gens, nil
}

// WaitNewer returns the highest generation ever put once it is above g. See
// dnsplan.Watcher. It reads the highest record, and if it is not above g
// watches it from the revision after that read; when the watch breaks (a
// lost connection: the etcd client resumes it from the last revision it
// delivered) or the revision has been compacted, it reads again and
// watches from there. It polls nothing.
func (s *PlanStore) WaitNewer(ctx context.Context, g fence.Token) (fence.Token, error) {
	if err := s.check("WaitNewer", ctx); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		resp, err := s.kv.Get(ctx, s.highestKey())
		if err != nil {
			return 0, fmt.Errorf("etcd: PlanStore.WaitNewer: %w", unknownOutcome(ctx, err))
		}
		h, _, err := s.parseHighest(resp.Kvs)
		if err != nil {
			return 0, err
		}
		if h > g {
			return h, nil
		}
		rev := resp.Header.Revision + 1
		if s.beforeWatch != nil {
			s.beforeWatch()
		}
		h, err = s.watch(ctx, g, rev)
		if err != nil || h > g {
			return h, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// watch watches the highest record from rev until it is above g; it
// returns zero and no error when the watch must be started over from a
// new read (compaction, or a watch channel closed by the client).
func (s *PlanStore) watch(ctx context.Context, g fence.Token, rev int64) (fence.Token, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.client.Watch(wctx, s.highestKey(), clientv3.WithRev(rev)) {
		if err := wr.Err(); err != nil {
			if wr.CompactRevision != 0 || errors.Is(err, rpctypes.ErrCompacted) {
				return 0, nil
			}
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			// No leader, say: start over from a fresh read, which waits
			// for etcd (until ctx ends) and says if it is unreachable.
			return 0, nil
		}
		var top fence.Token
		for _, ev := range wr.Events {
			if h, ok := parseDigits(ev.Kv.Value); ok && ev.Type == clientv3.EventTypePut {
				top = max(top, h)
			}
		}
		if top > g {
			return top, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return 0, nil
}

// CollectOrphans deletes the chunks no plan can ever use: those of a put
// whose writer died (or was refused, or timed out) before its commit, under
// a generation at or below the highest ever put, that no manifest names.
// No manifest for such a generation can ever appear (Put requires its
// generation above the highest), so the chunks of a put still in flight
// above the highest are never touched. Each group is deleted in one
// transaction conditioned on the highest record being at or above its
// generation and on the plan's manifest being as read. It returns how many
// groups it deleted. No method calls it: the planner must, after a Put or
// Publish that failed mid-way (ErrUnknownOutcome, an ended context) once a
// newer plan is put, and at start-up; it reads every chunk key under the
// prefix.
func (s *PlanStore) CollectOrphans(ctx context.Context) (int, error) {
	if err := s.check("CollectOrphans", ctx); err != nil {
		return 0, err
	}
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.highestKey()),
		clientv3.OpGet(s.prefix+manifestsDir, clientv3.WithPrefix()),
		clientv3.OpGet(s.prefix+chunksDir, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcd: PlanStore.CollectOrphans: %w", unknownOutcome(ctx, err))
	}
	if resp == nil || len(resp.Responses) != 3 {
		return 0, fmt.Errorf("etcd: PlanStore.CollectOrphans: %w", errMalformed)
	}
	h, _, err := s.parseHighest(resp.Responses[0].GetResponseRange().GetKvs())
	if err != nil {
		return 0, err
	}
	type live struct {
		nonce string
		rev   int64
	}
	manifests := map[fence.Token]live{}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		g, ok := parseDigits(kv.Key[len(s.prefix+manifestsDir):])
		if !ok {
			continue
		}
		var m manifest
		_ = json.Unmarshal(kv.Value, &m) // a corrupt manifest keeps no chunk group but its own nonce's
		manifests[g] = live{m.Nonce, kv.ModRevision}
	}
	type group struct {
		g     fence.Token
		nonce string
	}
	var groups []group
	seen := map[group]bool{}
	for _, kv := range resp.Responses[2].GetResponseRange().GetKvs() {
		rest := strings.TrimPrefix(string(kv.Key), s.prefix+chunksDir)
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) != 3 {
			continue
		}
		g, ok := parseDigits([]byte(parts[0]))
		if !ok || g > h {
			continue // not ours, or a put still in flight
		}
		gr := group{g, parts[1]}
		if m, ok := manifests[g]; (ok && m.nonce == gr.nonce) || seen[gr] {
			continue
		}
		seen[gr] = true
		groups = append(groups, gr)
	}
	deleted := 0
	for _, gr := range groups {
		mk := s.manifestKey(gr.g)
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.Value(s.highestKey()), ">", digits(gr.g-1))}
		if m, ok := manifests[gr.g]; ok {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(mk), "=", m.rev))
		} else {
			cmps = append(cmps, absent(mk))
		}
		r, err := s.kv.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(s.attemptDir(gr.g, gr.nonce), clientv3.WithPrefix())).Commit()
		if err != nil {
			return deleted, fmt.Errorf("etcd: PlanStore.CollectOrphans: %w", unknownOutcome(ctx, err))
		}
		if r != nil && r.Succeeded {
			deleted++
		}
	}
	return deleted, nil
}
