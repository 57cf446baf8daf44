package ebssim

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/examples/internal/textfmt"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/remirror"
	"github.com/stormguard/stormguard/shed"
)

// ErrInvalidConfig is matched by every error Run returns for a bad Config.
var ErrInvalidConfig = errors.New("ebssim: invalid config")

// Limits of Config.
const (
	MinVolumes = 3_000
	MaxVolumes = 1_200_000
	MinHours   = 1
	MaxHours   = 96
)

// Mode selects a run.
type Mode uint8

const (
	// Naive is 2011: no reconnect, immediate blind search retried every
	// minute in lockstep, one regional control-plane pool with long
	// timeouts, and the operators' actions of the day.
	Naive Mode = iota
	// Guarded is remirror's engine on its defaults (no reserve: the cluster
	// is as full as 2011's) and the control plane behind shed, no operator.
	Guarded
)

func (m Mode) String() string {
	if m == Naive {
		return "naive"
	}
	return "guarded"
}

// Config is one scenario.
type Config struct {
	Seed    uint64
	Volumes int // in the region, over the three zones
	Hours   int
	// Progress, if not nil, is called with the fraction of simulated time
	// done, at most every simulated hour.
	Progress func(mode Mode, done float64)
}

// Validate reports a bad field with the allowed range.
func (c Config) Validate() error {
	return errors.Join(
		textfmt.OutOfRange(ErrInvalidConfig, "volumes", c.Volumes, MinVolumes, MaxVolumes),
		textfmt.OutOfRange(ErrInvalidConfig, "hours", c.Hours, MinHours, MaxHours),
	)
}

// NodesPerZone returns the nodes of each cluster for c.
// Below MinNodesPerZone nodes (60,000 volumes), where one node is no longer
// a small fraction of its cluster, the race fails a fraction of a node
// instead of a whole one (see Run).
func (c Config) NodesPerZone() int { return max(8, c.Volumes/Zones/VolumesPerNode) }

// Minute is one simulated minute: the state at its end and the counts
// during it. Zone arrays are indexed like ZoneNames.
type Minute struct {
	Minute   int            `json:"minute"`
	StuckPct [Zones]float64 `json:"stuck_pct"`
	// Stuck volumes of the affected zone by cause, in % of its volumes:
	// searching for room (or copying) after the network fault or the
	// background, searching after a node crashed of the race, and waiting
	// for the authority (the control plane) to elect a primary.
	StuckNoSpacePct   float64        `json:"stuck_no_space_pct"`
	StuckRacePct      float64        `json:"stuck_race_crash_pct"`
	StuckAuthorityPct float64        `json:"stuck_waiting_for_authority_pct"`
	SearchMessages    int64          `json:"search_messages"`
	Negotiations      int64          `json:"negotiations"`
	APICalls          [Zones]int64   `json:"api_calls"`
	APIOK             [Zones]int64   `json:"api_ok"`
	APISuccessPct     [Zones]float64 `json:"api_success_pct"`
	APIP99Ms          [Zones]float64 `json:"api_p99_ms"`
	FreeAffectedPct   float64        `json:"free_capacity_affected_pct"`
	NodeCrashes       int            `json:"node_crashes"`
	NoLiveReplica     int            `json:"volumes_without_live_replica"`
}

// Result is one run.
type Result struct {
	Mode         Mode
	NodesPerZone int
	ZoneVolumes  int
	Isolated     int
	Timeline     []Minute
	Crashes      int
	LastCrash    time.Duration // -1 if none
	Searches     int64
	Negotiations int64
	Events       int64
	ParkedAt1130 int
	NewNodes     int
	HealAt       time.Duration
	// HealthyAfter is how long after the heal the affected zone had no
	// volume left stuck of the fault or the race, to the event; -1 if not
	// within the run.
	HealthyAfter time.Duration
	FinalNoLive  int
	// CutOffPct is the share of the affected zone's volumes stuck at the
	// end of the isolation, which lasts less than a minute.
	CutOffPct float64
}

// call kinds
const (
	kDescribe uint8 = iota
	kAttach
	kCreate
	kElect
	kNegotiate
)

// event kinds
const (
	evTick uint8 = iota + 1
	evAnswer
	evFaultStart
	evFaultEnd
	evMinute
	evAPI
	evBackground
	evCPDone
	evCPTimeout
	evCPReply
	evOperator
	evReplay
	evNegotiate
)

const (
	causeNone       uint8 = iota
	causeNet              // the network fault
	causeRace             // a node crashed of the race
	causeBackground       // the background re-mirroring
	numCauses
)

