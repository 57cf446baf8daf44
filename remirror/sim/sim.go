// Package sim is a deterministic discrete-event simulator of an EBS-like
// region, built to reproduce the re-mirroring storm of April 2011 and to
// show package remirror's engine preventing it. Every zone's cluster is
// driven by a remirror.Engine; only the engine's settings differ between
// the naive run (NaiveSettings, the 2011 behaviour) and the guarded one
// (the engine's defaults).
//
// Run it twice on one seed, naive and guarded, and compare:
//
//	cfg := sim.DefaultConfig() // one seed, one result
//	cfg.Duration = 4 * time.Hour
//	for _, mode := range []sim.Mode{sim.Naive, sim.Guarded} {
//		r, err := sim.Run(cfg, mode)
//		if err != nil {
//			log.Fatal(err)
//		}
//		healed := "still stuck at the end"
//		if r.HealthyAfter >= 0 {
//			healed = fmt.Sprintf("healthy %v after the heal", r.HealthyAfter)
//		}
//		fmt.Printf("%v: peak stuck %.0f%%, %d searches, %s\n", mode, 100*r.PeakStuck, r.Searches, healed)
//	}
//
// The model, in full:
//
//   - Virtual time, events taken in order of time then of insertion (from
//     a heap, and from FIFOs for the events that follow a fixed delay), no
//     sleeping and no goroutines. All randomness comes from PCG generators
//     seeded with Config.Seed: one seed, one result.
//   - Config.Zones zones, each one cluster of Config.NodesPerZone nodes and
//     Config.VolumesPerZone volumes of size 1, each volume mirrored on two
//     random nodes of its zone. Node capacity is sized so that the cluster
//     is Config.Fill full; no node is filled past its 10% recovery reserve.
//   - A message (probe, search query, its answer) takes Config.Latency; a
//     copy takes Config.CopyTime ± 50%. A message or copy succeeds only if
//     both ends are reachable when it completes.
//   - The network fault: at Config.FaultStart, Config.IsolatedFraction of
//     the nodes of zone 0 are cut off from everything for
//     Config.FaultDuration. Each volume with a replica on an isolated node
//     loses its mirror; the replica that can still talk (or, if both are
//     cut off, the primary) reports PeerLost to the engine.
//   - The crash race: closing a search request makes its source node crash
//     with probability Config.CrashPerClose × (other search requests open
//     at that node − Config.CrashThreshold), so a node crashes only when it
//     closes many requests at once, and then more likely the more it has. A crashed node is down (its data intact) for
//     Config.RestartAfter; the engine is told NodeFailed and NodeUp.
//     Independently, every healthy zone (all but zone 0) loses a random
//     node to an ordinary crash Config.ChurnPerHour times an hour, which
//     keeps elections coming from the healthy zones.
//   - The authority is regional and serves Config.AuthorityRate elections
//     a second, first come first served. Each election is a
//     compare-and-swap of the volume's generation; re-electing the holder of
//     a newer generation returns it. A caller whose call is not answered
//     within its timeout reports ElectionFailed and retries. The naive
//     authority client waits NaiveAuthorityTimeout and sends every call; the
//     authority then serves calls whose callers have given up, and its
//     goodput collapses. The guarded client takes a slot of a per-zone
//     shed.Partition (a zone may hold half the slots), waits
//     GuardedAuthorityTimeout, and the authority drops calls whose caller
//     has given up without serving them.
//
// Per simulated minute the simulator records, per zone: the stuck fraction
// (volumes not Healthy), search messages, authority calls, free capacity on
// usable nodes, and volumes without a replica holding their data (which
// must always be zero: that would be data loss).
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/remirror"
	"github.com/stormguard/stormguard/shed"
)

// Timeouts of the two authority clients.
const (
	NaiveAuthorityTimeout   = time.Minute
	GuardedAuthorityTimeout = 2 * time.Second
)

// MaxChurnPerHour bounds Config.ChurnPerHour: one crash a second in each
// zone.
const MaxChurnPerHour = 3600

// DefaultMaxEvents is the number of events a run simulates at most when
// Config.MaxEvents is zero: about four times the 27 million of the naive
// storm at full size (Scaled(100_000), 24 hours), which a core simulates in
// about 7 seconds.
const DefaultMaxEvents = 100_000_000

// Errors of Run.
var (
	// ErrInvalidConfig is matched (with errors.Is) by every error Run
	// returns for a bad Config or an unknown Mode.
	ErrInvalidConfig = errors.New("sim: invalid config")
	// ErrEventLimit is matched by the error Run returns with a run it cut
	// short at Config.MaxEvents events (Result.EventLimited).
	ErrEventLimit = errors.New("sim: event limit reached")
)

// Mode selects the engine settings and authority client of a run.
type Mode uint8

