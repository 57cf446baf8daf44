package ebssim

import "time"

// Summary is what a run is judged by.
type Summary struct {
	// Minutes is the run's length in minutes.
	Minutes              int
	PeakStuckAffectedPct float64
	PeakStuckAffectedAt  int // minute
	PeakStuckOtherPct    float64
	PeakStuckOtherAt     int
	// APISuccessHealthyMinPct is the lowest success of API calls from the
	// healthy zones over any 10 consecutive minutes, and ...At the minute
	// that window ends.
	APISuccessHealthyMinPct float64
	APISuccessHealthyMinAt  int
	// APISuccessHealthyAfterFixPct is the lowest of those 10-minute
	// windows that begin 10 minutes or more after CutOff (the fix of the
	// second brownout), and -1 if the run ends before there is one.
	APISuccessHealthyAfterFixPct float64
	// APIHealthyBelow50Minutes counts the minutes in which less than half
	// the healthy zones' API calls succeeded.
	APIHealthyBelow50Minutes int
	Brownouts                []Window // runs of such minutes, merged across gaps of under 10 minutes
	SearchMessages           int64
	NodeCrashes              int
	NoLiveReplicaMax         int
	HealthyAfterHeal         time.Duration // -1: not within the run
	// Recovery checkpoints, in minutes from the start; -1 if never: the
	// minute after the last race crash, and the first minutes after the
	// affected zone's peak at which at most PostmortemLeft1 and
	// PostmortemLeft2 percent of it is stuck.
	DegradationStopped int // the last minute a node crashed of the race
	Below22            int
	Below104           int
	UnrecoverablePct   float64
	// FinalStuckPct is the affected zone's stuck share in the run's last
	// minute.
	FinalStuckPct float64
	// StuckAt1130 is the affected zone's stuck share at 11:30, by cause;
	// all zero, and At1130 false, if the run ends before 11:30.
	At1130                                                  bool
	StuckAt1130, RaceAt1130, NoSpaceAt1130, AuthorityAt1130 float64
	CutOffPct                                               float64
}

// Window is a span of minutes [From, To].
type Window struct{ From, To int }

// Minutes returns the window's length.
func (w Window) Minutes() int { return w.To - w.From + 1 }

// healthySuccess returns the success share of zones 1.. in m, and false if
// they made no call.
func healthySuccess(ms []Minute) (float64, bool) {
	var calls, ok int64
	for _, m := range ms {
		for zi := 1; zi < Zones; zi++ {
			calls += m.APICalls[zi]
			ok += m.APIOK[zi]
		}
	}
	if calls == 0 {
		return 100, false
	}
	return 100 * float64(ok) / float64(calls), true
}

// Summarize computes r's summary.
func (r *Result) Summarize() Summary {
	s := Summary{APISuccessHealthyMinPct: 100, SearchMessages: r.Searches, NodeCrashes: r.Crashes,
		APISuccessHealthyAfterFixPct: -1, HealthyAfterHeal: r.HealthyAfter, DegradationStopped: -1, Below22: -1, Below104: -1,
		CutOffPct: r.CutOffPct}
	tl := r.Timeline
	s.Minutes = len(tl)
	run := -1
	for i, m := range tl {
		if m.StuckPct[0] > s.PeakStuckAffectedPct {
			s.PeakStuckAffectedPct, s.PeakStuckAffectedAt = m.StuckPct[0], m.Minute
		}
		other := (m.StuckPct[1] + m.StuckPct[2]) / 2
		if other > s.PeakStuckOtherPct {
			s.PeakStuckOtherPct, s.PeakStuckOtherAt = other, m.Minute
		}
		if i >= 9 {
			p, ok := healthySuccess(tl[i-9 : i+1])
			if ok && p < s.APISuccessHealthyMinPct {
				s.APISuccessHealthyMinPct, s.APISuccessHealthyMinAt = p, m.Minute
			}
			if tl[i-9].Minute > int((CutOff+10*time.Minute)/time.Minute) && (s.APISuccessHealthyAfterFixPct < 0 || p < s.APISuccessHealthyAfterFixPct) {
				s.APISuccessHealthyAfterFixPct = p
			}
		}
		p, ok := healthySuccess(tl[i : i+1])
		if ok && p < 50 {
			s.APIHealthyBelow50Minutes++
			if n := len(s.Brownouts); n > 0 && m.Minute-s.Brownouts[n-1].To < 10 {
				s.Brownouts[n-1].To = m.Minute
			} else {
				s.Brownouts = append(s.Brownouts, Window{m.Minute, m.Minute})
			}
		}
		s.NoLiveReplicaMax = max(s.NoLiveReplicaMax, m.NoLiveReplica)
		if m.Minute == int((BlockFutile)/time.Minute) {
			s.At1130 = true
			s.StuckAt1130, s.RaceAt1130, s.NoSpaceAt1130, s.AuthorityAt1130 = m.StuckPct[0], m.StuckRacePct, m.StuckNoSpacePct, m.StuckAuthorityPct
		}
		_ = run
	}
	if r.LastCrash >= 0 {
		s.DegradationStopped = int(r.LastCrash/time.Minute) + 1
	}
	for _, m := range tl {
		if m.Minute <= s.PeakStuckAffectedAt {
			continue
		}
		if s.Below22 < 0 && m.StuckPct[0] <= PostmortemLeft1 {
			s.Below22 = m.Minute
		}
		if s.Below104 < 0 && m.StuckPct[0] <= PostmortemLeft2 {
			s.Below104 = m.Minute
		}
	}
	if len(tl) > 0 {
		s.FinalStuckPct = tl[len(tl)-1].StuckPct[0]
	}
	s.UnrecoverablePct = 100 * float64(r.FinalNoLive) / float64(r.ZoneVolumes)
	return s
}