type zone struct {
	e          *remirror.Engine
	tickAt     int64
	isolated   []bool
	down       []bool // crashed of the race: down for good
	newNode    []bool
	busy       []bool // a new node taking a replayed re-mirror
	open       []int32
	primary    []remirror.NodeID // initial primaries, for the fence store
	seeded     []bool
	cause      []uint8
	electing   []bool
	since      []int64        // when each stuck volume lost its mirror
	stuckBy    [numCauses]int // by cause, volumes not healthy (zone 0 only)
	elBy       [numCauses]int // of those, electing
	canCreate  bool
	noLive     int
	queries    int64
	calls      int64
	ok         int64
	hist       [nBuckets]int32
	copyTarget []remirror.NodeID
}

type call struct {
	arrive, deadline int64
	zone             uint8
	kind             uint8
	vol              int32
	attempt          uint32
	node             int32
	expect           fence.Token
	done             bool
	refs             int8
}

type simulation struct {
	cfg    Config
	mode   Mode
	rng    *rand.Rand
	now    int64
	q      events
	zones  [Zones]*zone
	faulty bool
	res    *Result
	calls  []call
	free   []int32
	// naive pool
	busy  int
	queue []int32
	qhead int
	// guarded pool
	sched [Zones]*shed.Scheduler[int32]
	// store is the authority's fence store: every volume's generation.
	store *fence.Memory
	// operators
	parkedQ   []event // zone 0 queries held since BlockFutile
	parkedE   []int32 // zone 0 elections held since CutOff (call ids)
	replayPer int
	scale     float64 // RefZoneVolumes / zone volumes
	// racePerClose is RacePerClose, and MinNodesPerZone/nodes times that in
	// a smaller cluster, where the race fails a fraction of a node.
	racePerClose float64
	partial      float64 // the fraction of a node the race fails
	crashes      int
	lastCrash    int64
	searches     int64
	negs         int64
	// healedAt is when the affected zone last had no volume left stuck of
	// the network fault or the race; -1 if it never had one.
	healedAt int64
	events   int64
	opStage  int
	nextProg int64
}

func (s *simulation) at(d time.Duration) bool { return s.now >= int64(d) }

// Run simulates cfg in mode.
func Run(cfg Config, mode Mode) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &simulation{cfg: cfg, mode: mode, rng: rand.New(rand.NewPCG(cfg.Seed, 0xeb52011)),
		res: &Result{Mode: mode, LastCrash: -1, HealthyAfter: -1}}
	nodes := cfg.NodesPerZone()
	vz := cfg.Volumes / Zones
	s.res.NodesPerZone, s.res.ZoneVolumes = nodes, vz
	s.scale = float64(RefZoneVolumes) / float64(vz)
	s.partial = min(1, float64(nodes)/MinNodesPerZone)
	s.racePerClose = RacePerClose / s.partial
	store, err := fence.NewMemory(fence.MemoryConfig{MaxKeys: cfg.Volumes + Zones})
	if err != nil {
		return nil, err
	}
	s.store = store
	settings := remirror.Settings{NoReserve: true}
	if mode == Naive {
		settings = remirror.Settings{
			NoReconnect: true, NoHints: true, NoReserve: true,
			SearchRate: remirror.Unlimited, MaxPerNode: remirror.Unlimited,
			MaxPerCluster: remirror.Unlimited, MaxElections: remirror.Unlimited,
			Search: backoff.Policy{Base: time.Minute, Cap: time.Minute, Jitter: backoff.JitterNone},
			Elect:  backoff.Policy{Base: time.Second, Cap: time.Second, Jitter: backoff.JitterNone},
		}
	} else {
		for zi := range Zones {
			sc, err := shed.NewScheduler[int32](shed.QueueConfig{
				Workers: Threads / Zones, MaxQueue: GuardedQueue, MaxWait: GuardedMaxWait,
			}, s.dropped)
			if err != nil {
				return nil, err
			}
			s.sched[zi] = sc
		}
	}
	for zi := range Zones {
		z, err := s.layout(zi, nodes, vz, settings)
		if err != nil {
			return nil, err
		}
		s.zones[zi] = z
		s.q.push(event{at: s.expDelay(APIPerZone), kind: evAPI, zone: uint8(zi)})
		s.q.push(event{at: s.expDelay(BackgroundLossPerHour * float64(vz) / 3600), kind: evBackground, zone: uint8(zi)})
	}
	s.q.push(event{at: int64(FaultStart), kind: evFaultStart})
	s.q.push(event{at: int64(FaultStart + FaultDuration), kind: evFaultEnd})
	s.res.HealAt = FaultStart + FaultDuration
	// A minute is sampled just before it ends, so that what happens at
	// the stroke of the next minute belongs to the next.
	s.q.push(event{at: int64(time.Minute) - 1, kind: evMinute})
	if mode == Naive {
		for _, t := range []time.Duration{DisableCreate, CutOff, BlockFutile, AddCapacity, BacklogStart, ControlPlaneBack, APIBack} {
			s.q.push(event{at: int64(t), kind: evOperator})
		}
	}
	s.healedAt = -1
	end := int64(time.Duration(cfg.Hours) * time.Hour)
	for {
		ev, ok := s.q.next()
		if !ok || ev.at > end {
			break
		}
		s.now = ev.at
		s.events++
		s.handle(ev)
	}
	s.finish()
	return s.res, nil
}