const (
	// Naive is 2011: no reconnect, immediate unbounded search of random
	// nodes retried every minute in lockstep, no reserve, unbounded
	// concurrency, long authority timeouts and no per-zone isolation.
	Naive Mode = iota
	// Guarded is the engine's default Settings, and the authority behind a
	// per-zone shed.Partition with short timeouts.
	Guarded
)

// String returns "naive" or "guarded", or "Mode(n)" for a value that is
// neither.
func (m Mode) String() string {
	switch m {
	case Naive:
		return "naive"
	case Guarded:
		return "guarded"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// NaiveSettings are the 2011 settings: they live here, in the simulator,
// and nowhere in the engine.
func NaiveSettings() remirror.Settings {
	return remirror.Settings{
		NoReconnect:   true,
		NoHints:       true,
		NoReserve:     true,
		SearchRate:    remirror.Unlimited,
		MaxPerNode:    remirror.Unlimited,
		MaxPerCluster: remirror.Unlimited,
		MaxElections:  remirror.Unlimited,
		Search:        backoff.Policy{Base: time.Minute, Cap: time.Minute, Jitter: backoff.JitterNone},
		Elect:         backoff.Policy{Base: time.Second, Cap: time.Second, Jitter: backoff.JitterNone},
	}
}

// Config describes a scenario. DefaultConfig is the one the tests and the
// demo use by default.
type Config struct {
	// Seed seeds every random choice: one seed, one result.
	Seed uint64
	// Zones is the number of zones, each one cluster with its own engine.
	Zones int
	// NodesPerZone and VolumesPerZone size each cluster.
	NodesPerZone, VolumesPerZone int
	// Fill is how full the clusters start, at most 0.9 (the reserve).
	Fill float64
	// Duration is the simulated time.
	Duration time.Duration
	// FaultStart and FaultDuration place the network fault in zone 0.
	FaultStart, FaultDuration time.Duration
	// IsolatedFraction is the fraction of zone 0's nodes the fault isolates.
	IsolatedFraction float64
	// Latency is the time a message and its answer take.
	Latency time.Duration
	// CopyTime is the mean time of a copy (uniform in ±50%).
	CopyTime time.Duration
	// AuthorityRate is how many elections the regional authority serves a
	// second.
	AuthorityRate float64
	// CrashPerClose sets the crash race: closing a search request crashes
	// its node with probability CrashPerClose × (other requests open there
	// − CrashThreshold), if that is positive.
	CrashPerClose float64
	// CrashThreshold is how many other search requests may be open at a
	// node when it closes one without any risk of crashing it.
	CrashThreshold int
	// RestartAfter is how long a crashed node stays down.
	RestartAfter time.Duration
	// ChurnPerHour is the rate of ordinary node crashes in each healthy
	// zone, at most MaxChurnPerHour.
	ChurnPerHour float64
	// MaxEvents bounds the events a run simulates, and with it the run's
	// time: zero means DefaultMaxEvents, a negative value is refused. A
	// valid configuration can need any number of events (with latencies
	// and restarts of a nanosecond, the naive storm cycles every few
	// nanoseconds of simulated time), so Run stops a run that would need
	// more and says so (ErrEventLimit, Result.EventLimited).
	MaxEvents int64
}

// DefaultConfig is a small region: 3 zones of 60 nodes and 2,000 volumes
// each, 88% full, 12 simulated hours; at 0:47 a fault isolates 10% of zone
// 0's nodes for 40 minutes.
func DefaultConfig() Config {
	return Config{
		Seed:             1,
		Zones:            3,
		NodesPerZone:     60,
		VolumesPerZone:   2000,
		Fill:             0.88,
		Duration:         12 * time.Hour,
		FaultStart:       47 * time.Minute,
		FaultDuration:    40 * time.Minute,
		IsolatedFraction: 0.1,
		Latency:          5 * time.Millisecond,
		CopyTime:         2 * time.Minute,
		AuthorityRate:    10,
		CrashPerClose:    0.01,
		CrashThreshold:   3,
		RestartAfter:     5 * time.Minute,
		ChurnPerHour:     1,
	}
}

// Scaled returns c with volumes and nodes per zone set for a region of
// total volumes (about 33 volumes per node), and the authority's rate
// scaled with it.
func (c Config) Scaled(total int) Config {
	c.VolumesPerZone = max(1, total/max(c.Zones, 1))
	c.NodesPerZone = max(8, c.VolumesPerZone/33)
	c.AuthorityRate = math.Max(1, float64(total)/600)
	return c
}

func (c Config) validate(mode Mode) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if mode != Naive && mode != Guarded {
		bad("%v is neither Naive nor Guarded", mode)
	}
	if c.Zones < 1 || c.Zones > 64 {
		bad("Zones %d is outside [1, 64]", c.Zones)
	}
	if c.NodesPerZone < 4 || c.NodesPerZone > 1<<20 {
		bad("NodesPerZone %d is outside [4, 2^20]", c.NodesPerZone)
	}
	if c.VolumesPerZone < 1 || c.VolumesPerZone > 1<<24 {
		bad("VolumesPerZone %d is outside [1, 2^24]", c.VolumesPerZone)
	}
	if !(c.Fill > 0 && c.Fill <= 0.9) {
		bad("Fill %v is outside (0, 0.9]", c.Fill)
	}
	if c.Duration <= 0 || c.Duration > 30*24*time.Hour {
		bad("Duration %v is outside (0, 30 days]", c.Duration)
	}
	if c.FaultStart < 0 || c.FaultDuration < 0 {
		bad("FaultStart %v and FaultDuration %v must not be negative", c.FaultStart, c.FaultDuration)
	}
	if !(c.IsolatedFraction >= 0 && c.IsolatedFraction <= 1) {
		bad("IsolatedFraction %v is outside [0, 1]", c.IsolatedFraction)
	}
	if c.Latency <= 0 || c.CopyTime <= 0 || c.RestartAfter <= 0 {
		bad("Latency %v, CopyTime %v and RestartAfter %v must be positive", c.Latency, c.CopyTime, c.RestartAfter)
	}
	if !(c.AuthorityRate > 0) || math.IsInf(c.AuthorityRate, 0) {
		bad("AuthorityRate %v is not a positive finite number", c.AuthorityRate)
	}
	if c.CrashThreshold < 0 {
		bad("CrashThreshold %d is negative", c.CrashThreshold)
	}
	if !(c.CrashPerClose >= 0 && c.CrashPerClose <= 1) {
		bad("CrashPerClose %v is outside [0, 1]", c.CrashPerClose)
	}
	if !(c.ChurnPerHour >= 0 && c.ChurnPerHour <= MaxChurnPerHour) {
		bad("ChurnPerHour %v is outside [0, %d]", c.ChurnPerHour, MaxChurnPerHour)
	}
	if c.MaxEvents < 0 {
		bad("MaxEvents %d is negative", c.MaxEvents)
	}
	if c.Zones >= 1 && c.NodesPerZone >= 1 && c.VolumesPerZone >= 1 && c.Fill > 0 {
		// Each node's capacity, and the region's, must fit the ledger.
		if capacity := math.Ceil(2 * float64(c.VolumesPerZone) / float64(c.NodesPerZone) / c.Fill); capacity*float64(c.NodesPerZone)*float64(c.Zones) >= 1<<62 {
			bad("Fill %v makes each node's capacity %g, too large for the region's capacity to count", c.Fill, capacity)
		}
	}
	return errors.Join(errs...)
}

// Minute is one simulated minute of one zone (or of the region).
type Minute struct {
	// Minute numbers the minute from the start of the run: minute n is
	// the one that ends n minutes in, when it is sampled, so the first is
	// 1.
	Minute int
	// Stuck is the fraction of volumes not Healthy at the end of the minute.
	Stuck float64
	// Searches and AuthorityCalls count the search messages and the
	// elections sent during the minute.
	Searches, AuthorityCalls int64
	// Free is the capacity free on usable nodes at the end of the minute,
	// as a fraction of the zone's capacity.
	Free float64
	// ZeroLive is the number of volumes with no replica holding their data.
	ZeroLive int
}

// Result is the outcome of one run.
type Result struct {
	// Mode is the mode Run was given.
	Mode Mode
	// Config is the configuration Run was given.
	Config Config
	// Region is the per-minute timeline of the region.
	Region []Minute
	// Zones holds the per-minute timeline of each zone, indexed by zone
	// (zone 0 is the faulty one).
	Zones [][]Minute
	// Searches and AuthorityCalls are the search messages and the
	// elections sent during the run, over every zone: the sums of the
	// Region timeline's.
	Searches, AuthorityCalls int64
	// Crashes is the number of node crashes over the run, in every zone:
	// those of the crash race and the ordinary ones (ChurnPerHour).
	Crashes int
	// PeakStuck is the highest per-minute stuck fraction of the region, and
	// PeakStuckZone that of the faulty zone (zone 0).
	PeakStuck, PeakStuckZone float64
	// MaxZeroLive is the most volumes without a replica holding their data
	// at the end of any minute (0 unless data was lost).
	MaxZeroLive int
	// HealthyAfter is how long after the fault ended every volume of the
	// faulty zone was Healthy for good, to the minute (-1: not by the end
	// of the run, or the run was cut short or ended before its first
	// minute).
	HealthyAfter time.Duration
	// IsolatedFraction is the fraction of the region's nodes isolated.
	IsolatedFraction float64
	// Events is the number of events simulated.
	Events int64
	// EventLimited says the run was cut short at Config.MaxEvents events,
	// before the end of Config.Duration: the timelines end at the last
	// minute simulated, and HealthyAfter is -1.
	EventLimited bool
}

// event kinds
const (
	evTick uint8 = iota + 1
	evAnswer
	evAuthServe
	evElectTimeout
	evElectReply
	evFaultStart
	evFaultEnd
	evRestart
	evChurn
	evMinute
)

type event struct {
	at      int64
	seq     uint64
	kind    uint8
	zone    uint8
	input   remirror.InputKind
	ok      bool
	node    int32
	vol     int32
	attempt uint32
	req     int32
	crashes uint32 // node crashes before a search query was sent
}

type zone struct {
	e        *remirror.Engine
	tickAt   int64 // time of the pending tick event, or -1
	isolated []bool
	down     []bool
	open     []int32 // search requests open at each node
	// crashed holds the ordinal (1, 2, ...) of each node's latest crash
	// in the region, 0 if it never crashed.
	crashed  []uint32
	holders  []int8 // replicas holding each volume's data
	zeroLive int
	queries  int64 // at the start of the minute
	elects   int64
}

type request struct {
	zone      int
	vol       remirror.VolumeID
	attempt   uint32
	node      remirror.NodeID
	expect    fence.Token
	deadline  int64
	refs      int8 // the queue and the timeout event
	answered  bool
	holdsSlot bool
}

type simulation struct {
	cfg     Config
	mode    Mode
	rng     *rand.Rand
	now     int64
	seq     uint64
	heap    []event
	fifos   [numFIFOs]fifo
	zones   []*zone
	faulty  bool
	gens    [][]fence.Token // the authority's generation per volume
	holder  [][]remirror.NodeID
	queue   []int32 // the authority's FIFO of requests
	qhead   int
	serving bool
	reqs    []request
	free    []int32
	part    *shed.Partition[int]
	timeout int64
	res     *Result
	crashes int
	lastBad int64 // last minute (ns) any volume was stuck
	events  int64
}

// Run simulates cfg in the given mode. It returns an error matching
// ErrInvalidConfig that names every bad field of cfg, and the mode if it is
// neither Naive nor Guarded.
//
// Run simulates at most cfg.MaxEvents events (DefaultMaxEvents if zero),
// each of which costs at most time linear in the size of a zone, after a
// set-up linear in the size of the region, so every valid configuration
// finishes in bounded time. A run that would need more
// events is cut short: Run returns its result so far, with EventLimited
// set, and an error matching ErrEventLimit that says how far it got.
func Run(cfg Config, mode Mode) (*Result, error) {
	if err := cfg.validate(mode); err != nil {
		return nil, err
	}
	s := &simulation{cfg: cfg, mode: mode, rng: rand.New(rand.NewPCG(cfg.Seed, 0xeb5)), res: &Result{Mode: mode, Config: cfg}}
	settings := remirror.Settings{}
	s.timeout = int64(GuardedAuthorityTimeout)
	if mode == Naive {
		settings = NaiveSettings()
		s.timeout = int64(NaiveAuthorityTimeout)
	} else {
		total := max(2, int(math.Min(cfg.AuthorityRate*GuardedAuthorityTimeout.Seconds(), 1<<24)))
		p, err := shed.NewPartition(shed.PartitionConfig[int]{Total: total, Share: 0.5})
		if err != nil {
			return nil, err
		}
		s.part = p
	}
	capacity := int64(math.Ceil(2 * float64(cfg.VolumesPerZone) / float64(cfg.NodesPerZone) / cfg.Fill))
	limit := capacity - int64(math.Ceil(float64(capacity)*remirror.DefaultRecoveryReserve))
	for zi := range cfg.Zones {
		// The layout depends on the seed and the zone only, so both modes
		// start from the same region.
		layout := rand.New(rand.NewPCG(cfg.Seed, uint64(zi)))
		e, err := remirror.NewEngine(settings, rand.New(rand.NewPCG(cfg.Seed, 0x100+uint64(zi))))
		if err != nil {
			return nil, err
		}
		z := &zone{e: e, tickAt: -1,
			isolated: make([]bool, cfg.NodesPerZone), down: make([]bool, cfg.NodesPerZone),
			open:    make([]int32, cfg.NodesPerZone),
			crashed: make([]uint32, cfg.NodesPerZone),
			holders: make([]int8, cfg.VolumesPerZone)}
		used := make([]int64, cfg.NodesPerZone)
		for range cfg.NodesPerZone {
			if _, err := e.AddNode(capacity); err != nil {
				return nil, err
			}
		}
		gens := make([]fence.Token, cfg.VolumesPerZone)
		holder := make([]remirror.NodeID, cfg.VolumesPerZone)
		pick := func(not int) (int, error) {
			for range 64 {
				n := layout.IntN(cfg.NodesPerZone)
				if n != not && used[n] < limit {
					return n, nil
				}
			}
			for n := range cfg.NodesPerZone {
				if n != not && used[n] < limit {
					return n, nil
				}
			}
			return -1, fmt.Errorf("%w: the %d volumes of a zone do not fit on its %d nodes at Fill %v: each node holds %d replicas outside its recovery reserve (capacity %d)", ErrInvalidConfig, cfg.VolumesPerZone, cfg.NodesPerZone, cfg.Fill, limit, capacity)
		}
		for v := range cfg.VolumesPerZone {
			a, err := pick(-1)
			if err != nil {
				return nil, err
			}
			b, err := pick(a)
			if err != nil {
				return nil, err
			}
			used[a]++
			used[b]++
			if _, err := e.AddVolume(1, remirror.NodeID(a), remirror.NodeID(b), 1); err != nil {
				return nil, err
			}
			gens[v], holder[v], z.holders[v] = 1, remirror.NodeID(a), 2
		}
		s.zones = append(s.zones, z)
		s.gens = append(s.gens, gens)
		s.holder = append(s.holder, holder)
		s.res.Zones = append(s.res.Zones, nil)
		if cfg.ChurnPerHour > 0 && (zi > 0 || cfg.Zones == 1) {
			s.push(event{at: s.churnDelay(), kind: evChurn, zone: uint8(zi)})
		}
	}
	if cfg.FaultDuration > 0 && cfg.IsolatedFraction > 0 {
		s.push(event{at: int64(cfg.FaultStart), kind: evFaultStart})
		s.push(event{at: addSat(int64(cfg.FaultStart), int64(cfg.FaultDuration)), kind: evFaultEnd})
	}
	s.push(event{at: int64(time.Minute), kind: evMinute})
	s.lastBad = -1
	end := int64(cfg.Duration)
	maxEvents := cfg.MaxEvents
	if maxEvents == 0 {
		maxEvents = DefaultMaxEvents
	}
	for {
		ev, ok := s.next()
		if !ok || ev.at > end {
			break
		}
		if s.events == maxEvents {
			s.res.EventLimited = true
			break
		}
		s.now = ev.at
		s.events++
		s.handle(ev)
	}
	s.finish()
	if s.res.EventLimited {
		return s.res, fmt.Errorf("%w: %d events simulated in the first %v of %v (Config.MaxEvents %d); the run was cut short", ErrEventLimit, s.events, time.Duration(s.now), cfg.Duration, maxEvents)
	}
	return s.res, nil
}

func (s *simulation) churnDelay() int64 {
	return s.after(max(1, nanos(s.rng.ExpFloat64()/s.cfg.ChurnPerHour*float64(time.Hour))))
}

// after returns the time d after now, saturated at the end of time: an
// event that late never happens within the run.
func (s *simulation) after(d int64) int64 { return addSat(s.now, d) }

// addSat returns a+b for b ≥ 0, saturated at MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// nanos converts a non-negative number of nanoseconds to int64, saturating
// at MaxInt64 (a conversion of a larger float would be undefined).
func nanos(f float64) int64 {
	if !(f < math.MaxInt64) {
		return math.MaxInt64
	}
	return int64(max(f, 0))
}

func (s *simulation) reachable(z *zone, n remirror.NodeID) bool {
	return !z.down[n] && !(s.faulty && z.isolated[n])
}

func (s *simulation) handle(ev event) {
	switch ev.kind {
	case evTick:
		z := s.zones[ev.zone]
		if z.tickAt == ev.at {
			z.tickAt = -1
		}
		acts, err := z.e.Tick(time.Unix(0, s.now))
		s.carry(int(ev.zone), acts, err)
	case evAnswer:
		s.answer(ev)
	case evAuthServe:
		s.serve()
	case evElectTimeout:
		r := &s.reqs[ev.req]
		if !r.answered {
			r.answered = true
			s.releaseSlot(r)
			s.step(r.zone, remirror.Input{Kind: remirror.ElectionFailed, Volume: r.vol, Attempt: r.attempt})
		}
		s.unref(ev.req)
	case evElectReply:
		r := &s.reqs[ev.req]
		if !r.answered {
			r.answered = true
			s.releaseSlot(r)
			in := remirror.Input{Kind: remirror.Elected, Volume: r.vol, Node: r.node, Attempt: r.attempt, Token: fence.Token(ev.attempt)}
			if !ev.ok {
				in = remirror.Input{Kind: remirror.ElectionFailed, Volume: r.vol, Attempt: r.attempt, Token: fence.Token(ev.attempt)}
			}
			s.step(r.zone, in)
		}
		s.unref(ev.req)
	case evFaultStart:
		s.faultStart()
	case evFaultEnd:
		s.faulty = false
	case evRestart:
		z := s.zones[ev.zone]
		z.down[ev.node] = false
		s.step(int(ev.zone), remirror.Input{Kind: remirror.NodeUp, Node: remirror.NodeID(ev.node)})
	case evChurn:
		z := s.zones[ev.zone]
		n := s.rng.IntN(s.cfg.NodesPerZone)
		if !z.down[n] {
			s.crash(int(ev.zone), remirror.NodeID(n))
		}
		s.push(event{at: s.churnDelay(), kind: evChurn, zone: ev.zone})
	case evMinute:
		s.sample()
		s.push(event{at: s.now + int64(time.Minute), kind: evMinute})
	}
}

func (s *simulation) faultStart() {
	s.faulty = true
	z := s.zones[0]
	k := int(math.Round(s.cfg.IsolatedFraction * float64(s.cfg.NodesPerZone)))
	for _, n := range s.rng.Perm(s.cfg.NodesPerZone)[:k] {
		z.isolated[n] = true
	}
	s.res.IsolatedFraction = float64(k) / float64(s.cfg.NodesPerZone*s.cfg.Zones)
	for v := range s.cfg.VolumesPerZone {
		a, b, ok := z.e.Replicas(remirror.VolumeID(v))
		if !ok || !(z.isolated[a] || z.isolated[b]) {
			continue
		}
		from := a
		if z.isolated[a] && !z.isolated[b] {
			from = b
		}
		s.step(0, remirror.Input{Kind: remirror.PeerLost, Volume: remirror.VolumeID(v), Node: from})
	}
}

func (s *simulation) crash(zi int, n remirror.NodeID) {
	z := s.zones[zi]
	z.down[n] = true
	s.crashes++
	z.crashed[n] = uint32(s.crashes)
	s.step(zi, remirror.Input{Kind: remirror.NodeFailed, Node: n})
	s.later(fifoRestart, event{at: s.after(int64(s.cfg.RestartAfter)), kind: evRestart, zone: uint8(zi), node: int32(n)})
}

// step feeds one input to a zone's engine. Refusals are expected (a late
// answer after a crash aborted the request) and change nothing.
func (s *simulation) step(zi int, in remirror.Input) {
	acts, err := s.zones[zi].e.Step(time.Unix(0, s.now), in)
	s.carry(zi, acts, err)
}

func (s *simulation) carry(zi int, acts []remirror.Action, err error) {
	if err != nil {
		return
	}
	z := s.zones[zi]
	for _, a := range acts {
		switch a.Kind {
		case remirror.Probe:
			ok := s.reachable(z, a.From) && s.reachable(z, a.To)
			s.later(fifoLatency, event{at: s.after(int64(s.cfg.Latency)), kind: evAnswer, zone: uint8(zi), input: remirror.ProbeResult, ok: ok, vol: int32(a.Volume), node: int32(a.To), attempt: a.Attempt})
		case remirror.Query:
			z.open[a.From]++
			s.later(fifoLatency, event{at: s.after(int64(s.cfg.Latency)), kind: evAnswer, zone: uint8(zi), input: remirror.SearchResult, vol: int32(a.Volume), node: int32(a.To), attempt: a.Attempt, req: int32(a.From), crashes: uint32(s.crashes)})
		case remirror.Copy:
			d := nanos(float64(s.cfg.CopyTime) * (0.5 + s.rng.Float64()))
			s.push(event{at: s.after(d), kind: evAnswer, zone: uint8(zi), input: remirror.CopyResult, vol: int32(a.Volume), node: int32(a.To), attempt: a.Attempt, req: int32(a.From)})
		case remirror.Release:
			z.holders[a.Volume]--
			if z.holders[a.Volume] == 0 {
				z.zeroLive++
			}
		case remirror.Elect:
			s.elect(zi, a)
		}
	}
	if t, ok := z.e.NextTick(); ok {
		if at := t.UnixNano(); z.tickAt < 0 || at < z.tickAt {
			z.tickAt = max(at, s.now)
			s.push(event{at: z.tickAt, kind: evTick, zone: uint8(zi)})
		}
	}
}

func (s *simulation) answer(ev event) {
	zi := int(ev.zone)
	z := s.zones[zi]
	in := remirror.Input{Kind: ev.input, Volume: remirror.VolumeID(ev.vol), Node: remirror.NodeID(ev.node), Attempt: ev.attempt, OK: ev.ok}
	switch ev.input {
	case remirror.SearchResult, remirror.CopyResult:
		from := remirror.NodeID(ev.req)
		in.OK = s.reachable(z, from) && s.reachable(z, in.Node)
		if ev.input == remirror.CopyResult {
			acts, err := z.e.Step(time.Unix(0, s.now), in)
			if err == nil && in.OK {
				z.holders[ev.vol]++
			}
			s.carry(zi, acts, err)
			return
		}
		// If either end crashed while the query was out, the engine
		// abandoned the query then (NodeFailed aborts the re-mirrors from
		// and to the node) and would refuse this answer as a duplicate,
		// changing nothing: skip the call and the error it would build.
		// In the naive storm most answers are such late ones.
		if z.crashed[from] <= ev.crashes && z.crashed[in.Node] <= ev.crashes {
			s.step(zi, in)
		}
		// Closing the search request while others are open: the 2011 race.
		open := z.open[from]
		z.open[from]--
		if p := s.cfg.CrashPerClose * float64(open-1-int32(s.cfg.CrashThreshold)); p > 0 && !z.down[from] && s.rng.Float64() < p {
			s.crash(zi, from)
		}
		return
	}
	s.step(zi, in)
}

// elect sends an election to the authority through the client of the mode.
func (s *simulation) elect(zi int, a remirror.Action) {
	r := request{zone: zi, vol: a.Volume, attempt: a.Attempt, node: a.From, expect: a.Expect, deadline: s.after(s.timeout)}
	if s.part != nil {
		if !s.part.TryAcquire(zi) {
			// Shed at once: the engine backs off.
			s.later(fifoLatency, event{at: s.after(int64(s.cfg.Latency)), kind: evAnswer, zone: uint8(zi), input: remirror.ElectionFailed, vol: int32(a.Volume), attempt: a.Attempt})
			return
		}
		r.holdsSlot = true
	}
	r.refs = 2
	id := s.allocReq(r)
	s.queue = append(s.queue, id)
	s.later(fifoTimeout, event{at: r.deadline, kind: evElectTimeout, req: id})
	if !s.serving {
		s.serving = true
		s.later(fifoServe, event{at: s.after(s.serviceTime()), kind: evAuthServe})
	}
}

func (s *simulation) serviceTime() int64 { return nanos(float64(time.Second) / s.cfg.AuthorityRate) }

// serve completes the election at the head of the authority's queue.
func (s *simulation) serve() {
	for s.qhead < len(s.queue) {
		id := s.queue[s.qhead]
		s.qhead++
		r := &s.reqs[id]
		if s.part != nil && r.answered {
			s.unref(id)
			continue // the caller gave up: dropped unserved
		}
		gens, holder := s.gens[r.zone], s.holder[r.zone]
		ok := true
		tok := gens[r.vol]
		switch {
		case tok == r.expect:
			tok++
			gens[r.vol], holder[r.vol] = tok, r.node
		case tok > r.expect && holder[r.vol] == r.node:
		default:
			ok = false
		}
		if !r.answered {
			r.refs++
			s.later(fifoLatency, event{at: s.after(int64(s.cfg.Latency)), kind: evElectReply, req: id, ok: ok, attempt: uint32(tok)})
		}
		s.unref(id)
		break
	}
	if s.qhead > 1024 && s.qhead*2 > len(s.queue) {
		s.queue = append(s.queue[:0], s.queue[s.qhead:]...)
		s.qhead = 0
	}
	if s.qhead < len(s.queue) {
		s.later(fifoServe, event{at: s.after(s.serviceTime()), kind: evAuthServe})
	} else {
		s.serving = false
	}
}

func (s *simulation) releaseSlot(r *request) {
	if r.holdsSlot {
		r.holdsSlot = false
		s.part.Release(r.zone)
	}
}

func (s *simulation) allocReq(r request) int32 {
	if n := len(s.free); n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		s.reqs[id] = r
		return id
	}
	s.reqs = append(s.reqs, r)
	return int32(len(s.reqs) - 1)
}

