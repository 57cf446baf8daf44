package ddbsim

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stormguard/stormguard/shed"
)

// Minute is one row of a run's timeline; the JSON keys are snake_case.
type Minute struct {
	Minute           int     `json:"minute"`
	Clock            string  `json:"clock"`
	DNSNonEmpty      int     `json:"dns_non_empty"`
	DynamoDBOKPct    float64 `json:"dynamodb_success_pct"`
	LeasedPct        float64 `json:"droplets_leased_pct"`
	DWFMAttempts     int     `json:"dwfm_attempts"`
	DWFMTimeouts     int     `json:"dwfm_timeouts"`
	DWFMRequeues     int     `json:"dwfm_requeues"`
	LaunchRequests   int     `json:"launch_requests"`
	LaunchOKPct      float64 `json:"launch_success_pct"`
	PropP50Seconds   float64 `json:"propagation_p50_seconds"`
	PropP99Seconds   float64 `json:"propagation_p99_seconds"`
	NMBacklog        int     `json:"network_manager_backlog"`
	NLBCapacityPct   float64 `json:"nlb_capacity_pct"`
	NLBFlaps         int     `json:"nlb_flaps"`
	NLBZonesFailed   int     `json:"nlb_zones_failed_over"`
	NLBChecksFailing int     `json:"nlb_checks_failing"`
	ConnectionErrors bool    `json:"nlb_connection_errors"`
}

// Result is one mode's run.
type Result struct {
	Mode             Mode
	Config           Config
	Timeline         []Minute
	Events           int64
	DWFMWasted       int64
	PlansPublished   int
	EnactorRefusals  int
	PropagationMaxS  float64
	OutageFrom       time.Duration // DynamoDB unreachable for DWFM and EC2
	OutageTo         time.Duration
	LaunchesPerMin   float64 // launch requests a minute, on average
	NMPerMin         int
	Workers          int
	LeasesLapsedPeak int
	// Velocity is the guarded NLB's velocity control and fail-static judged
	// on this run's health checks: the guarded run's own NLB, and in the
	// naive run the same policy applied to the naive checks, so that it is
	// tested against targets left without network state for hours, which
	// the guarded Network Manager never lets happen.
	Velocity Velocity
}

// Velocity is what the guarded NLB policy did over a run.
type Velocity struct {
	MinPct      float64 // lowest capacity it kept in service, in %
	Removed     int     // targets it took out of service
	FailingPeak int     // most health checks failing in one minute
}

// guardedNLB sets want, the targets to keep in service, from the checks
// that passed and allFail of them failing: fail-static (everything stays)
// when more than FailStatic of them fail, and otherwise failing targets
// removed only down to VelocityFloor of the capacity.
func guardedNLB(pass, want [][]bool, allFail, total int) {
	static := float64(allFail) > FailStatic*float64(total)
	budget := int(float64(total) * (1 - VelocityFloor))
	for z := range pass {
		for i, ok := range pass[z] {
			switch {
			case ok || static:
				want[z][i] = true
			case budget > 0:
				budget--
				want[z][i] = false
			default:
				want[z][i] = true
			}
		}
	}
}

// Clock formats an offset from the start as PDT.
func Clock(d time.Duration) string { return start.Add(d).Add(-7 * time.Hour).Format("Jan 2 15:04") }

type nmItem struct {
	enq    time.Duration
	fresh  bool
	launch int32 // launch minute, or -1
	target int32 // NLB target, or -1
}