func (s *simulation) expDelay(rate float64) int64 {
	return s.now + max(1, int64(s.rng.ExpFloat64()/rate*float64(time.Second)))
}

// layout builds zone zi's cluster: the same for both modes of a seed.
func (s *simulation) layout(zi, nodes, vols int, settings remirror.Settings) (*zone, error) {
	lr := rand.New(rand.NewPCG(s.cfg.Seed, uint64(zi)+1))
	e, err := remirror.NewEngine(settings, rand.New(rand.NewPCG(s.cfg.Seed, 0x100+uint64(zi))))
	if err != nil {
		return nil, err
	}
	// A deck of replica slots, each node the same number of times, shuffled
	// and dealt two at a time.
	deck := make([]int32, 2*vols)
	for i := range deck {
		deck[i] = int32(i % nodes)
	}
	lr.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
	for i := 0; i < len(deck); i += 2 {
		if deck[i] == deck[i+1] {
			for j := i + 2; ; j = (j + 1) % len(deck) {
				if deck[j] != deck[i] && (j/2 != i/2) && deck[j^1] != deck[i+1] {
					deck[i+1], deck[j] = deck[j], deck[i+1]
					break
				}
			}
		}
	}
	used := make([]int64, nodes)
	for _, n := range deck {
		used[n]++
	}
	extra := make([]int64, nodes)
	for range int(math.Round(FreeShare * float64(vols))) {
		extra[lr.IntN(nodes)]++
	}
	for n := range nodes {
		if _, err := e.AddNode(used[n] + extra[n]); err != nil {
			return nil, err
		}
	}
	z := &zone{e: e, tickAt: -1, isolated: make([]bool, nodes), down: make([]bool, nodes),
		newNode: make([]bool, nodes), busy: make([]bool, nodes), open: make([]int32, nodes),
		primary: make([]remirror.NodeID, vols), seeded: make([]bool, vols),
		cause: make([]uint8, vols), since: make([]int64, vols), electing: make([]bool, vols), canCreate: true,
		copyTarget: make([]remirror.NodeID, vols)}
	for v := range vols {
		a, b := remirror.NodeID(deck[2*v]), remirror.NodeID(deck[2*v+1])
		if _, err := e.AddVolume(1, a, b, 1); err != nil {
			return nil, err
		}
		z.primary[v] = a
	}
	return z, nil
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
	case evFaultStart:
		s.faultStart()
	case evFaultEnd:
		s.faulty = false
		z := s.zones[0]
		s.res.CutOffPct = 100 * float64(z.e.Stats().Stuck) / float64(s.res.ZoneVolumes)
		for n, iso := range z.isolated {
			if iso && !z.down[n] {
				s.step(0, remirror.Input{Kind: remirror.NodeUp, Node: remirror.NodeID(n)})
			}
		}
	case evMinute:
		s.sample()
		s.q.push(event{at: s.now + int64(time.Minute), kind: evMinute})
	case evAPI:
		s.apiCall(int(ev.zone))
		s.q.push(event{at: s.expDelay(APIPerZone), kind: evAPI, zone: ev.zone})
	case evBackground:
		s.background(int(ev.zone))
		s.q.push(event{at: s.expDelay(BackgroundLossPerHour * float64(s.res.ZoneVolumes) / 3600), kind: evBackground, zone: ev.zone})
	case evCPDone:
		s.cpDone(ev)
	case evCPTimeout:
		c := &s.calls[ev.aux]
		if !c.done {
			s.finishCall(ev.aux, false)
		}
		s.unref(ev.aux)
	case evCPReply:
		s.reply(ev)
	case evOperator:
		s.operator()
	case evReplay:
		s.replay()
	case evNegotiate:
		s.submit(call{zone: 0, kind: kNegotiate, vol: -1})
	}
	if s.cfg.Progress != nil && s.now >= s.nextProg {
		s.nextProg = s.now + int64(time.Hour)
		s.cfg.Progress(s.mode, float64(s.now)/float64(time.Duration(s.cfg.Hours)*time.Hour))
	}
}