// unref recycles a request once nothing refers to it: it has left the
// authority's queue, its timeout has fired, and its reply was delivered.
func (s *simulation) unref(id int32) {
	s.reqs[id].refs--
	if s.reqs[id].refs == 0 {
		s.free = append(s.free, id)
	}
}

func (s *simulation) sample() {
	minute := int(s.now / int64(time.Minute))
	var region Minute
	region.Minute = minute
	var stuck, volumes int
	var free, capacity int64
	for zi, z := range s.zones {
		st := z.e.Stats()
		m := Minute{Minute: minute, Searches: st.Queries - z.queries, AuthorityCalls: st.Elections - z.elects, ZeroLive: z.zeroLive}
		z.queries, z.elects = st.Queries, st.Elections
		m.Stuck = float64(st.Stuck) / float64(max(st.Volumes, 1))
		zcap := int64(z.e.Nodes()) * capOf(z.e) // validate bounds it
		m.Free = float64(st.Free) / float64(zcap)
		s.res.Zones[zi] = append(s.res.Zones[zi], m)
		stuck += st.Stuck
		volumes += st.Volumes
		free += st.Free
		capacity += zcap
		region.Searches += m.Searches
		region.AuthorityCalls += m.AuthorityCalls
		region.ZeroLive += m.ZeroLive
		if zi == 0 {
			s.res.PeakStuckZone = math.Max(s.res.PeakStuckZone, m.Stuck)
		}
	}
	region.Stuck = float64(stuck) / float64(max(volumes, 1))
	region.Free = float64(free) / float64(capacity)
	s.res.Region = append(s.res.Region, region)
	s.res.Searches += region.Searches
	s.res.AuthorityCalls += region.AuthorityCalls
	s.res.PeakStuck = math.Max(s.res.PeakStuck, region.Stuck)
	s.res.MaxZeroLive = max(s.res.MaxZeroLive, region.ZeroLive)
	if s.res.Zones[0][len(s.res.Zones[0])-1].Stuck > 0 {
		s.lastBad = s.now
	}
}