// Run simulates one mode.
func Run(cfg Config, mode Mode) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	minutes := cfg.Hours * 60
	end := time.Duration(minutes) * time.Minute
	prog := func(f float64) {
		if cfg.Progress != nil {
			cfg.Progress(mode, f)
		}
	}
	dres, err := runDNS(mode, rand.New(rand.NewPCG(cfg.Seed, 1)), end)
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: mode, Config: cfg, PlansPublished: dres.published, EnactorRefusals: dres.refused,
		Workers: Workers(cfg.Droplets)}
	down := func(t time.Duration) bool {
		if cfg.Scenario == DynamoDBDown && t >= RaceAt && t < DNSRepair {
			return true
		}
		return dres.emptyAt(t)
	}
	// The outage as DWFM and EC2 see it: the first interval DynamoDB is
	// unreachable (at second resolution).
	o1, o2 := time.Duration(-1), time.Duration(-1)
	for t := time.Duration(0); t < end; t += time.Second {
		if down(t) && o1 < 0 {
			o1 = t
		}
		if o1 >= 0 && !down(t) {
			o2 = t
			break
		}
	}
	if o1 >= 0 && o2 < 0 {
		o2 = end
	}
	res.OutageFrom, res.OutageTo = o1, o2
	dw, err := runDWFM(mode, cfg.Droplets, minutes, o1, o2, rand.New(rand.NewPCG(cfg.Seed, 2)), func(f float64) { prog(0.8 * f) })
	if err != nil {
		return nil, err
	}
	res.Events += dw.events
	res.DWFMWasted = dw.wasted
	tl := make([]Minute, minutes)
	for m := range tl {
		tl[m] = Minute{Minute: m, Clock: Clock(time.Duration(m) * time.Minute),
			LeasedPct: 100 * float64(dw.leased[m]) / float64(cfg.Droplets), DWFMAttempts: dw.attempts[m],
			DWFMTimeouts: dw.timeouts[m], DWFMRequeues: dw.requeu[m]}
		res.LeasesLapsedPeak = max(res.LeasesLapsedPeak, cfg.Droplets-dw.leased[m])
		if !dres.emptyAt(time.Duration(m+1)*time.Minute - time.Second) {
			tl[m].DNSNonEmpty = 1
		}
	}
	// Clients: answers cached a minute, empty answers 15 minutes.
	crng := rand.New(rand.NewPCG(cfg.Seed, 3))
	expiry := make([]time.Duration, Clients)
	positive := make([]bool, Clients)
	for i := range expiry {
		expiry[i] = time.Duration(crng.Float64() * float64(PositiveTTL))
		positive[i] = true
	}
	for m := range tl {
		edge := time.Duration(m+1) * time.Minute
		ok := 0
		for i := range expiry {
			for expiry[i] <= edge {
				at := expiry[i]
				if dres.emptyAt(at) {
					positive[i] = false
					expiry[i] = at + NegativeTTL
				} else {
					positive[i] = true
					expiry[i] = at + PositiveTTL
				}
			}
			if positive[i] && !down(edge-time.Second) {
				ok++
			}
		}
		tl[m].DynamoDBOKPct = 100 * float64(ok) / Clients
	}
	// Launches, the Network Manager and the NLB, minute by minute.
	// One launch request a minute per LaunchesPer droplets: the whole part
	// every minute and the fraction as a draw, so that the launches, the
	// Network Manager's capacity and so the minutes it needs for its
	// backlog (a share of the droplets) are proportional to the fleet at
	// every size, not only at whole thousands.
	rate := float64(cfg.Droplets) / LaunchesPer
	L, frac := int(rate), rate-math.Floor(rate)
	lrng := rand.New(rand.NewPCG(cfg.Seed, 5))
	// The NLB's own replacements (1.5 a zone a minute on average) come on
	// top of the launches, so that the Network Manager's headroom is the
	// same share at every size.
	P := int(math.Round(NMCapacity*rate + math.Ceil(3*(NLBChurn*NLBPerZone+0.5))))
	res.LaunchesPerMin, res.NMPerMin = rate, P
	launchOK := make([]int, minutes)
	var fifo []nmItem
	fh := 0
	var outside []nmItem
	oh := 0
	var sched *shed.Scheduler[nmItem]
	var inflight []nmItem
	if mode == Guarded {
		sched, err = shed.NewScheduler[nmItem](shed.QueueConfig{Workers: P, MaxQueue: 2 * P}, func(it shed.Item[nmItem], _ shed.Refusal) {
			x := it.Value
			x.fresh = false // dropped by its deadline: it still needs propagation
			outside = append(outside, x)
		})
		if err != nil {
			return nil, err
		}
	}
	zones := 3
	propagated := make([][]bool, zones)
	inService := make([][]bool, zones)
	nextReplace := make([]int, zones)
	for z := range zones {
		propagated[z] = make([]bool, NLBPerZone)
		inService[z] = make([]bool, NLBPerZone)
		for i := range NLBPerZone {
			propagated[z][i], inService[z][i] = true, true
		}
	}
	velIn0, velWant := make([][]bool, zones), make([][]bool, zones)
	for z := range zones {
		velIn0[z], velWant[z] = make([]bool, NLBPerZone), make([]bool, NLBPerZone)
		for i := range NLBPerZone {
			velIn0[z][i] = true
		}
	}
	res.Velocity.MinPct = 100
	// unprop counts targets without network state; steady says every
	// target was in service after the last check, for both policies. With
	// none unpropagated every check passes (and draws nothing), so a
	// steady NLB stays as it is and the minute's checks are skipped.
	unprop, steady := 0, true
	nrng := rand.New(rand.NewPCG(cfg.Seed, 4))
	var delays []float64
	var freshQ []time.Duration // naive: enqueue times of fresh items waiting, oldest first
	fq := 0
	for m := range tl {
		now := time.Duration(m) * time.Minute
		tick := now + time.Minute
		mid := now + 30*time.Second
		leasedFrac := float64(dw.leased[m]) / float64(cfg.Droplets)
		var arrivals []nmItem
		for range dw.backlogIn[m] {
			arrivals = append(arrivals, nmItem{enq: now, launch: -1, target: -1})
		}
		// Launch requests.
		admit := 1.0
		if mode == Naive && o1 >= 0 && now >= DWFMRestart {
			admit = ThrottleAdmit
			if dw.leased[m] < cfg.Droplets {
				admit = 0 // incoming work throttled until DWFM has every lease
			} else if now >= ThrottlesRelaxed {
				admit = min(1, ThrottleAdmit+(1-ThrottleAdmit)*float64(now-ThrottlesRelaxed)/float64(RelaxFor))
			}
		}
		k := L
		if frac > 0 && lrng.Float64() < frac {
			k++
		}
		tl[m].LaunchRequests = k
		internalAdmit := admit
		if admit > 0 {
			internalAdmit = 1 // internal launches are not subject to the request limit
		}
		for range k {
			if down(mid) || dw.wait[m] > AttemptTimeout || nrng.Float64() >= admit || nrng.Float64() >= leasedFrac {
				continue
			}
			arrivals = append(arrivals, nmItem{enq: now, fresh: true, launch: int32(m), target: -1})
		}
		// NLB targets replaced by new instances (internal launches: no
		// request throttle, but DynamoDB and a leased droplet).
		for z := range zones {
			k := 0
			x := NLBChurn * NLBPerZone
			for x > 0 {
				if nrng.Float64() < min(1, x) {
					k++
				}
				x--
			}
			if nrng.Float64() < 0.5 {
				k++
			}
			for range k {
				if down(mid) || dw.wait[m] > AttemptTimeout || internalAdmit == 0 || nrng.Float64() >= leasedFrac {
					continue
				}
				i := nextReplace[z]
				nextReplace[z] = (i + 1) % NLBPerZone
				if propagated[z][i] {
					unprop++
				}
				propagated[z][i] = false
				arrivals = append(arrivals, nmItem{enq: now, fresh: true, launch: -1, target: int32(z*NLBPerZone + i)})
			}
		}
		delays = delays[:0]
		doneAt := tick
		complete := func(x nmItem) {
			d := (doneAt - x.enq).Seconds()
			if x.target >= 0 {
				if !propagated[x.target/NLBPerZone][x.target%NLBPerZone] {
					unprop--
				}
				propagated[x.target/NLBPerZone][x.target%NLBPerZone] = true
			}
			if x.launch >= 0 || x.target >= 0 {
				if mode == Naive {
					fq++
				}
				delays = append(delays, d)
				res.PropagationMaxS = math.Max(res.PropagationMaxS, d)
			}
			if x.launch >= 0 && doneAt-time.Duration(x.launch)*time.Minute <= ConnectBound {
				launchOK[x.launch]++
			}
		}
		if mode == Naive {
			for _, x := range arrivals {
				if x.fresh {
					freshQ = append(freshQ, x.enq)
				}
			}
			fifo = append(fifo, arrivals...)
			for range P {
				if fh >= len(fifo) {
					break
				}
				complete(fifo[fh])
				fh++
			}
			if fh > 4096 && fh > len(fifo)/2 {
				fifo = append(fifo[:0], fifo[fh:]...)
				fh = 0
			}
			tl[m].NMBacklog = len(fifo) - fh
			if fq > 4096 && fq > len(freshQ)/2 {
				freshQ = append(freshQ[:0], freshQ[fq:]...)
				fq = 0
			}
		} else {
			tnow := start.Add(now)
			for _, x := range arrivals {
				if !x.fresh {
					outside = append(outside, x)
					continue
				}
				it := shed.Item[nmItem]{Value: x, Priority: shed.Critical, Deadline: start.Add(x.enq + NormalProp), Cost: time.Minute}
				if k, _ := sched.Push(tnow, it); k == shed.Admitted {
					inflight = append(inflight, x)
				}
			}
			// The backlog enters only while the queue is short: intake
			// throttled by the size of the waiting queue.
			for oh < len(outside) && sched.Len() < P {
				x := outside[oh]
				oh++
				if k, _ := sched.Push(tnow, shed.Item[nmItem]{Value: x, Priority: shed.Normal, Cost: time.Minute}); k == shed.Admitted {
					inflight = append(inflight, x)
				}
			}
			if oh > 4096 && oh > len(outside)/2 {
				outside = append(outside[:0], outside[oh:]...)
				oh = 0
			}
			// Each worker finishes its item at the end of the minute and
			// takes the next.
			ttick := start.Add(tick)
			var next []nmItem
			for _, x := range inflight {
				complete(x)
				if it, ok := sched.Done(ttick); ok {
					next = append(next, it.Value)
				}
			}
			inflight = next
			tl[m].NMBacklog = len(outside) - oh + sched.Len()
		}
		if len(delays) > 0 {
			slices.Sort(delays)
			tl[m].PropP50Seconds = delays[len(delays)/2]
			tl[m].PropP99Seconds = delays[min(len(delays)-1, len(delays)*99/100)]
		}
		if mode == Naive && fq < len(freshQ) {
			// Fresh launches still waiting count with their age so far.
			tl[m].PropP99Seconds = max(tl[m].PropP99Seconds, (tick - freshQ[fq]).Seconds())
		}
		if unprop == 0 && steady {
			tl[m].NLBCapacityPct = 100
		} else {
			// NLB health checks.
			failing := make([]int, zones)
			total := zones * NLBPerZone
			flaps := 0
			pass := make([][]bool, zones)
			allFail := 0
			for z := range zones {
				pass[z] = make([]bool, NLBPerZone)
				for i := range NLBPerZone {
					pass[z][i] = propagated[z][i] || nrng.Float64() < 0.5
					if !pass[z][i] {
						failing[z]++
					}
				}
				allFail += failing[z]
			}
			tl[m].NLBChecksFailing = allFail
			res.Velocity.FailingPeak = max(res.Velocity.FailingPeak, allFail)
			guardedNLB(pass, velWant, allFail, total)
			velIn := 0
			for z := range zones {
				for i, w := range velWant[z] {
					if velIn0[z][i] && !w {
						res.Velocity.Removed++
					}
					velIn0[z][i] = w
					if w {
						velIn++
					}
				}
			}
			res.Velocity.MinPct = min(res.Velocity.MinPct, 100*float64(velIn)/float64(total))
			failoverOn := !(mode == Naive && o1 >= 0 && now >= FailoverDisabled && now < FailoverEnabled)
			want := make([][]bool, zones)
			for z := range zones {
				want[z] = make([]bool, NLBPerZone)
				copy(want[z], pass[z])
			}
			if !failoverOn {
				for z := range zones {
					for i := range want[z] {
						want[z][i] = true
					}
				}
			} else if mode == Naive {
				// Flapping overloads the checker; overloaded, it fails zones
				// over as wholes (keeping the best one).
				pre := 0
				for z := range zones {
					for i := range NLBPerZone {
						if inService[z][i] && !want[z][i] {
							pre++
						}
					}
				}
				if pre > CheckerFlaps {
					best := 0
					for z := range zones {
						if failing[z] < failing[best] {
							best = z
						}
					}
					for z := range zones {
						if z != best && float64(failing[z]) >= FailoverShare*NLBPerZone {
							tl[m].NLBZonesFailed++
							for i := range want[z] {
								want[z][i] = false
							}
						}
					}
				}
			} else {
				copyRows(want, velWant)
			}
			in := 0
			for z := range zones {
				for i := range NLBPerZone {
					if inService[z][i] && !want[z][i] {
						flaps++
					}
					inService[z][i] = want[z][i]
					if want[z][i] {
						in++
					}
				}
			}
			tl[m].NLBFlaps = flaps
			tl[m].NLBCapacityPct = 100 * float64(in) / float64(total)
			tl[m].ConnectionErrors = float64(in) < NLBNeeded*float64(total)
			steady = in == total && velIn == total
		}
		if m%30 == 0 {
			prog(0.8 + 0.2*float64(m)/float64(minutes))
		}
	}
	for m := range tl {
		if tl[m].LaunchRequests > 0 {
			tl[m].LaunchOKPct = 100 * float64(launchOK[m]) / float64(tl[m].LaunchRequests)
		}
	}
	res.Timeline = tl
	prog(1)
	return res, nil
}

func copyRows(dst, src [][]bool) {
	for i := range src {
		copy(dst[i], src[i])
	}
}