func (s *simulation) faultStart() {
	s.faulty = true
	z := s.zones[0]
	nodes := len(z.isolated)
	k := int(math.Round(IsolatedFraction * float64(nodes)))
	s.res.Isolated = k
	for _, n := range s.rng.Perm(nodes)[:k] {
		z.isolated[n] = true
	}
	for v := range z.cause {
		a, b, _ := z.e.Replicas(remirror.VolumeID(v))
		if z.isolated[a] || z.isolated[b] {
			s.markStuck(z, v, causeNet)
		}
	}
	for n, iso := range z.isolated {
		if iso {
			s.step(0, remirror.Input{Kind: remirror.NodeFailed, Node: remirror.NodeID(n)})
		}
	}
}

func (s *simulation) markStuck(z *zone, v int, cause uint8) {
	if st, _ := z.e.VolumeState(remirror.VolumeID(v)); st != remirror.Healthy {
		return
	}
	z.cause[v] = cause
	z.since[v] = s.now
	z.stuckBy[cause]++
}

// crash fails node n of zone zi for good: the race.
func (s *simulation) crash(zi int, n remirror.NodeID) {
	z := s.zones[zi]
	z.down[n] = true
	s.crashes++
	s.lastCrash = s.now
	var hit []int
	for v := range z.cause {
		a, b, _ := z.e.Replicas(remirror.VolumeID(v))
		if a == n || b == n {
			s.markStuck(z, v, causeRace)
			hit = append(hit, v)
		}
	}
	s.step(zi, remirror.Input{Kind: remirror.NodeFailed, Node: n})
	z.noLive = 0
	for v := range z.cause {
		a, b, _ := z.e.Replicas(remirror.VolumeID(v))
		if z.down[a] && z.down[b] {
			z.noLive++
		}
	}
	for _, v := range hit {
		if z.electing[v] {
			if st, _ := z.e.VolumeState(remirror.VolumeID(v)); st != remirror.Electing {
				z.electing[v] = false
				z.elBy[z.cause[v]]--
			}
		}
	}
}

// crashPart is the race in a cluster of fewer than MinNodesPerZone nodes:
// it fails the replication of a random fraction (nodes/MinNodesPerZone) of
// node n's healthy volumes, which lose their mirror on n, so that one race
// event costs the cluster the same share of volumes at every size.
func (s *simulation) crashPart(zi int, n remirror.NodeID) {
	z := s.zones[zi]
	s.crashes++
	s.lastCrash = s.now
	for v := range z.cause {
		a, b, _ := z.e.Replicas(remirror.VolumeID(v))
		if a != n && b != n {
			continue
		}
		survivor := a
		if a == n {
			survivor = b
		}
		if st, _ := z.e.VolumeState(remirror.VolumeID(v)); st != remirror.Healthy || z.down[survivor] || s.rng.Float64() >= s.partial {
			continue
		}
		s.markStuck(z, v, causeRace)
		s.step(zi, remirror.Input{Kind: remirror.PeerLost, Volume: remirror.VolumeID(v), Node: survivor})
	}
}

func (s *simulation) background(zi int) {
	z := s.zones[zi]
	v := s.rng.IntN(len(z.cause))
	a, b, _ := z.e.Replicas(remirror.VolumeID(v))
	if st, _ := z.e.VolumeState(remirror.VolumeID(v)); st != remirror.Healthy || z.down[a] || z.down[b] {
		return
	}
	s.markStuck(z, v, causeBackground)
	s.step(zi, remirror.Input{Kind: remirror.PeerLost, Volume: remirror.VolumeID(v), Node: a})
}

func (s *simulation) reachable(zi int, n remirror.NodeID) bool {
	z := s.zones[zi]
	return !z.down[n] && !(zi == 0 && s.faulty)
}

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
			ok := s.reachable(zi, a.From) && s.reachable(zi, a.To) && !(zi == 0 && (z.isolated[a.From] || z.isolated[a.To]) && s.faulty)
			s.q.later(fifoLatency, event{at: s.now + int64(Latency), kind: evAnswer, zone: uint8(zi), input: uint8(remirror.ProbeResult), ok: ok, vol: int32(a.Volume), node: int32(a.To), attempt: a.Attempt})
		case remirror.Query:
			s.query(zi, a)
		case remirror.Copy:
			d := int64(float64(CopyTime) * (0.5 + s.rng.Float64()))
			if z.newNode[a.To] && s.mode == Naive {
				d = int64(ReplayCopyTime)
			}
			z.copyTarget[a.Volume] = a.To
			s.q.push(event{at: s.now + d, kind: evAnswer, zone: uint8(zi), input: uint8(remirror.CopyResult), vol: int32(a.Volume), node: int32(a.To), attempt: a.Attempt, aux: int32(a.From)})
		case remirror.Elect:
			if !z.electing[a.Volume] && zi == 0 {
				z.electing[a.Volume] = true
				z.elBy[z.cause[a.Volume]]++
			}
			s.elect(zi, a)
		}
	}
	if t, ok := z.e.NextTick(); ok {
		if at := t.UnixNano(); z.tickAt < 0 || at < z.tickAt {
			z.tickAt = max(at, s.now)
			s.q.push(event{at: z.tickAt, kind: evTick, zone: uint8(zi)})
		}
	}
}