func capOf(e *remirror.Engine) int64 {
	c, _, _, _, _ := e.NodeStatus(0)
	return c
}

func (s *simulation) finish() {
	s.res.Crashes = s.crashes
	s.res.Events = s.events
	healed := addSat(int64(s.cfg.FaultStart), int64(s.cfg.FaultDuration))
	if s.res.EventLimited || len(s.res.Zones[0]) == 0 {
		s.res.HealthyAfter = -1
		return
	}
	last := s.res.Zones[0][len(s.res.Zones[0])-1]
	switch {
	case last.Stuck > 0:
		s.res.HealthyAfter = -1
	case s.lastBad < healed:
		s.res.HealthyAfter = 0
	default:
		// The first minute after lastBad is the first clean sample.
		s.res.HealthyAfter = time.Duration(s.lastBad + int64(time.Minute) - healed)
	}
}

// The events that come a fixed delay after the moment they are scheduled
// (a message's answer, an election's timeout, a crashed node's restart, the
// authority's next service) are scheduled in time order, so each kind is
// kept in a FIFO instead of the heap; next merges the FIFOs and the heap
// by time then insertion, the order a single heap gives. In the naive
// storm nearly every event is a search answer, and a FIFO costs it O(1)
// with sequential memory access instead of a heap's O(log n) cache misses.
const (
	fifoLatency = iota
	fifoTimeout
	fifoRestart
	fifoServe
	numFIFOs
)