// query carries out a search message, or, once the naive run's operators
// have blocked futile contacts, holds it or refuses it locally.
func (s *simulation) query(zi int, a remirror.Action) {
	z := s.zones[zi]
	ev := event{at: s.now + int64(Latency), kind: evAnswer, zone: uint8(zi), input: uint8(remirror.SearchResult), vol: int32(a.Volume), node: int32(a.To), attempt: a.Attempt, aux: int32(a.From)}
	if s.mode == Naive && zi == 0 && s.at(BlockFutile) && !s.at(ControlPlaneBack) {
		switch {
		case !s.at(AddCapacity):
			s.parkedQ = append(s.parkedQ, ev)
			return
		case !z.newNode[a.To] || z.busy[a.To]:
			ev.ok, ev.aux = false, -1 // refused locally, no message
			s.q.later(fifoLatency, ev)
			return
		}
		z.busy[a.To] = true
	}
	s.searches++
	z.queries++
	z.open[a.From]++
	if zi == 0 && z.cause[a.Volume] != causeNone {
		// A volume that needs a new mirror negotiates with the control
		// plane; the longer its re-mirroring keeps failing, the more the
		// system retries, up to once per attempt after NegotiationRamp.
		k := s.scale * min(1, float64(s.now-z.since[a.Volume])/float64(NegotiationRamp))
		n := int(k)
		if s.rng.Float64() < k-float64(n) {
			n++
		}
		for range n {
			// Spread over the next minute: the negotiations are the
			// instances', not the lockstep nodes'.
			s.q.push(event{at: s.now + 1 + s.rng.Int64N(int64(time.Minute)), kind: evNegotiate})
		}
	}
	s.q.later(fifoLatency, ev)
}

func (s *simulation) answer(ev event) {
	zi := int(ev.zone)
	z := s.zones[zi]
	in := remirror.Input{Kind: remirror.InputKind(ev.input), Volume: remirror.VolumeID(ev.vol), Node: remirror.NodeID(ev.node), Attempt: ev.attempt, OK: ev.ok}
	switch in.Kind {
	case remirror.SearchResult:
		if ev.aux < 0 {
			s.step(zi, in)
			return
		}
		from := remirror.NodeID(ev.aux)
		in.OK = s.reachable(zi, from) && s.reachable(zi, in.Node)
		if z.busy[in.Node] && !in.OK {
			z.busy[in.Node] = false
		}
		s.step(zi, in)
		if z.busy[in.Node] {
			if st, _ := z.e.VolumeState(in.Volume); st != remirror.Copying {
				z.busy[in.Node] = false
			}
		}
		open := z.open[from]
		z.open[from]--
		if p := s.racePerClose * float64(open-1); p > 0 && !z.down[from] && s.rng.Float64() < p {
			if s.partial < 1 {
				s.crashPart(zi, from)
			} else {
				s.crash(zi, from)
			}
		}
	case remirror.CopyResult:
		from := remirror.NodeID(ev.aux)
		in.OK = s.reachable(zi, from) && s.reachable(zi, in.Node)
		z.busy[in.Node] = false
		s.step(zi, in)
	default:
		s.step(zi, in)
	}
}

// elect sends an election to the control plane, or holds it while the
// naive run's operators keep the affected cluster cut off.
func (s *simulation) elect(zi int, a remirror.Action) {
	c := call{zone: uint8(zi), kind: kElect, vol: int32(a.Volume), attempt: a.Attempt, node: int32(a.From), expect: a.Expect}
	if s.mode == Naive && zi == 0 && s.at(CutOff) && !s.at(ControlPlaneBack) {
		id := s.alloc(c)
		z := s.zones[0]
		x, y, _ := z.e.Replicas(a.Volume)
		if s.at(AddCapacity) && (z.newNode[x] || z.newNode[y]) {
			// The negotiation throttle lets the new servers' volumes through.
			s.serveElect(id)
			return
		}
		s.parkedE = append(s.parkedE, id)
		return
	}
	s.submit(c)
}

// serveElect answers an election from the authority directly (the
// operators' throttled path, outside the regional pool).
func (s *simulation) serveElect(id int32) {
	ok, tok := s.authority(&s.calls[id])
	s.calls[id].done = true
	s.calls[id].refs = 1
	s.q.later(fifoLatency, event{at: s.now + int64(Latency), kind: evCPReply, aux: id, ok: ok, attempt: uint32(tok)})
}

func (s *simulation) operator() {
	z := s.zones[0]
	switch {
	case s.now == int64(AddCapacity):
		k := int(math.Ceil(NewCapacityShare * float64(s.res.NodesPerZone)))
		s.res.NewNodes = k
		for range k {
			if _, err := z.e.AddNode(VolumesPerNode * 2); err != nil {
				panic(err)
			}
			z.isolated = append(z.isolated, false)
			z.down = append(z.down, false)
			z.newNode = append(z.newNode, true)
			z.busy = append(z.busy, false)
			z.open = append(z.open, 0)
		}
		held := s.parkedQ
		s.parkedQ = nil
		for _, ev := range held {
			ev.at, ev.ok, ev.aux = s.now+int64(Latency), false, -1
			s.q.later(fifoLatency, ev)
		}
	case s.now == int64(BacklogStart):
		s.res.ParkedAt1130 = len(s.parkedE)
		s.replayPer = max(1, int(math.Ceil(float64(len(s.parkedE))/float64((ControlPlaneBack-BacklogStart)/time.Minute))))
		s.q.push(event{at: s.now, kind: evReplay})
	case s.now == int64(ControlPlaneBack):
		held := s.parkedE
		s.parkedE = nil
		for _, id := range held {
			s.serveElect(id)
		}
		held2 := s.parkedQ
		s.parkedQ = nil
		for _, ev := range held2 {
			ev.at, ev.ok, ev.aux = s.now+int64(Latency), false, -1
			s.q.later(fifoLatency, ev)
		}
	}
}

// replay releases the held elections at the operators' pace.
func (s *simulation) replay() {
	if s.at(ControlPlaneBack) {
		return
	}
	n := min(s.replayPer, len(s.parkedE))
	for _, id := range s.parkedE[:n] {
		s.serveElect(id)
	}
	s.parkedE = s.parkedE[n:]
	s.q.push(event{at: s.now + int64(time.Minute), kind: evReplay})
}

// apiCall makes one API call from zone zi.
func (s *simulation) apiCall(zi int) {
	k := kDescribe
	switch r := s.rng.Float64(); {
	case r < CreateShare:
		k = kCreate
	case r < CreateShare+AttachShare:
		k = kAttach
	}
	s.submit(call{zone: uint8(zi), kind: k, vol: -1})
}

func (s *simulation) alloc(c call) int32 {
	c.arrive = s.now
	if n := len(s.free); n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		s.calls[id] = c
		return id
	}
	s.calls = append(s.calls, c)
	return int32(len(s.calls) - 1)
}

func (s *simulation) unref(id int32) {
	s.calls[id].refs--
	if s.calls[id].refs <= 0 {
		s.free = append(s.free, id)
	}
}

// timeout is how long the caller of c waits.
func (s *simulation) timeout(c *call) int64 {
	switch {
	case s.mode == Guarded:
		return int64(GuardedTimeout)
	case c.kind == kElect || c.kind == kNegotiate:
		return int64(NaiveTimeout)
	}
	return int64(APIClientTimeout)
}

// refusedAtEdge: the naive operators' switches, which answer at once.
func (s *simulation) refusedAtEdge(c *call) bool {
	if s.mode != Naive || c.zone != 0 {
		return false
	}
	if s.at(CutOff) && !s.at(APIBack) && c.kind != kElect {
		return true
	}
	return c.kind == kCreate && s.at(DisableCreate) && !s.at(APIBack)
}

// service returns how long c holds a thread and whether it succeeds.
func (s *simulation) service(c *call) (int64, bool) {
	switch c.kind {
	case kCreate:
		if !s.zones[c.zone].canCreate {
			if s.mode == Naive {
				return int64(CreateHang), false
			}
			return int64(GuardedTimeout), false
		}
		return int64(APIService), true
	case kElect:
		return max(1, int64(float64(ElectService)*s.scale)), true
	case kNegotiate:
		return int64(NegotiationService), true
	}
	return int64(APIService), true
}