// fifo is a ring buffer of events in (at, seq) order.
type fifo struct {
	buf        []event // len is zero or a power of two
	head, size int
}

func (q *fifo) push(ev event) {
	if q.size == len(q.buf) {
		grown := make([]event, max(64, 2*len(q.buf)))
		for i := range q.size {
			grown[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.size)&(len(q.buf)-1)] = ev
	q.size++
}

func (q *fifo) front() *event { return &q.buf[q.head] }

func (q *fifo) back() *event { return &q.buf[(q.head+q.size-1)&(len(q.buf)-1)] }

func (q *fifo) pop() event {
	ev := q.buf[q.head]
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.size--
	return ev
}

// later schedules ev in FIFO q, or in the heap if it would come before
// the last event of q (which a fixed delay never does).
func (s *simulation) later(q int, ev event) {
	f := &s.fifos[q]
	if f.size > 0 && ev.at < f.back().at {
		s.push(ev)
		return
	}
	s.seq++
	ev.seq = s.seq
	f.push(ev)
}

// next removes and returns the earliest event, and false if none is left.
func (s *simulation) next() (event, bool) {
	var best *event
	from := -1
	if len(s.heap) > 0 {
		best = &s.heap[0]
	}
	for i := range s.fifos {
		f := &s.fifos[i]
		if f.size > 0 && (best == nil || less(f.front(), best)) {
			best, from = f.front(), i
		}
	}
	switch {
	case best == nil:
		return event{}, false
	case from < 0:
		return s.pop(), true
	}
	return s.fifos[from].pop(), true
}

func (s *simulation) push(ev event) {
	s.seq++
	ev.seq = s.seq
	s.heap = append(s.heap, ev)
	h := s.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !less(&ev, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = ev
}

func less(a, b *event) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

func (s *simulation) pop() event {
	h := s.heap
	top := h[0]
	last := h[len(h)-1]
	h = h[:len(h)-1]
	s.heap = h
	if len(h) == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= len(h) {
			break
		}
		best := c
		for j := c + 1; j < c+4 && j < len(h); j++ {
			if less(&h[j], &h[best]) {
				best = j
			}
		}
		if !less(&h[best], &last) {
			break
		}
		h[i] = h[best]
		i = best
	}
	h[i] = last
	return top
}