// submit sends c to the regional control plane.
func (s *simulation) submit(c call) {
	if c.kind == kNegotiate {
		s.negs++
	}
	id := s.alloc(c)
	cp := &s.calls[id]
	cp.deadline = s.now + s.timeout(cp)
	if s.refusedAtEdge(cp) {
		cp.refs = 0
		s.finishCall(id, false)
		s.free = append(s.free, id)
		return
	}
	cp.refs = 2 // the timeout and the pool
	s.q.later(fifoTimeout, event{at: cp.deadline, kind: evCPTimeout, aux: id})
	if s.mode == Guarded {
		svc, _ := s.service(cp)
		kind, _ := s.sched[c.zone].Push(time.Unix(0, s.now), shed.Item[int32]{Value: id, Deadline: time.Unix(0, cp.deadline), Cost: time.Duration(svc)})
		if kind == shed.Admitted {
			s.start(id)
		}
		return
	}
	if s.busy < Threads {
		s.busy++
		s.start(id)
		return
	}
	s.queue = append(s.queue, id)
}

// dropped is the guarded schedulers' drop function.
func (s *simulation) dropped(it shed.Item[int32], _ shed.Refusal) {
	id := it.Value
	if !s.calls[id].done {
		s.finishCall(id, false)
	}
	s.unref(id)
}

// start runs call id on a thread.
func (s *simulation) start(id int32) {
	c := &s.calls[id]
	svc, _ := s.service(c)
	if s.mode == Naive && s.refusedAtEdge(c) {
		svc = 0
	}
	s.q.push(event{at: s.now + svc, kind: evCPDone, aux: id, zone: c.zone})
}

func (s *simulation) cpDone(ev event) {
	id := ev.aux
	c := &s.calls[id]
	if !c.done {
		_, ok := s.service(c)
		if s.mode == Naive && s.refusedAtEdge(c) {
			ok = false
		}
		if c.kind == kElect {
			okE, tok := s.authority(c)
			c.done = true
			s.record(c, true)
			c.refs++
			s.q.later(fifoLatency, event{at: s.now + int64(Latency), kind: evCPReply, aux: id, ok: okE, attempt: uint32(tok)})
		} else {
			s.finishCall(id, ok)
		}
	}
	s.unref(id)
	// The thread takes the next call.
	if s.mode == Guarded {
		if it, ok := s.sched[ev.zone].Done(time.Unix(0, s.now)); ok {
			s.start(it.Value)
		}
		return
	}
	for s.qhead < len(s.queue) {
		next := s.queue[s.qhead]
		s.qhead++
		// The 2011 server keeps a call queued for its long timeout, whether
		// or not its caller still waits, and serves it on a thread the live
		// calls wait for.
		if s.now-s.calls[next].arrive >= int64(NaiveTimeout) {
			s.unref(next)
			continue
		}
		s.start(next)
		s.compact()
		return
	}
	s.busy--
	s.compact()
}

func (s *simulation) compact() {
	if s.qhead > 4096 && s.qhead*2 > len(s.queue) {
		s.queue = append(s.queue[:0], s.queue[s.qhead:]...)
		s.qhead = 0
	}
}

// authority carries out an election on the region's fence store: a
// compare-and-swap of the volume's generation, checked at the instant of
// the write. Electing the node that already holds a newer generation
// answers with that generation, so a retry after a lost answer converges.
func (s *simulation) authority(c *call) (bool, fence.Token) {
	z := s.zones[c.zone]
	v := remirror.VolumeID(c.vol)
	key := remirror.VolumeKey(ZoneNames[c.zone], v)
	ctx := context.Background()
	if !z.seeded[v] {
		// The volume's first election: its initial primary holds
		// generation 1, as the engine was told.
		z.seeded[v] = true
		if err := s.store.WriteIfNewer(ctx, key, nodeValue(z.primary[v]), 1); err != nil {
			panic(err) // a new key in a store sized for every volume
		}
	}
	next := c.expect + 1
	err := s.store.CompareAndSwap(ctx, key, c.expect, nodeValue(remirror.NodeID(c.node)), next)
	if err == nil {
		return true, next
	}
	var stale *fence.StaleError
	if !errors.As(err, &stale) {
		panic(err)
	}
	if stale.Have > c.expect {
		if val, tok, err := s.store.Load(ctx, key); err == nil && tok == stale.Have && string(val) == string(nodeValue(remirror.NodeID(c.node))) {
			return true, tok
		}
	}
	return false, stale.Have
}

func nodeValue(n remirror.NodeID) []byte {
	return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// finishCall records the outcome of a call; an election that failed is
// reported to its engine.
func (s *simulation) finishCall(id int32, ok bool) {
	c := &s.calls[id]
	c.done = true
	s.record(c, ok)
	if c.kind == kElect {
		s.step(int(c.zone), remirror.Input{Kind: remirror.ElectionFailed, Volume: remirror.VolumeID(c.vol), Attempt: c.attempt})
	}
}

func (s *simulation) reply(ev event) {
	c := &s.calls[ev.aux]
	zi := int(c.zone)
	v := remirror.VolumeID(c.vol)
	in := remirror.Input{Kind: remirror.Elected, Volume: v, Node: remirror.NodeID(c.node), Attempt: c.attempt, Token: fence.Token(ev.attempt)}
	if !ev.ok {
		in = remirror.Input{Kind: remirror.ElectionFailed, Volume: v, Attempt: c.attempt, Token: fence.Token(ev.attempt)}
	}
	s.unref(ev.aux)
	s.step(zi, in)
	z := s.zones[zi]
	if st, _ := z.e.VolumeState(v); st == remirror.Healthy && zi == 0 {
		if z.electing[v] {
			z.electing[v] = false
			z.elBy[z.cause[v]]--
		}
		if c := z.cause[v]; c != causeNone {
			z.stuckBy[c]--
			z.cause[v] = causeNone
			if (c == causeNet || c == causeRace) && z.stuckBy[causeNet]+z.stuckBy[causeRace] == 0 {
				s.healedAt = s.now
			}
		}
	} else if st == remirror.Healthy && z.cause[v] != causeNone {
		z.stuckBy[z.cause[v]]--
		z.cause[v] = causeNone
	}
}

// Latency histogram: buckets of 10% width from 1ms.
const nBuckets = 128

func bucketOf(ns int64) int {
	ms := float64(ns) / 1e6
	if ms <= 1 {
		return 0
	}
	return min(nBuckets-1, int(math.Log(ms)/math.Log(1.1))+1)
}

func bucketMs(b int) float64 { return math.Pow(1.1, float64(b)) }

// record counts an API call's outcome in its zone's minute; elections and
// negotiations are not API calls.
func (s *simulation) record(c *call, ok bool) {
	if c.kind == kElect || c.kind == kNegotiate {
		return
	}
	z := s.zones[c.zone]
	z.calls++
	if ok {
		z.ok++
	}
	z.hist[bucketOf(s.now-c.arrive)]++
}

func (s *simulation) sample() {
	m := Minute{Minute: int((s.now + 1) / int64(time.Minute)), NodeCrashes: s.crashes}
	for zi, z := range s.zones {
		st := z.e.Stats()
		m.StuckPct[zi] = 100 * float64(st.Stuck) / float64(max(st.Volumes, 1))
		m.SearchMessages += z.queries
		z.queries = 0
		m.APICalls[zi], m.APIOK[zi] = z.calls, z.ok
		m.APISuccessPct[zi] = 100
		if z.calls > 0 {
			m.APISuccessPct[zi] = 100 * float64(z.ok) / float64(z.calls)
			target := int32(math.Ceil(0.99 * float64(z.calls)))
			var n int32
			for b, c := range z.hist {
				n += c
				if n >= target {
					m.APIP99Ms[zi] = math.Round(bucketMs(b)*10) / 10
					break
				}
			}
		}
		z.calls, z.ok, z.hist = 0, 0, [nBuckets]int32{}
		capacity := int64(0)
		for n := range z.e.Nodes() {
			c, _, _, _, _ := z.e.NodeStatus(remirror.NodeID(n))
			capacity += c
		}
		free := 100 * float64(st.Free) / float64(capacity)
		// A cluster with less than a quarter of its usual free room left
		// cannot place new volumes: create volume waits for room.
		z.canCreate = free > 25*FreeShare/(2+FreeShare)
		if zi == 0 {
			m.FreeAffectedPct = free
			vz := float64(s.res.ZoneVolumes)
			el := st.ByState[remirror.Electing]
			m.StuckAuthorityPct = 100 * float64(el) / vz
			race := z.stuckBy[causeRace] - z.elBy[causeRace]
			m.StuckRacePct = 100 * float64(max(race, 0)) / vz
			m.StuckNoSpacePct = 100 * float64(max(st.Stuck-el-max(race, 0), 0)) / vz
		}
		m.NoLiveReplica += z.noLive
	}
	m.Negotiations = s.negs
	s.negs = 0
	s.res.Timeline = append(s.res.Timeline, m)
}

func (s *simulation) finish() {
	s.res.Crashes = s.crashes
	if s.crashes > 0 {
		s.res.LastCrash = time.Duration(s.lastCrash)
	}
	for _, m := range s.res.Timeline {
		s.res.Searches += m.SearchMessages
		s.res.Negotiations += m.Negotiations
	}
	s.res.Events = s.events
	heal := int64(s.res.HealAt)
	if z := s.zones[0]; s.now >= heal && z.stuckBy[causeNet]+z.stuckBy[causeRace] == 0 {
		s.res.HealthyAfter = time.Duration(max(0, s.healedAt-heal))
	}
	for _, z := range s.zones {
		s.res.FinalNoLive += z.noLive
	}
}
